package main

import (
	"fmt"
	"slices"
	"strings"
	"text/tabwriter"
	"time"

	"github.com/presenced/presenced/wire"
)

// network is a follower's view of the users it follows, plus the order to show them in.
type network struct {
	view  map[string]wire.Presence
	order []string // the sync's order, then names first seen later (sorted among themselves)
	nsync int      // order[:nsync] came from the sync
}

func newNetwork() *network { return &network{view: map[string]wire.Presence{}} }

// apply merges one server frame and reports whether the view changed. A sync is a complete
// snapshot (every hello, resumed or not, gets one), so it replaces what was known before.
func (n *network) apply(f wire.Frame) bool {
	if s, ok := f.(wire.Sync); ok {
		clear(n.view)
		n.order = n.order[:0]
		for _, u := range s.Users {
			if _, dup := n.view[u.Username]; !dup {
				n.order = append(n.order, u.Username)
			}
			n.view[u.Username] = u.Presence
		}
		n.nsync = len(n.order)
	}
	var id string
	switch f := f.(type) {
	case wire.Online:
		id = f.ID
	case wire.Offline:
		id = f.ID
	case wire.Update:
		id = f.ID
	}
	if _, known := n.view[id]; id != "" && !known {
		// The server only tells us about users we follow, so an unknown name means the sync
		// missed it; keep the sync's order stable and slot the newcomer into the sorted tail.
		tail := n.order[n.nsync:]
		i, _ := slices.BinarySearch(tail, id)
		n.order = slices.Insert(n.order, n.nsync+i, id)
	}
	return wire.Apply(n.view, f)
}

// renderTable formats the view as an aligned table, one row per name in names, in that order.
// now is a parameter so that relative times are testable.
func renderTable(names []string, view map[string]wire.Presence, now time.Time) string {
	var b strings.Builder
	tw := tabwriter.NewWriter(&b, 0, 0, 2, ' ', 0)
	fmt.Fprintln(tw, "USER\tSTATE\tACTIVITY\tPROJECT\tLANGUAGE\tLAST SEEN")
	for _, name := range names {
		p := view[name]
		activity, project, language, seen := "-", "-", "-", "now"
		if p.State != wire.StateOffline {
			activity = p.Activity.String()
			project, language = orDash(p.Project), orDash(p.Language)
		} else {
			// Activity, project and language mean nothing for someone who is not there.
			seen = lastSeen(p.TS, now)
		}
		fmt.Fprintf(tw, "%s\t%s\t%s\t%s\t%s\t%s\n", clean(name), p.State, activity, project, language, seen)
	}
	_ = tw.Flush() // a strings.Builder does not fail
	if len(names) == 0 {
		b.WriteString("(you follow no one)\n")
	}
	return b.String()
}

func orDash(s string) string {
	if s == "" {
		return "-"
	}
	return clean(s)
}

// clean keeps other users' strings from breaking the table or driving the terminal: control
// characters (tabs, newlines, ESC) become spaces.
func clean(s string) string {
	return strings.Map(func(r rune) rune {
		if r < 0x20 || r == 0x7f || (r >= 0x80 && r < 0xa0) {
			return ' '
		}
		return r
	}, s)
}

// lastSeen formats a last-seen time (ms since epoch, 0 = unknown) relative to now.
func lastSeen(ts int64, now time.Time) string {
	if ts == 0 {
		return "never"
	}
	d := now.Sub(time.UnixMilli(ts))
	switch {
	case d < time.Second: // also a clock slightly behind the server's
		return "just now"
	case d < time.Minute:
		return fmt.Sprintf("%ds ago", int(d/time.Second))
	case d < time.Hour:
		return fmt.Sprintf("%dm ago", int(d/time.Minute))
	case d < 48*time.Hour:
		return fmt.Sprintf("%dh ago", int(d/time.Hour))
	default:
		return fmt.Sprintf("%dd ago", int(d/(24*time.Hour)))
	}
}
