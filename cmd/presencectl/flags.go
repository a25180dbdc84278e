package main

import (
	"errors"
	"flag"
	"fmt"
	"io"
	"net/url"

	"github.com/presenced/presenced/wire"
)

const defaultURL = "ws://localhost:8080/ws"

// usageError is a bad command line: exit status 2.
type usageError struct{ err error }

func (e *usageError) Error() string { return e.err.Error() }
func (e *usageError) Unwrap() error { return e.err }

func usageErrorf(format string, args ...any) error {
	return &usageError{fmt.Errorf(format, args...)}
}

// newFlagSet makes a flag set that prints nothing by itself: parseFlags decides where help
// and errors go (help to stdout, errors to stderr through run).
func newFlagSet(name string) *flag.FlagSet {
	fs := flag.NewFlagSet("presencectl "+name, flag.ContinueOnError)
	fs.SetOutput(io.Discard)
	return fs
}

// parseFlags parses args. It returns flag.ErrHelp after printing help to stdout.
func parseFlags(fs *flag.FlagSet, help string, args []string, e env) error {
	if err := fs.Parse(args); err != nil {
		if errors.Is(err, flag.ErrHelp) {
			fmt.Fprint(e.stdout, help, "\nFlags (one dash or two):\n")
			fs.SetOutput(e.stdout)
			fs.PrintDefaults()
			return flag.ErrHelp
		}
		return &usageError{err}
	}
	if fs.NArg() > 0 {
		return usageErrorf("unexpected argument %q (flags only)", fs.Arg(0))
	}
	return nil
}

// connFlags are the flags every command has.
type connFlags struct {
	url, token string
}

func (c *connFlags) register(fs *flag.FlagSet, e env) {
	def := e.getenv("PRESENCECTL_URL")
	if def == "" {
		def = defaultURL
	}
	fs.StringVar(&c.url, "url", def, "presenced WebSocket `URL` (env PRESENCECTL_URL)")
	// The env token is not made the flag's default: --help would print it.
	fs.StringVar(&c.token, "token", "", "hello `TOKEN`; with --auth dev it is the username (env PRESENCECTL_TOKEN)")
}

// check completes and validates the flags after parsing.
func (c *connFlags) check(e env) error {
	if c.token == "" {
		c.token = e.getenv("PRESENCECTL_TOKEN")
	}
	if c.token == "" {
		return usageErrorf("--token is required (or set PRESENCECTL_TOKEN)")
	}
	if len(c.token) > wire.MaxTokenBytes {
		return usageErrorf("--token is %d bytes, over the protocol's limit of %d", len(c.token), wire.MaxTokenBytes)
	}
	u, err := url.Parse(c.url)
	if err != nil {
		return &usageError{fmt.Errorf("--url: %w", err)}
	}
	if (u.Scheme != "ws" && u.Scheme != "wss") || u.Host == "" {
		return usageErrorf("--url must look like ws://host:port/ws or wss://…, not %q", c.url)
	}
	return nil
}
