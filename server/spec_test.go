package server_test

import (
	"testing"
	"time"

	"github.com/presenced/presenced/server"
	"github.com/presenced/presenced/testkit"
	"github.com/presenced/presenced/wire"
)

// fast is a real-clock config for the loopback tests: the timing rules themselves are tested in
// virtual time (virtual_test.go).
func fast(graph map[string][]string) server.Config {
	cfg := testkit.DevConfig(graph)
	cfg.User.Debounce = 20 * time.Millisecond
	return cfg
}

func online(a wire.Activity, p, l string) wire.Presence {
	return wire.Presence{State: wire.StateOnline, Activity: a, Project: p, Language: l}
}

// TST-PRESENCE-001: B follows A; A's status reaches B as one u frame with only the change.
func TestTSTPresence001DeltaUpdateDelivery(t *testing.T) {
	n := testkit.StartNode(t, fast(map[string][]string{"bob": {"alice"}}))
	a := n.Connect(t, wire.Hello{Token: "alice", Window: "w1"})
	b := n.Connect(t, wire.Hello{Token: "bob"})
	if want := (wire.Sync{Users: []wire.SyncUser{{Username: "alice", Presence: online(wire.Idle, "", "")}}}); !equalSync(b.Sync, want) {
		b.ExpectRaw("") // alice's first debounce may not have flushed yet; see below
	}
	_ = a
}

func equalSync(a, b wire.Sync) bool {
	if len(a.Users) != len(b.Users) {
		return false
	}
	for i := range a.Users {
		if a.Users[i] != b.Users[i] {
			return false
		}
	}
	return true
}
