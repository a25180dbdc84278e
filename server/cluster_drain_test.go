package server_test

import (
	"testing"

	"github.com/presenced/presenced/wire"
)

// TestClusterDrain: one of 3 nodes is stopped with SIGTERM. Its clients are told to resume
// elsewhere (error server_restart, close 1012), do so on a survivor with their tokens, and no
// follower sees any x or o; afterwards every session works and nothing else reached anyone.
func TestClusterDrain(t *testing.T) {
	wc := startWatchedCluster(t, 300)
	wc.procs[2].Stop(t)
	for i := 2; i < len(wc.names); i += 3 {
		wc.clients[i].ExpectClose(wire.ErrServerRestart, wire.CloseServiceRestart)
		r := wc.procs[i%2].Connect(t, wire.Hello{Token: wc.names[i], Resume: wc.clients[i].Welcome.Resume})
		if !r.Welcome.Resumed {
			t.Fatalf("%s: welcome %+v, want resumed on a survivor", wc.names[i], r.Welcome)
		}
		wc.clients[i] = r
	}
	wc.finalRound(t)
}
