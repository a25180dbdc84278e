package server_test

import (
	"fmt"
	"math/rand/v2"
	"testing"

	"github.com/presenced/presenced/testkit"
	"github.com/presenced/presenced/wire"
)

// TestIsolationAtScale: 1,000 connected users on a random follow graph, random updates from
// everyone. Every frame any client receives is about a user it follows, and at the end every
// client's merged view equals the truth, with nothing left queued.
func TestIsolationAtScale(t *testing.T) {
	const users, follows, updates = 1000, 10, 3000
	rng := rand.New(rand.NewPCG(1, 2))
	name := func(i int) string { return fmt.Sprintf("u%d", i) }
	graph := map[string][]string{}
	followsOf := make([]map[string]bool, users)
	for i := range users {
		followsOf[i] = map[string]bool{}
		for len(followsOf[i]) < follows {
			if j := rng.IntN(users); j != i {
				followsOf[i][name(j)] = true
			}
		}
		for u := range followsOf[i] {
			graph[name(i)] = append(graph[name(i)], u)
		}
	}
	n := testkit.StartNode(t, fast(graph))
	clients := make([]*testkit.Client, users)
	for i := range users {
		clients[i] = n.Connect(t, wire.Hello{Token: name(i)})
	}
	truth := map[string]wire.Presence{}
	for i := range users {
		truth[name(i)] = online(wire.Idle, "", "")
	}
	langs := []string{"Go", "Rust", "", "TypeScript"}
	for range updates {
		i := rng.IntN(users)
		s := status(wire.Activity(rng.IntN(3)), fmt.Sprintf("p%d", rng.IntN(5)), langs[rng.IntN(len(langs))])
		clients[i].Send(s)
	}
	// Each user's last status is unique, so a view that matches the truth has seen every user's
	// final publish, and nothing can follow it: Quiet below is then exact.
	for i := range users {
		s := status(wire.Activity(rng.IntN(3)), fmt.Sprintf("final-%d", i), langs[rng.IntN(len(langs))])
		clients[i].Send(s)
		truth[name(i)] = online(s.Activity, s.Project, s.Language)
	}

	for i, c := range clients {
		view := map[string]wire.Presence{}
		wire.Apply(view, c.Sync)
		for !matches(view, truth, followsOf[i]) {
			f := c.Next()
			id := frameUser(f)
			if !followsOf[i][id] {
				t.Fatalf("%s got %#v about %q, whom it does not follow", name(i), f, id)
			}
			if _, ok := f.(wire.Offline); ok {
				t.Fatalf("%s got %#v: nobody went offline", name(i), f)
			}
			wire.Apply(view, f)
		}
	}
	for _, c := range clients {
		c.Quiet()
	}
	if s := n.Stats(); s.Conns != users || s.UserActors != users {
		t.Fatalf("stats = %+v", s)
	}
}

func matches(view, truth map[string]wire.Presence, follows map[string]bool) bool {
	for u := range follows {
		if view[u] != truth[u] {
			return false
		}
	}
	return len(view) == len(follows)
}

func frameUser(f wire.Frame) string {
	switch f := f.(type) {
	case wire.Online:
		return f.ID
	case wire.Offline:
		return f.ID
	case wire.Update:
		return f.ID
	}
	return fmt.Sprintf("<%T>", f)
}
