package server_test

import (
	"context"
	"encoding/json"
	"fmt"
	"regexp"
	"strconv"
	"testing"

	"github.com/redis/go-redis/v9"

	"github.com/presenced/presenced/testkit"
	"github.com/presenced/presenced/wire"
)

// TestClusterOK is the O(K) proof across processes: 3 nodes, 2,000 connected users, alice with
// 3 followers on two of the nodes. One change of alice is exactly 1 PUBLISH in Redis (INFO
// commandstats) and exactly 3 frames across all 2,000 clients, and the node with no follower
// of alice does not subscribe to presence:alice.
func TestClusterOK(t *testing.T) {
	const ring = 1995 // u0..u1994 follow the next; plus alice, f1..f3 and a watcher = 2,000
	graph := map[string][]string{"f1": {"alice"}, "f2": {"alice"}, "f3": {"alice"}, "watcher": {"f1", "f2", "f3"}}
	for i := range ring {
		graph[fmt.Sprintf("u%d", i)] = []string{fmt.Sprintf("u%d", (i+1)%ring)}
	}
	gj, _ := json.Marshal(graph)
	r := testkit.RequireRedis(t)
	ps := startClusterProcsOn(t, r, 3, string(gj))
	rdb := redis.NewClient(&redis.Options{Addr: r.Addr})
	defer rdb.Close()

	// f1, f2 on node 0, f3 on node 1, alice on node 2, the rest round-robin.
	var all []*testkit.Client
	connect := func(p *testkit.Proc, user string) *testkit.Client {
		c := p.Connect(t, wire.Hello{Token: user})
		all = append(all, c)
		return c
	}
	f := []*testkit.Client{connect(ps[0], "f1"), connect(ps[0], "f2"), connect(ps[1], "f3")}
	w := connect(ps[2], "watcher")
	for i := range ring {
		connect(ps[i%3], fmt.Sprintf("u%d", i))
	}
	// Settle: every user's coming online has been published and delivered.
	for _, u := range w.Sync.Users {
		if u.Presence.State == wire.StateOffline {
			if _, ok := w.Next().(wire.Online); !ok {
				t.Fatal("watcher: want o for each of f1..f3 its sync showed offline")
			}
		}
	}
	for _, c := range all[4:] {
		if c.Sync.Users[0].Presence.State == wire.StateOffline {
			if _, ok := c.Next().(wire.Online); !ok {
				t.Fatalf("%s: want o for its followee", c)
			}
		}
	}
	a := ps[2].Connect(t, wire.Hello{Token: "alice"})
	for _, c := range f {
		c.Expect(wire.Online{ID: "alice", Presence: online(wire.Idle, "", "")})
	}

	ctx := context.Background()
	before := publishes(t, rdb)
	a.Send(coding())
	for _, c := range f {
		c.Expect(wire.Update{ID: "alice", Has: wire.FieldActivity, Activity: wire.Coding})
	}
	for _, c := range all {
		c.Quiet()
	}
	if got := publishes(t, rdb) - before; got != 1 {
		t.Errorf("PUBLISH calls for one change = %d, want 1", got)
	}
	subs, err := rdb.PubSubNumSub(ctx, "presence:alice").Result()
	if err != nil {
		t.Fatal(err)
	}
	if subs["presence:alice"] != 2 {
		t.Errorf("subscriptions to presence:alice = %d, want 2 (the nodes of f1..f3, not alice's)", subs["presence:alice"])
	}
}

var publishStat = regexp.MustCompile(`cmdstat_publish:calls=(\d+)`)

func publishes(t *testing.T, rdb *redis.Client) int {
	t.Helper()
	info, err := rdb.Info(context.Background(), "commandstats").Result()
	if err != nil {
		t.Fatal(err)
	}
	m := publishStat.FindStringSubmatch(info)
	if m == nil {
		return 0
	}
	n, _ := strconv.Atoi(m[1])
	return n
}
