package server_test

import (
	"context"
	"testing"
	"time"

	"github.com/presenced/presenced/testkit"
	"github.com/presenced/presenced/wire"
)

// eventually polls cond until it holds or 20 s pass. It is for conditions with no event to wait
// on (readiness of a node whose Redis comes and goes), never for frames.
func eventually(t *testing.T, what string, cond func() bool) {
	t.Helper()
	deadline := time.Now().Add(20 * time.Second)
	for !cond() {
		if time.Now().After(deadline) {
			t.Fatalf("not true within 20 s: %s", what)
		}
		time.Sleep(20 * time.Millisecond)
	}
}

// TestRedisOutage: Redis goes away and comes back empty. Both nodes keep their sockets, report
// not ready while it is away and ready after, a change made during the outage reaches the
// follower on the other node once Redis is back, and a user who changed nothing is written
// back too (each node's placement tells its user actors to republish), so a newcomer's sync
// shows both as they are.
func TestRedisOutage(t *testing.T) {
	r := testkit.RequireRedis(t)
	cfg := fast(map[string][]string{"bob": {"alice", "carol"}})
	cfg.RedisURL = r.URL()
	na, nb := testkit.StartNode(t, cfg), testkit.StartNode(t, cfg)
	b := nb.Connect(t, wire.Hello{Token: "bob"})
	a := na.Connect(t, wire.Hello{Token: "alice"})
	b.Expect(wire.Online{ID: "alice", Presence: online(wire.Idle, "", "")})
	na.Connect(t, wire.Hello{Token: "carol"})
	b.Expect(wire.Online{ID: "carol", Presence: online(wire.Idle, "", "")})
	ctx := context.Background()

	t0 := time.Now()
	r.Stop()
	eventually(t, "node a not ready", func() bool { return na.Ready(ctx) != nil })
	eventually(t, "node b not ready", func() bool { return nb.Ready(ctx) != nil })
	a.Send(status(wire.Debugging, "Outage", "Go"))
	t.Log("not ready after", time.Since(t0))
	a.Quiet() // alice's socket is served throughout
	b.Quiet()

	r.Start()
	t1 := time.Now()
	b.Expect(wire.Update{ID: "alice", Has: wire.FieldActivity | wire.FieldProject | wire.FieldLanguage,
		Activity: wire.Debugging, Project: "Outage", Language: "Go"})
	t.Log("update after restart", time.Since(t1))
	eventually(t, "both nodes ready", func() bool { return na.Ready(ctx) == nil && nb.Ready(ctx) == nil })
	t.Log("ready after restart", time.Since(t1))
	// A newcomer's sync, read from the new (empty) Redis, shows the truth again.
	want := map[string]wire.Presence{"alice": online(wire.Debugging, "Outage", "Go"), "carol": online(wire.Idle, "", "")}
	eventually(t, "a newcomer's sync shows the truth", func() bool {
		b2 := nb.Connect(t, wire.Hello{Token: "bob", Window: "w2"})
		got := map[string]wire.Presence{}
		wire.Apply(got, b2.Sync)
		return sameView(got, want)
	})
	a.Send(coding())
	b.Expect(wire.Update{ID: "alice", Has: wire.FieldActivity, Activity: wire.Coding})
	b.Quiet()
}

// TestDoubleActivation: two live activations of alice (two nodes that each place her locally,
// as a cluster does for a moment after a member rejoins). The newer one acquires her; the older
// one's writes never land: its change reaches no follower, and its windows are told to resume.
func TestDoubleActivation(t *testing.T) {
	r := testkit.RequireRedis(t)
	cfg := fast(map[string][]string{"bob": {"alice"}})
	cfg.RedisURL = r.URL()
	na, nb := testkit.StartNode(t, cfg), testkit.StartNode(t, cfg)
	b := nb.Connect(t, wire.Hello{Token: "bob"})
	old := na.Connect(t, wire.Hello{Token: "alice", Window: "w1"})
	old.Send(status(wire.Coding, "A", "Go"))
	b.Expect(wire.Online{ID: "alice", Presence: online(wire.Coding, "A", "Go")})

	// A second activation on node b acquires alice: its first write fences the first one.
	newer := nb.Connect(t, wire.Hello{Token: "alice", Window: "w2"})
	newer.Send(status(wire.Debugging, "B", "Rust"))
	b.Expect(wire.Update{ID: "alice", Has: wire.FieldActivity | wire.FieldProject | wire.FieldLanguage, Activity: wire.Debugging, Project: "B", Language: "Rust"})

	// The old activation's change is refused; its window is closed so the client resumes.
	old.Send(status(wire.Idle, "stale", "stale"))
	old.ExpectClose(wire.ErrInternal, wire.CloseInternal)
	newer.Send(status(wire.Coding, "B", "Rust"))
	b.Expect(wire.Update{ID: "alice", Has: wire.FieldActivity, Activity: wire.Coding})
	b.Quiet()
	b2 := nb.Connect(t, wire.Hello{Token: "bob", Window: "w2"})
	if got := b2.Sync.Users[0].Presence; got != online(wire.Coding, "B", "Rust") {
		t.Fatalf("stored presence = %+v, want the newer activation's", got)
	}
}

// TestClusterRedisRestart: Redis restarts empty under a 2-process cluster. Sessions stay up, a
// change made during the outage reaches the follower once Redis is back, and a newcomer's sync
// (read from the empty-then-rewritten Redis) shows every user as they are, the unchanged one too.
func TestClusterRedisRestart(t *testing.T) {
	r := testkit.RequireRedis(t)
	ps := startClusterProcsOn(t, r, 2, `{"bob": ["alice", "carol"]}`)
	b := ps[0].Connect(t, wire.Hello{Token: "bob"})
	a := ps[1].Connect(t, wire.Hello{Token: "alice"})
	c := ps[0].Connect(t, wire.Hello{Token: "carol"})
	a.Send(status(wire.Coding, "A", "Go"))
	c.Send(status(wire.Coding, "C", "Go"))
	view := map[string]wire.Presence{}
	wire.Apply(view, b.Sync)
	want := map[string]wire.Presence{"alice": online(wire.Coding, "A", "Go"), "carol": online(wire.Coding, "C", "Go")}
	for !sameView(view, want) {
		wire.Apply(view, b.Next())
	}

	r.Stop()
	a.Send(status(wire.Debugging, "Outage", "Go"))
	a.Quiet()
	r.Start()
	b.Timeout = 30 * time.Second
	b.Expect(wire.Update{ID: "alice", Has: wire.FieldActivity | wire.FieldProject, Activity: wire.Debugging, Project: "Outage"})
	want["alice"] = online(wire.Debugging, "Outage", "Go")
	var b2 *testkit.Client
	eventually(t, "a newcomer's sync shows the truth", func() bool {
		b2 = ps[1].Connect(t, wire.Hello{Token: "bob", Window: "w2"})
		got := map[string]wire.Presence{}
		wire.Apply(got, b2.Sync)
		return sameView(got, want)
	})
	c.Send(status(wire.Idle, "C", "Go"))
	b.Expect(wire.Update{ID: "carol", Has: wire.FieldActivity, Activity: wire.Idle})
	b.Quiet()
}
