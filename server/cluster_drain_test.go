package server_test

import (
	"testing"

	"github.com/presenced/presenced/testkit"
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

// TestClusterRollingRestart: each of 3 nodes in turn is stopped with SIGTERM and started again.
// Every client of a stopped node resumes on the next node (followers too: their fresh sync
// shows the truth), and no follower ever receives an x or an o.
func TestClusterRollingRestart(t *testing.T) {
	wc := startWatchedCluster(t, 60)
	type session struct {
		user string
		c    **testkit.Client
		node int
	}
	var all []*session
	for i := range wc.clients {
		all = append(all, &session{wc.names[i], &wc.clients[i], i % 3})
	}
	all = append(all, &session{"wa", &wc.wa, 0}, &session{"wb", &wc.wb, 1})
	for n := range 3 {
		wc.procs[n].Stop(t)
		next := (n + 1) % 3
		for _, s := range all {
			if s.node != n {
				continue
			}
			(*s.c).ExpectClose(wire.ErrServerRestart, wire.CloseServiceRestart)
			r := wc.procs[next].Connect(t, wire.Hello{Token: s.user, Resume: (*s.c).Welcome.Resume})
			if !r.Welcome.Resumed {
				t.Fatalf("%s: welcome %+v, want resumed", s.user, r.Welcome)
			}
			for _, u := range r.Sync.Users {
				if u.Presence != online(wire.Coding, u.Username, "Go") {
					t.Fatalf("%s's sync after resuming: %+v", s.user, u)
				}
			}
			*s.c, s.node = r, next
		}
		wc.procs[n] = wc.procs[n].Restart(t)
		for _, p := range wc.procs {
			p.WaitMembers(t, 3)
		}
	}
	wc.finalRound(t)
}
