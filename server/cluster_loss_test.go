package server_test

import (
	"encoding/json"
	"fmt"
	"strings"
	"testing"
	"time"

	"github.com/presenced/presenced/testkit"
	"github.com/presenced/presenced/wire"
)

// TestClusterNodeLoss: 3 nodes; 300 users with one window each spread over them, watched by two
// followers on nodes 0 and 1. Node 2 is killed (SIGKILL). Users whose windows live on the
// survivors, and half of node 2's users who resume on node 0 within the resume window, are
// never seen going offline or coming back; the other half show x with a last seen after the
// kill. Then every surviving session still works, and nothing else reached the followers.
func TestClusterNodeLoss(t *testing.T) {
	const users = 300
	var names []string
	for i := range users {
		names = append(names, fmt.Sprintf("u%d", i))
	}
	graph := map[string][]string{"wa": names, "wb": names}
	gj, _ := json.Marshal(graph)
	// A resume window long enough for the survivors to notice the dead member (seconds) and short
	// enough for the test: the x of the users who do not come back arrives after it.
	ps := startClusterProcs(t, 3, string(gj), "--resume-window", "15s")
	wa := ps[0].Connect(t, wire.Hello{Token: "wa"})
	wb := ps[1].Connect(t, wire.Hello{Token: "wb"})
	clients := make([]*testkit.Client, users)
	for i := range users {
		clients[i] = ps[i%3].Connect(t, wire.Hello{Token: names[i], Window: "w"})
		clients[i].Send(status(wire.Coding, names[i], "Go"))
	}
	truth := map[string]wire.Presence{}
	for i := range users {
		truth[names[i]] = online(wire.Coding, names[i], "Go")
	}
	for _, w := range []*testkit.Client{wa, wb} {
		view := map[string]wire.Presence{}
		wire.Apply(view, w.Sync)
		for !sameView(view, truth) {
			wire.Apply(view, w.Next())
		}
	}

	killed := time.Now().UnixMilli()
	ps[2].Kill()
	gone := map[string]bool{}
	for i := 2; i < users; i += 3 {
		if i%2 == 0 {
			r := ps[0].Connect(t, wire.Hello{Token: names[i], Resume: clients[i].Welcome.Resume})
			if !r.Welcome.Resumed {
				t.Fatalf("%s: welcome %+v, want resumed on a survivor", names[i], r.Welcome)
			}
			clients[i] = r
		} else {
			gone[names[i]] = true
			clients[i] = nil
		}
	}
	// The followers see exactly the x of the users who did not come back, nothing else.
	for _, w := range []*testkit.Client{wa, wb} {
		w.Timeout = 60 * time.Second
		seen := map[string]bool{}
		for len(seen) < len(gone) {
			f := w.Next()
			x, ok := f.(wire.Offline)
			if !ok || !gone[x.ID] || seen[x.ID] || x.TS < killed {
				t.Fatalf("%s got %#v; want only x (ts ≥ %d) for %v", w, f, killed, keys(gone))
			}
			seen[x.ID] = true
		}
	}
	// Every surviving session works: one last change each, and that is all the followers get.
	want := map[string]bool{}
	for i, c := range clients {
		if c != nil {
			c.Send(status(wire.Debugging, "final", "Go"))
			want[names[i]] = true
		}
	}
	for _, w := range []*testkit.Client{wa, wb} {
		got := map[string]bool{}
		for len(got) < len(want) {
			f := w.Next()
			u, ok := f.(wire.Update)
			if !ok || !want[u.ID] || got[u.ID] || u.Activity != wire.Debugging || u.Project != "final" {
				t.Fatalf("%s got %#v; want one u to Debugging/final per surviving user", w, f)
			}
			got[u.ID] = true
		}
		w.Quiet()
	}
}

func sameView(view, truth map[string]wire.Presence) bool {
	for k, v := range truth {
		if view[k] != v {
			return false
		}
	}
	return true
}

func keys(m map[string]bool) string {
	var out []string
	for k := range m {
		out = append(out, k)
	}
	return strings.Join(out, ",")
}
