// Command presencectl is a small reference client of presenced, built only on the client and
// wire packages:
//
//	presencectl watch --token bob                      # bob's network, live
//	presencectl status --token alice --activity Coding # alice online until Ctrl-C
//
// Run presencectl --help for everything else.
package main

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"io"
	"os"
	"os/signal"
	"syscall"
	"time"

	"github.com/presenced/presenced/client"
)

// env is what a command takes from the process. main fills it from os; tests build their own.
type env struct {
	stdout, stderr io.Writer
	getenv         func(string) string
	terminal       bool             // stdout is a terminal: watch clears the screen per table
	now            func() time.Time // nil: time.Now
	dial           client.Options   // tests redirect or cut connections
	backoff        time.Duration    // first reconnect delay (0: 1 s)
	rendered       func(table string)
}

func main() {
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	// Once the first signal has asked for a clean bye, restore the default so a second one
	// kills at once should the server not answer.
	context.AfterFunc(ctx, stop)
	code := run(ctx, os.Args[1:], env{stdout: os.Stdout, stderr: os.Stderr, getenv: os.Getenv, terminal: isTerminal(os.Stdout)})
	stop()
	os.Exit(code)
}

func isTerminal(f *os.File) bool {
	fi, err := f.Stat()
	return err == nil && fi.Mode()&os.ModeCharDevice != 0
}

const usage = `presencectl is a small client of presenced (a real-time presence server).

Usage:
  presencectl watch  --token TOKEN [--url URL]
  presencectl status --token TOKEN [--activity A] [--project P] [--language L]
                     [--window ID] [--invisible] [--url URL]

Commands:
  watch    print the network of the token's user as a table, again after every change
  status   report one editor window's status, stay online until Ctrl-C, then say bye

Both reconnect and resume by themselves when the server advises it (back-off 1 s to 30 s)
and exit non-zero on any other close, printing its code and the protocol's advice.

Run 'presencectl COMMAND --help' for a command's flags.

Environment:
  PRESENCECTL_URL     default for --url (else ws://localhost:8080/ws)
  PRESENCECTL_TOKEN   used when --token is not given (keeps the token out of ps)

Exit status: 0 done (Ctrl-C), 1 error or server close, 2 usage error.
`

// run runs one command line and returns the exit status.
func run(ctx context.Context, args []string, e env) int {
	if len(args) == 0 {
		fmt.Fprint(e.stderr, usage)
		return 2
	}
	cmd, rest := args[0], args[1:]
	if cmd == "help" && len(rest) > 0 {
		cmd, rest = rest[0], []string{"--help"}
	}
	var err error
	switch cmd {
	case "watch":
		err = runWatch(ctx, rest, e)
	case "status":
		err = runStatus(ctx, rest, e)
	case "help", "-h", "-help", "--help":
		fmt.Fprint(e.stdout, usage)
		return 0
	default:
		fmt.Fprintf(e.stderr, "presencectl: unknown command %q (want watch or status)\nRun 'presencectl --help' for usage.\n", cmd)
		return 2
	}
	var ue *usageError
	switch {
	case err == nil, errors.Is(err, flag.ErrHelp):
		return 0
	case errors.As(err, &ue):
		fmt.Fprintf(e.stderr, "presencectl %s: %v\nRun 'presencectl %s --help' for usage.\n", cmd, err, cmd)
		return 2
	default:
		fmt.Fprintf(e.stderr, "presencectl %s: %v\n", cmd, err)
		return 1
	}
}
