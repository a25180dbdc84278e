package server_test

import (
	"fmt"
	"net"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"testing"

	"github.com/presenced/presenced/testkit"
	"github.com/presenced/presenced/wire"
)

func freePorts(t *testing.T, n int) []int {
	t.Helper()
	var ports []int
	var lns []net.Listener
	for range n {
		ln, err := net.Listen("tcp", "127.0.0.1:0")
		if err != nil {
			t.Fatal(err)
		}
		lns = append(lns, ln)
		ports = append(ports, ln.Addr().(*net.TCPAddr).Port)
	}
	for _, ln := range lns {
		_ = ln.Close()
	}
	return ports
}

// startClusterProcs starts size presenced processes that form one cluster over one Redis, and
// waits until every member sees all of them (so every member places a user on the same one).
func startClusterProcs(t *testing.T, size int, graph string, extra ...string) []*testkit.Proc {
	t.Helper()
	bin := testkit.BuildPresenced(t)
	redis := testkit.RequireRedis(t)
	gf := filepath.Join(t.TempDir(), "graph.json")
	if err := os.WriteFile(gf, []byte(graph), 0o600); err != nil {
		t.Fatal(err)
	}
	ports := freePorts(t, 2*size)
	var members []string
	for i := range size {
		members = append(members, fmt.Sprintf("127.0.0.1:%d", ports[size+i]))
	}
	procs := make([]*testkit.Proc, size)
	var wg sync.WaitGroup
	for i := range size {
		wg.Add(1)
		go func() {
			defer wg.Done()
			args := append([]string{"--auth", "dev", "--graph", gf, "--debounce", "20ms",
				"--redis", redis.URL(), "--cluster-port", fmt.Sprint(ports[i]),
				"--cluster-automanage-port", fmt.Sprint(ports[size+i]), "--cluster-members", strings.Join(members, ",")}, extra...)
			procs[i] = testkit.StartProcess(t, bin, args...)
		}()
	}
	wg.Wait()
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
