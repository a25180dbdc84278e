package server_test

import (
	"fmt"
	"testing"

	"github.com/presenced/presenced/testkit"
	"github.com/presenced/presenced/wire"
)

// TestOK: with 1,000 users connected and alice followed by 3 of them, one change of alice is
// one publish, and it is handed to exactly 3 connections: the cost is K, not N.
func TestOK(t *testing.T) {
	const users = 1000
	graph := map[string][]string{"f1": {"alice"}, "f2": {"alice"}, "f3": {"alice"}}
	for i := range users - 4 {
		graph[fmt.Sprintf("u%d", i)] = []string{fmt.Sprintf("u%d", (i+1)%(users-4))}
	}
	n := testkit.StartNode(t, fast(graph))
	var all []*testkit.Client
	for u := range graph {
		all = append(all, n.Connect(t, wire.Hello{Token: u}))
	}
	a := n.Connect(t, wire.Hello{Token: "alice"})
	var followers []*testkit.Client
	// Wait until every user's own coming online has been delivered, so the counters below see
	// alice's change alone.
	for _, c := range all {
		followee := graph[c.Welcome.ID][0]
		if c.Sync.Users[0].Presence.State == wire.StateOffline {
			c.Expect(wire.Online{ID: followee, Presence: online(wire.Idle, "", "")})
		}
		if followee == "alice" {
			followers = append(followers, c)
		}
	}
	before := n.Stats().Fanout
	a.Send(coding())
	for _, f := range followers {
		f.Expect(wire.Update{ID: "alice", Has: wire.FieldActivity, Activity: wire.Coding})
	}
	after := n.Stats().Fanout
	if got := after.Received - before.Received; got != 1 {
		t.Errorf("publishes for one change = %d, want 1", got)
	}
	if got := after.Delivered - before.Delivered; got != 3 {
		t.Errorf("deliveries for one change = %d, want 3 (alice's followers)", got)
	}
	for _, c := range all {
		c.Quiet()
	}
}
