package server_test

import (
	"encoding/json"
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/presenced/presenced/testkit"
	"github.com/presenced/presenced/wire"
)

// startClusterProcs starts size presenced processes that form one cluster over one Redis, and
// waits until every member sees all of them (so every member places a user on the same one).
func startClusterProcs(t *testing.T, size int, graph string, extra ...string) []*testkit.Proc {
	t.Helper()
	return startClusterProcsOn(t, testkit.RequireRedis(t), size, graph, extra...)
}

func startClusterProcsOn(t *testing.T, redis *testkit.Redis, size int, graph string, extra ...string) []*testkit.Proc {
	t.Helper()
	bin := testkit.BuildPresenced(t)
	gf := filepath.Join(t.TempDir(), "graph.json")
	if err := os.WriteFile(gf, []byte(graph), 0o600); err != nil {
		t.Fatal(err)
	}
	ports := testkit.FreePorts(t, 2*size)
	var members []string
	for i := range size {
		members = append(members, fmt.Sprintf("127.0.0.1:%d", ports[size+i]))
	}
	procs := make([]*testkit.Proc, size)
	errs := make([]error, size)
	var wg sync.WaitGroup
	for i := range size {
		wg.Add(1)
		go func() {
			defer wg.Done()
			args := append([]string{"--auth", "dev", "--graph", gf, "--debounce", "20ms",
				"--redis", redis.URL(), "--cluster-port", fmt.Sprint(ports[i]),
				"--cluster-automanage-port", fmt.Sprint(ports[size+i]), "--cluster-members", strings.Join(members, ",")}, extra...)
			procs[i], errs[i] = testkit.StartProcessE(t, bin, args...)
		}()
	}
	wg.Wait()
	for _, err := range errs {
		if err != nil {
			t.Fatal(err)
		}
	}
	for _, p := range procs {
		p.WaitMembers(t, size)
	}
	return procs
}

// TestClusterWindowsOnTwoNodes: alice's two windows sit on two processes; her one grain
// aggregates them (TST-PRESENCE-004 across nodes) and bob, on either process, sees one entry.
// A window dropped on one process resumes on the other without followers seeing anything.
func TestClusterWindowsOnTwoNodes(t *testing.T) {
	ps := startClusterProcs(t, 2, `{"bob": ["alice"]}`)
	b := ps[1].Connect(t, wire.Hello{Token: "bob"})
	w1 := ps[0].Connect(t, wire.Hello{Token: "alice", Window: "w1"})
	b.Expect(wire.Online{ID: "alice", Presence: online(wire.Idle, "", "")})
	w2 := ps[1].Connect(t, wire.Hello{Token: "alice", Window: "w2"})
	w2.Send(status(wire.Coding, "MyApp", "Go"))
	b.Expect(wire.Update{ID: "alice", Has: wire.FieldActivity | wire.FieldProject | wire.FieldLanguage, Activity: wire.Coding, Project: "MyApp", Language: "Go"})
	w1.Send(status(wire.Debugging, "Other", "Rust"))
	b.Expect(wire.Update{ID: "alice", Has: wire.FieldActivity | wire.FieldProject | wire.FieldLanguage, Activity: wire.Debugging, Project: "Other", Language: "Rust"})

	// w1 drops on process 0 and resumes on process 1: a token issued by one node works on another.
	w1.Drop()
	w1b := ps[1].Connect(t, wire.Hello{Token: "alice", Resume: w1.Welcome.Resume})
	if !w1b.Welcome.Resumed {
		t.Fatalf("welcome = %+v, want resumed on the other node", w1b.Welcome)
	}
	w1b.Send(status(wire.Idle, "Other", "Rust"))
	b.Expect(wire.Update{ID: "alice", Has: wire.FieldActivity | wire.FieldProject | wire.FieldLanguage, Activity: wire.Coding, Project: "MyApp", Language: "Go"})
	b.Quiet()
}

// watchedCluster is 3 processes with users u0..u<n-1>, one window each on node i%3, each
// Coding in a project named after it, and two followers of all of them: wa on node 0 and wb on
// node 1, whose views already show every user.
type watchedCluster struct {
	procs   []*testkit.Proc
	names   []string
	clients []*testkit.Client
	wa, wb  *testkit.Client
}

func startWatchedCluster(t *testing.T, users int, extra ...string) *watchedCluster {
	t.Helper()
	wc := &watchedCluster{}
	for i := range users {
		wc.names = append(wc.names, fmt.Sprintf("u%d", i))
	}
	gj, _ := json.Marshal(map[string][]string{"wa": wc.names, "wb": wc.names})
	wc.procs = startClusterProcs(t, 3, string(gj), extra...)
	wc.wa = wc.procs[0].Connect(t, wire.Hello{Token: "wa"})
	wc.wb = wc.procs[1].Connect(t, wire.Hello{Token: "wb"})
	truth := map[string]wire.Presence{}
	for i, u := range wc.names {
		c := wc.procs[i%3].Connect(t, wire.Hello{Token: u, Window: "w"})
		c.Send(status(wire.Coding, u, "Go"))
		wc.clients = append(wc.clients, c)
		truth[u] = online(wire.Coding, u, "Go")
	}
	for _, w := range []*testkit.Client{wc.wa, wc.wb} {
		view := map[string]wire.Presence{}
		wire.Apply(view, w.Sync)
		for !sameView(view, truth) {
			wire.Apply(view, w.Next())
		}
	}
	return wc
}

// finalRound has every live client change once and checks that each follower gets exactly one
// u per live user and nothing else.
func (wc *watchedCluster) finalRound(t *testing.T) {
	t.Helper()
	want := map[string]bool{}
	for i, c := range wc.clients {
		if c != nil {
			c.Send(status(wire.Debugging, "final", "Go"))
			want[wc.names[i]] = true
		}
	}
	for _, w := range []*testkit.Client{wc.wa, wc.wb} {
		w.Timeout = 60 * time.Second
		got := map[string]bool{}
		for len(got) < len(want) {
			f := w.Next()
			u, ok := f.(wire.Update)
			if !ok || !want[u.ID] || got[u.ID] || u.Activity != wire.Debugging || u.Project != "final" {
				t.Fatalf("%s got %#v; want one u to Debugging/final per live user, nothing else", w, f)
			}
			got[u.ID] = true
		}
		w.Quiet()
	}
}

func sameView(view, truth map[string]wire.Presence) bool {
	for k, v := range truth {
		if view[k] != v {
			return false
		}
	}
	return true
}
