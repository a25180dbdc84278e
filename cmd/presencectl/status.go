package main

import (
	"context"
	"flag"
	"fmt"

	"github.com/presenced/presenced/client"
	"github.com/presenced/presenced/wire"
)

const statusHelp = `Usage: presencectl status --token TOKEN [--activity A] [--project P] [--language L]
                          [--window ID] [--invisible] [--url URL]

Connects as one editor window of the token's user, sends one status frame with only the
fields given (--project= clears the project), prints one line, and stays online until Ctrl-C
(SIGINT or SIGTERM); then it says bye, so followers see the user leave at once, and exits 0.
After a resume the server still knows the window's status; after a fresh hello it is sent again.
`

// runStatus is "presencectl status". It returns nil when ctx ends and bye was said.
func runStatus(ctx context.Context, args []string, e env) error {
	fs := newFlagSet("status")
	var cf connFlags
	cf.register(fs, e)
	activity := fs.String("activity", "", "the window's activity `A`: Coding, Debugging or Idle")
	project := fs.String("project", "", fmt.Sprintf("the project `P` (at most %d bytes; empty clears it)", wire.MaxProjectBytes))
	language := fs.String("language", "", fmt.Sprintf("the language `L` (at most %d bytes; empty clears it)", wire.MaxLanguageBytes))
	window := fs.String("window", "", fmt.Sprintf("window `ID` (at most %d bytes; default a new random one); another socket with the same ID replaces this one", wire.MaxWindowBytes))
	invisible := fs.Bool("invisible", false, "hide the user from followers; it is user-wide and it sticks, so --invisible=false shows the user again")
	if err := parseFlags(fs, statusHelp, args, e); err != nil {
		return err
	}
	if err := cf.check(e); err != nil {
		return err
	}
	given := map[string]bool{}
	fs.Visit(func(f *flag.Flag) { given[f.Name] = true })

	var st wire.Status
	if given["activity"] {
		a, ok := wire.ParseActivity(*activity)
		if !ok {
			return usageErrorf("--activity must be Coding, Debugging or Idle (case-sensitive), not %q", *activity)
		}
		st.Has, st.Activity = st.Has|wire.FieldActivity, a
	}
	if given["project"] {
		if len(*project) > wire.MaxProjectBytes {
			return usageErrorf("--project is %d bytes, over the limit of %d", len(*project), wire.MaxProjectBytes)
		}
		st.Has, st.Project = st.Has|wire.FieldProject, *project
	}
	if given["language"] {
		if len(*language) > wire.MaxLanguageBytes {
			return usageErrorf("--language is %d bytes, over the limit of %d", len(*language), wire.MaxLanguageBytes)
		}
		st.Has, st.Language = st.Has|wire.FieldLanguage, *language
	}
	if len(*window) > wire.MaxWindowBytes {
		return usageErrorf("--window is %d bytes, over the limit of %d", len(*window), wire.MaxWindowBytes)
	}
	if *window == "" {
		// Choose the id ourselves: the welcome does not tell us the one the server would make.
		id, err := newWindowID()
		if err != nil {
			return err
		}
		*window = id
	}

	var login string
	s := &session{url: cf.url, token: cf.token, window: *window, dial: e.dial, stderr: e.stderr, backoff: e.backoff,
		onWelcome: func(c *client.Conn, w wire.Welcome) error {
			login = w.ID
			if w.Resumed {
				return nil // the window kept its status on the server
			}
			if err := c.Send(st); err != nil {
				return fmt.Errorf("send status: %w", err)
			}
			state := "online"
			if given["invisible"] {
				if err := c.Send(wire.Invisible{On: *invisible}); err != nil {
					return fmt.Errorf("send invisible: %w", err)
				}
				if *invisible {
					state = "online, invisible"
				}
			}
			fmt.Fprintf(e.stdout, "%s %s (window %s, resume token saved)\n", w.ID, state, *window)
			return nil
		},
		// The network's frames are of no interest here; reading them keeps pings answered.
		onFrame: func(wire.Frame) {}}
	if err := s.run(ctx); err != nil {
		return err
	}
	if s.saidBye {
		fmt.Fprintf(e.stdout, "%s said bye\n", login)
	}
	return nil
}
