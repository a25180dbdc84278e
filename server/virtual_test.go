package server_test

import (
	"testing"
	"testing/synctest"
	"time"

	"github.com/presenced/presenced/testkit"
	"github.com/presenced/presenced/wire"
)

// TestAway: no status frame for --away-after → followers get s:Away; the next status brings
// s:Online back. Five minutes pass in virtual time.
func TestAway(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		n := testkit.StartPipeNode(t, testkit.DevConfig(map[string][]string{"bob": {"alice"}}))
		b := n.Connect(t, wire.Hello{Token: "bob"})
		b.Timeout = time.Hour
		a := n.Connect(t, wire.Hello{Token: "alice"})
		b.Expect(wire.Online{ID: "alice", Presence: online(wire.Idle, "", "")})
		start := time.Now()
		a.Send(wire.Status{Has: wire.FieldActivity, Activity: wire.Coding})
		b.Expect(wire.Update{ID: "alice", Has: wire.FieldActivity, Activity: wire.Coding})
		b.ExpectRaw(`{"t":"u","id":"alice","s":"Away"}`)
		if got := time.Since(start); got < 5*time.Minute || got > 5*time.Minute+3*time.Second {
			t.Fatalf("away after %v, want 5 min (+ debounce)", got)
		}
		a.Send(wire.Status{})
		b.ExpectRaw(`{"t":"u","id":"alice","s":"Online"}`)
	})
}
