package server_test

import (
	"encoding/json"
	"testing"
	"time"

	"github.com/presenced/presenced/server"
	"github.com/presenced/presenced/testkit"
	"github.com/presenced/presenced/wire"
)

// fast is a real-clock config for the loopback tests. Nothing here waits for a timer to prove
// a point: every expectation is a frame (or the pong barrier); the timing rules themselves are
// tested in virtual time (virtual_test.go).
func fast(graph map[string][]string) server.Config {
	cfg := testkit.DevConfig(graph)
	cfg.User.Debounce = 10 * time.Millisecond
	return cfg
}

func online(a wire.Activity, p, l string) wire.Presence {
	return wire.Presence{State: wire.StateOnline, Activity: a, Project: p, Language: l}
}

func offline(ts int64) wire.Presence { return wire.Presence{State: wire.StateOffline, TS: ts} }

func status(a wire.Activity, p, l string) wire.Status {
	return wire.Status{Has: wire.FieldActivity | wire.FieldProject | wire.FieldLanguage, Activity: a, Project: p, Language: l}
}

func coding() wire.Status { return wire.Status{Has: wire.FieldActivity, Activity: wire.Coding} }

// topology places the test's users on nodes: the TST tests run on one in-memory node, on one
// node with Redis, on two nodes sharing one Redis, and on a cluster of two presenced processes
// (follower and followed on different nodes in the last two).
type topology struct {
	name  string
	nodes func(t *testing.T, cfg server.Config) (a, b *testkit.Node)
}

var topologies = []topology{
	{"memory", func(t *testing.T, cfg server.Config) (*testkit.Node, *testkit.Node) {
		n := testkit.StartNode(t, cfg)
		return n, n
	}},
	{"redis", func(t *testing.T, cfg server.Config) (*testkit.Node, *testkit.Node) {
		cfg.RedisURL = testkit.RequireRedis(t).URL()
		n := testkit.StartNode(t, cfg)
		return n, n
	}},
	{"two-nodes", func(t *testing.T, cfg server.Config) (*testkit.Node, *testkit.Node) {
		cfg.RedisURL = testkit.RequireRedis(t).URL()
		return testkit.StartNode(t, cfg), testkit.StartNode(t, cfg)
	}},
	{"cluster-processes", func(t *testing.T, cfg server.Config) (*testkit.Node, *testkit.Node) {
		graph, _ := json.Marshal(cfg.Graph)
		ps := startClusterProcs(t, 2, string(graph))
		return ps[0].Node, ps[1].Node
	}},
}

// eachTopology runs f once per topology; alice's windows go to node a, everyone else to b.
func eachTopology(t *testing.T, graph map[string][]string, f func(t *testing.T, a, b *testkit.Node)) {
	for _, tp := range topologies {
		t.Run(tp.name, func(t *testing.T) {
			a, b := tp.nodes(t, fast(graph))
			f(t, a, b)
		})
	}
}

// TST-PRESENCE-001: B follows A; A's status reaches B as one u frame with only the change,
// not a full user list.
func TestTSTPresence001DeltaUpdateDelivery(t *testing.T) {
	eachTopology(t, map[string][]string{"bob": {"alice"}}, tst001)
}

func tst001(t *testing.T, na, n *testkit.Node) {
	b := n.Connect(t, wire.Hello{Token: "bob"})
	if got := b.Sync; len(got.Users) != 1 || got.Users[0] != (wire.SyncUser{Username: "alice", Presence: offline(0)}) {
		t.Fatalf("sync = %+v", got)
	}
	a := na.Connect(t, wire.Hello{Token: "alice"})
	b.ExpectRaw(`{"t":"o","id":"alice","s":"Online","a":"Idle"}`)
	a.Send(coding())
	b.ExpectRaw(`{"t":"u","id":"alice","a":"Coding"}`)
	b.Quiet()
}

// TST-PRESENCE-002: C does not follow A and receives nothing about A, ever.
func TestTSTPresence002NonFollowerIsolation(t *testing.T) {
	eachTopology(t, map[string][]string{"bob": {"alice"}, "carol": {"dave"}}, tst002)
}

func tst002(t *testing.T, na, n *testkit.Node) {
	b := n.Connect(t, wire.Hello{Token: "bob"})
	c := n.Connect(t, wire.Hello{Token: "carol"})
	if len(c.Sync.Users) != 1 || c.Sync.Users[0].Username != "dave" {
		t.Fatalf("carol's sync = %+v, want only dave", c.Sync)
	}
	a := na.Connect(t, wire.Hello{Token: "alice"})
	b.Expect(wire.Online{ID: "alice", Presence: online(wire.Idle, "", "")})
	a.Send(status(wire.Debugging, "MyApp", "Go"))
	b.Expect(wire.Update{ID: "alice", Has: wire.FieldActivity | wire.FieldProject | wire.FieldLanguage,
		Activity: wire.Debugging, Project: "MyApp", Language: "Go"})
	before := time.Now().UnixMilli()
	a.Send(wire.Bye{})
	a.ExpectClose("", wire.CloseNormal)
	expectOffline(t, b, "alice", before)
	// Every publish about alice has reached bob's socket; carol's pong comes before anything
	// queued after it, and nothing was queued before it.
	c.Quiet()
}

// expectOffline expects x for id with a last seen between since and now: in real time the exact
// ms is unknowable (virtual-time tests assert exact values).
func expectOffline(t *testing.T, c *testkit.Client, id string, since int64) {
	t.Helper()
	f := c.Next()
	x, ok := f.(wire.Offline)
	if now := time.Now().UnixMilli(); !ok || x.ID != id || x.TS < since || x.TS > now {
		t.Fatalf("got %#v, want x for %s with ts in [%d, %d]", f, id, since, now)
	}
}

// TST-PRESENCE-003: a dropped socket that resumes within the window: no x, no o, and the
// session continues (the next change arrives as a plain u).
func TestTSTPresence003SessionResumption(t *testing.T) {
	eachTopology(t, map[string][]string{"bob": {"alice"}}, tst003)
}

func tst003(t *testing.T, n0, n *testkit.Node) {
	b := n.Connect(t, wire.Hello{Token: "bob"})
	a := n0.Connect(t, wire.Hello{Token: "alice", Window: "w1"})
	b.Expect(wire.Online{ID: "alice", Presence: online(wire.Idle, "", "")})
	a.Send(status(wire.Coding, "MyApp", "Go"))
	b.Expect(wire.Update{ID: "alice", Has: wire.FieldActivity | wire.FieldProject | wire.FieldLanguage, Activity: wire.Coding, Project: "MyApp", Language: "Go"})
	token := a.Welcome.Resume
	a.Drop()

	a2 := n0.Connect(t, wire.Hello{Token: "alice", Resume: token})
	if !a2.Welcome.Resumed || a2.Welcome.ID != "alice" || a2.Welcome.Resume == token || len(a2.Welcome.Resume) < 22 {
		t.Fatalf("welcome = %+v, want resumed with a new token", a2.Welcome)
	}
	a2.Send(wire.Status{Has: wire.FieldActivity, Activity: wire.Debugging})
	// The first frame bob sees after the drop and the resume is the change itself.
	b.ExpectRaw(`{"t":"u","id":"alice","a":"Debugging"}`)
	b.Quiet()

	// The used token is single-use: it fails, and does not disturb the live window.
	a3 := n0.Dial(t)
	a3.Send(wire.Hello{Token: "alice", Resume: token})
	a3.ExpectClose(wire.ErrResumeFailed, wire.CloseResumeFailed)
	a2.Quiet()
	b.Quiet()
}

// TST-PRESENCE-004: two windows, Idle and Coding: followers see one entry, Coding.
func TestTSTPresence004MultiWindowAggregation(t *testing.T) {
	eachTopology(t, map[string][]string{"bob": {"alice"}}, tst004)
}

func tst004(t *testing.T, na, n *testkit.Node) {
	b := n.Connect(t, wire.Hello{Token: "bob"})
	w1 := na.Connect(t, wire.Hello{Token: "alice", Window: "w1"})
	b.Expect(wire.Online{ID: "alice", Presence: online(wire.Idle, "", "")})
	w1.Send(status(wire.Idle, "Docs", "Markdown"))
	b.Expect(wire.Update{ID: "alice", Has: wire.FieldProject | wire.FieldLanguage, Project: "Docs", Language: "Markdown"})
	w2 := na.Connect(t, wire.Hello{Token: "alice", Window: "w2"})
	w2.Send(status(wire.Coding, "MyApp", "Go"))
	b.Expect(wire.Update{ID: "alice", Has: wire.FieldActivity | wire.FieldProject | wire.FieldLanguage, Activity: wire.Coding, Project: "MyApp", Language: "Go"})

	// A newcomer's sync has one entry for alice, the most active window's.
	b2 := n.Connect(t, wire.Hello{Token: "bob", Window: "second"})
	want := wire.Sync{Users: []wire.SyncUser{{Username: "alice", Presence: online(wire.Coding, "MyApp", "Go")}}}
	if len(b2.Sync.Users) != 1 || b2.Sync.Users[0] != want.Users[0] {
		t.Fatalf("sync = %+v, want %+v", b2.Sync, want)
	}
	// The Coding window leaves: the Idle one is what is left.
	w2.Send(wire.Bye{})
	b.Expect(wire.Update{ID: "alice", Has: wire.FieldActivity | wire.FieldProject | wire.FieldLanguage, Activity: wire.Idle, Project: "Docs", Language: "Markdown"})
	w1.Quiet()
}
