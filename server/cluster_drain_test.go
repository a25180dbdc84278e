package server_test

import (
	"encoding/json"
	"fmt"
	"testing"
	"time"

	"github.com/presenced/presenced/testkit"
	"github.com/presenced/presenced/wire"
)

// TestClusterDrain: one of 3 nodes is stopped with SIGTERM. Its clients are told to resume
// elsewhere (error server_restart, close 1012), do so on a survivor with their tokens, and no
// follower sees any x or o; afterwards every session works and nothing else reached anyone.
func TestClusterDrain(t *testing.T) {
	const users = 300
	var names []string
	for i := range users {
		names = append(names, fmt.Sprintf("u%d", i))
	}
	gj, _ := json.Marshal(map[string][]string{"wa": names, "wb": names})
	ps := startClusterProcs(t, 3, string(gj))
	wa := ps[0].Connect(t, wire.Hello{Token: "wa"})
	wb := ps[1].Connect(t, wire.Hello{Token: "wb"})
	clients := make([]*testkit.Client, users)
	truth := map[string]wire.Presence{}
	for i := range users {
		clients[i] = ps[i%3].Connect(t, wire.Hello{Token: names[i], Window: "w"})
		clients[i].Send(status(wire.Coding, names[i], "Go"))
		truth[names[i]] = online(wire.Coding, names[i], "Go")
	}
	for _, w := range []*testkit.Client{wa, wb} {
		view := map[string]wire.Presence{}
		wire.Apply(view, w.Sync)
		for !sameView(view, truth) {
			wire.Apply(view, w.Next())
		}
	}

	ps[2].Stop(t)
	for i := 2; i < users; i += 3 {
		clients[i].ExpectClose(wire.ErrServerRestart, wire.CloseServiceRestart)
		r := ps[i%2].Connect(t, wire.Hello{Token: names[i], Resume: clients[i].Welcome.Resume})
		if !r.Welcome.Resumed {
			t.Fatalf("%s: welcome %+v, want resumed on a survivor", names[i], r.Welcome)
		}
		if got := r.Sync; len(got.Users) != 0 {
			t.Fatalf("%s follows no one; sync = %+v", names[i], got)
		}
		clients[i] = r
	}
	for _, c := range clients {
		c.Send(status(wire.Debugging, "final", "Go"))
	}
	for _, w := range []*testkit.Client{wa, wb} {
		w.Timeout = 30 * time.Second
		got := map[string]bool{}
		for len(got) < users {
			f := w.Next()
			u, ok := f.(wire.Update)
			if !ok || got[u.ID] || u.Activity != wire.Debugging || u.Project != "final" {
				t.Fatalf("%s got %#v; want only one u to Debugging/final per user (no x, no o)", w, f)
			}
			got[u.ID] = true
		}
		w.Quiet()
	}
}
