package main

import (
	"context"
	"errors"
	"fmt"
	"os"
	"slices"
	"strconv"
	"strings"
	"testing"
	"time"

	"go.uber.org/goleak"

	"github.com/presenced/presenced/auth"
	"github.com/presenced/presenced/server"
	"github.com/presenced/presenced/testkit"
	"github.com/presenced/presenced/testkit/leak"
)

func TestMain(m *testing.M) {
	// --procs starts this binary again as workers: the test binary plays presence-load.
	if len(os.Args) > 2 && os.Args[1] == "run" && slices.Contains(os.Args, "--worker") {
		os.Exit(mainArgs(os.Args[1:], os.Stdout, os.Stderr))
	}
	// Race-enabled workers would otherwise sleep a second at exit (GORACE atexit_sleep_ms).
	_ = os.Setenv("GORACE", strings.TrimSpace(os.Getenv("GORACE")+" atexit_sleep_ms=0"))
	code := m.Run()
	if code == 0 {
		if err := goleak.Find(leak.Options()...); err != nil {
			fmt.Fprintln(os.Stderr, "goleak:", err)
			code = 1
		}
	}
	os.Exit(code)
}

// testDebounce is the server's debounce in these tests: short, so a status phase is quick.
const testDebounce = 50 * time.Millisecond

// startNode runs an in-process node with dev auth over the generated graph.
func startNode(t *testing.T, p GraphParams, tune ...func(*server.Config)) *testkit.Node {
	t.Helper()
	g, err := GenerateGraph(p)
	if err != nil {
		t.Fatal(err)
	}
	cfg := testkit.DevConfig(g.Map())
	cfg.User.Debounce = testDebounce
	for _, f := range tune {
		f(&cfg)
	}
	return testkit.StartNode(t, cfg)
}

type logWriter struct{ t *testing.T }

func (w logWriter) Write(b []byte) (int, error) {
	w.t.Log(strings.TrimRight(string(b), "\n"))
	return len(b), nil
}

// run parses flags the way the command does and runs in process.
func run(t *testing.T, node *testkit.Node, args ...string) *Report {
	t.Helper()
	cfg, _, err := parseRun(append([]string{"--url", node.URL, "--debounce", testDebounce.String(),
		"--users", "60", "--follows", "5", "--seed", "3", "--sources", "2", "--period", "200ms", "--timeout", "60s"}, args...), logWriter{t})
	if err != nil {
		t.Fatal(err)
	}
	cfg.Exe = os.Args[0]
	ctx, cancel := context.WithTimeout(context.Background(), 60*time.Second)
	defer cancel()
	rep, err := Run(ctx, cfg, logWriter{t})
	if rep != nil {
		var sb strings.Builder
		rep.Print(&sb)
		t.Log("\n" + sb.String())
	}
	if err != nil {
		t.Fatalf("run: %v", err)
	}
	return rep
}

// TestStatusCheck is the fan-out run with --check. The server pings every 100 ms and drops peers
// silent for 350 ms, so the idle hold also proves the readers answer pings.
func TestStatusCheck(t *testing.T) {
	node := startNode(t, GraphParams{Users: 60, Follows: 5, Seed: 3, Alpha: 1}, func(c *server.Config) {
		c.PingInterval, c.DeadAfter = 100*time.Millisecond, 350*time.Millisecond
		c.StampFlush = true
	})
	rep := run(t, node, "--idle", "1s", "--pid", strconv.Itoa(os.Getpid()), "--rate", "80", "--duration", "1500ms", "--check")
	if !rep.OK {
		t.Fatalf("run failed: %v", rep.Errors)
	}
	if rep.Pings == 0 || len(rep.Unexpected) != 0 {
		t.Errorf("%d pings answered, unexpected closes %v: want pings and no closes", rep.Pings, rep.Unexpected)
	}
	if rep.RSS.IdleKiB == 0 || len(rep.RSS.Samples) != 5 {
		t.Errorf("idle RSS %d from samples %v: want the median of 5", rep.RSS.IdleKiB, rep.RSS.Samples)
	}
	if rep.Connected != 60 {
		t.Errorf("connected %d, want 60", rep.Connected)
	}
	c := rep.Check
	if c == nil || c.Violations != 0 || c.Mismatches != 0 || c.DecodeErrs != 0 || c.Clients != 60 {
		t.Errorf("check %+v, want 60 clients checked with no violations or mismatches", c)
	}
	if rep.Status.Sent == 0 || rep.Status.Deliveries == 0 || rep.Status.PerSecond <= 0 {
		t.Errorf("sent %d, deliveries %d (%.0f/s): want both > 0", rep.Status.Sent, rep.Status.Deliveries, rep.Status.PerSecond)
	}
	checkDeliveries(t, rep)
	if rep.Latency.Delivery.N == 0 {
		t.Error("no latency samples")
	}
	// With --stamp-flush every u and o of the status phase carries its flush time.
	if ph := rep.Frames["status"]; rep.Latency.Flush.N != uint64(ph["u"]+ph["o"]) || rep.Latency.Flush.N == 0 {
		t.Errorf("%d flush→receipt samples, want one per u and o of the status phase: %d", rep.Latency.Flush.N, ph["u"]+ph["o"])
	}
}

// checkDeliveries: each change reaches each follower window once. More than that is a bug; fewer
// happens only when a slow (race-enabled, shared) machine lets the debounce merge two changes.
func checkDeliveries(t *testing.T, rep *Report) {
	t.Helper()
	d, e := rep.Status.Deliveries, rep.Status.Expected
	if d == 0 || d > e || float64(d) < 0.9*float64(e) {
		t.Errorf("deliveries %d, want one per follower window of each change: %d", d, e)
	}
}

func TestStorm(t *testing.T) {
	node := startNode(t, GraphParams{Users: 60, Follows: 5, Seed: 3, Alpha: 1})
	rep := run(t, node, "--rate", "60", "--duration", "700ms", "--storm", "--storm-window", "1s", "--observers", "0.1", "--check")
	if !rep.OK {
		t.Fatalf("run failed: %v", rep.Errors)
	}
	s := rep.Storm
	if s == nil || s.Dropped == 0 || s.Served != s.Dropped || s.Failed != 0 || s.XO != 0 || s.Observers == 0 {
		t.Fatalf("storm %+v: want every dropped client served, observers kept, no x/o", s)
	}
	if s.Dropped+s.Observers != 60 {
		t.Errorf("dropped %d + observers %d, want 60", s.Dropped, s.Observers)
	}
	if rep.Latency.Reconnect.N != uint64(s.Served) {
		t.Errorf("reconnect latency samples %d, want %d", rep.Latency.Reconnect.N, s.Served)
	}
	if c := rep.Check; c == nil || c.Violations != 0 || c.Mismatches != 0 {
		t.Errorf("check after the storm %+v", c)
	}
}

// TestWorkers runs the same check with two worker processes (this test binary re-executed), and
// more clients than users, so some users have two windows.
func TestWorkers(t *testing.T) {
	node := startNode(t, GraphParams{Users: 60, Follows: 5, Seed: 3, Alpha: 1})
	rep := run(t, node, "--clients", "80", "--procs", "2", "--rate", "60", "--duration", "1s", "--check")
	if !rep.OK {
		t.Fatalf("run failed: %v", rep.Errors)
	}
	if rep.Connected != 80 || rep.Check == nil || rep.Check.Clients != 80 || rep.Check.Mismatches != 0 || rep.Check.Violations != 0 {
		t.Fatalf("connected %d, check %+v", rep.Connected, rep.Check)
	}
	checkDeliveries(t, rep)
}

func TestFollowsZero(t *testing.T) {
	node := startNode(t, GraphParams{Users: 60, Follows: 0, Seed: 3, Alpha: 1})
	rep := run(t, node, "--follows", "0", "--rate", "50", "--duration", "500ms", "--check")
	if !rep.OK || rep.Status.Deliveries != 0 || rep.Check.Mismatches != 0 {
		t.Fatalf("ok %v, deliveries %d, check %+v: want no deliveries at all", rep.OK, rep.Status.Deliveries, rep.Check)
	}
}

type refuseAll struct{}

func (refuseAll) Authenticate(context.Context, string) (auth.Identity, error) {
	return auth.Identity{}, auth.ErrUnauthorized
}

// A refused hello is a hello error named by its error frame and close code, and fails the run.
func TestHelloRefused(t *testing.T) {
	node := startNode(t, GraphParams{Users: 60, Follows: 5, Seed: 3, Alpha: 1}, func(c *server.Config) { c.Auth = refuseAll{} })
	cfg, _, err := parseRun([]string{"--url", node.URL, "--users", "60", "--follows", "5", "--seed", "3", "--clients", "5"}, logWriter{t})
	if err != nil {
		t.Fatal(err)
	}
	rep, err := Run(context.Background(), cfg, logWriter{t})
	if err == nil || rep == nil || rep.OK {
		t.Fatalf("run with every hello refused: err %v, report %+v: want a failed run", err, rep)
	}
	if rep.HelloErrs != 5 || rep.Connect.Reasons["hello refused: error unauthorized, close 4001"] != 5 {
		t.Errorf("hello errors %d, reasons %v", rep.HelloErrs, rep.Connect.Reasons)
	}
	if !errors.Is(err, errNoClient) {
		t.Errorf("err %v, want errNoClient", err)
	}
}

// TestRunAgainstFakeGitHub: the same run with presenced's real GitHub auth path, against the
// graph served as a fake GitHub API (what `presence-load github` serves): every hello is a
// GET /user and the follow lists come page by page; isolation and final views still check out.
func TestRunAgainstFakeGitHub(t *testing.T) {
	g, err := GenerateGraph(GraphParams{Users: 60, Follows: 5, Seed: 3, Alpha: 1})
	if err != nil {
		t.Fatal(err)
	}
	fake := serveGitHub(g, nil, "tok-")
	t.Cleanup(fake.Close)
	cfg, _ := testkit.GitHubConfig(fake)
	cfg.User.Debounce = testDebounce
	node := testkit.StartNode(t, cfg)
	rep := run(t, node, "--token-prefix", "tok-", "--rate", "100", "--duration", "1s", "--check")
	if !rep.OK || rep.Check == nil || rep.Check.Mismatches != 0 || rep.Connected != 60 {
		t.Fatalf("run against the fake GitHub failed: %+v", rep)
	}
	st := fake.Requests()
	if st.User < 60 || st.Following < 60 {
		t.Fatalf("fake GitHub saw %d GET /user and %d following pages, want at least one of each per user", st.User, st.Following)
	}
}
