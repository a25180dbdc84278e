package main

import (
	"context"
	"io"
	"time"

	"github.com/presenced/presenced/wire"
)

const watchHelp = `Usage: presencectl watch --token TOKEN [--url URL]

Connects as the token's user and prints the users it follows as a table (user, state,
activity, project, language, last seen), again after every change. On a terminal the screen
is cleared before each table; otherwise each table is followed by a blank line.

Watching is itself a window: the user shows as online (Idle) while it runs. Ctrl-C says bye.
`

// clearScreen moves the cursor home and clears the terminal.
const clearScreen = "\x1b[H\x1b[2J"

// runWatch is "presencectl watch". It returns nil when ctx ends.
func runWatch(ctx context.Context, args []string, e env) error {
	fs := newFlagSet("watch")
	var cf connFlags
	cf.register(fs, e)
	if err := parseFlags(fs, watchHelp, args, e); err != nil {
		return err
	}
	if err := cf.check(e); err != nil {
		return err
	}
	window, err := newWindowID()
	if err != nil {
		return err
	}
	now := e.now
	if now == nil {
		now = time.Now
	}
	net := newNetwork()
	s := &session{url: cf.url, token: cf.token, window: window, dial: e.dial, stderr: e.stderr, backoff: e.backoff,
		onFrame: func(f wire.Frame) {
			if !net.apply(f) {
				return
			}
			table := renderTable(net.order, net.view, now())
			out := table + "\n"
			if e.terminal {
				out = clearScreen + table
			}
			// One write per table, so a terminal never shows half of one. A failed write
			// (closed pipe) is not worth ending the watch over; SIGPIPE handles stdout.
			_, _ = io.WriteString(e.stdout, out)
			if e.rendered != nil {
				e.rendered(table)
			}
		}}
	return s.run(ctx)
}
