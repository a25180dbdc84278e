package server_test

import (
	"strings"
	"testing"
	"time"

	"github.com/presenced/presenced/testkit"
	"github.com/presenced/presenced/wire"
)

// TestClusterNodeLoss: 3 nodes; 300 users with one window each spread over them, watched by two
// followers on nodes 0 and 1. Node 2 is killed (SIGKILL). Users whose windows live on the
// survivors, and half of node 2's users who resume on node 0 within the resume window, are
// never seen going offline or coming back; the other half show x with a last seen after the
// kill. Then every surviving session still works, and nothing else reached the followers.
func TestClusterNodeLoss(t *testing.T) {
	// A resume window long enough for the survivors to notice the dead member (seconds) and short
	// enough for the test: the x of the users who do not come back arrives after it.
	wc := startWatchedCluster(t, 300, "--resume-window", "15s")
	killed := time.Now().UnixMilli()
	wc.procs[2].Kill()
	gone := map[string]bool{}
	for i := 2; i < len(wc.names); i += 3 {
		if i%2 == 1 {
			gone[wc.names[i]] = true
			wc.clients[i] = nil
			continue
		}
		r := wc.procs[0].Connect(t, wire.Hello{Token: wc.names[i], Resume: wc.clients[i].Welcome.Resume})
		if !r.Welcome.Resumed {
			t.Fatalf("%s: welcome %+v, want resumed on a survivor", wc.names[i], r.Welcome)
		}
		wc.clients[i] = r
	}
	// The followers see exactly the x of the users who did not come back, nothing else.
	for _, w := range []*testkit.Client{wc.wa, wc.wb} {
		w.Timeout = 60 * time.Second
		seen := map[string]bool{}
		for len(seen) < len(gone) {
			f := w.Next()
			x, ok := f.(wire.Offline)
			if !ok || !gone[x.ID] || seen[x.ID] || x.TS < killed {
				t.Fatalf("%s got %#v; want only x (ts ≥ %d) for %v", w, f, killed, keys(gone))
			}
			seen[x.ID] = true
		}
	}
	wc.finalRound(t)
}

func keys(m map[string]bool) string {
	var out []string
	for k := range m {
		out = append(out, k)
	}
	return strings.Join(out, ",")
}
