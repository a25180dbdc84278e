package main

import (
	"context"
	"errors"
	"net"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/presenced/presenced/client"
	"github.com/presenced/presenced/server"
	"github.com/presenced/presenced/testkit"
	"github.com/presenced/presenced/wire"
)

// waitFor bounds every wait in these tests.
const waitFor = 10 * time.Second

var graph = map[string][]string{"bob": {"alice", "carol"}, "alice": {"bob"}}

func quickConfig() server.Config {
	cfg := testkit.DevConfig(graph)
	cfg.User.Debounce = 20 * time.Millisecond
	return cfg
}

// output is an io.Writer the command writes while the test reads; every write wakes waiters.
type output struct {
	mu    sync.Mutex
	b     strings.Builder
	wrote chan struct{} // cap 1
}

func newOutput() *output { return &output{wrote: make(chan struct{}, 1)} }

func (o *output) Write(p []byte) (int, error) {
	o.mu.Lock()
	defer o.mu.Unlock()
	select {
	case o.wrote <- struct{}{}:
	default:
	}
	return o.b.Write(p)
}

func (o *output) String() string {
	o.mu.Lock()
	defer o.mu.Unlock()
	return o.b.String()
}

// waitContains waits until the output holds want n times.
func (o *output) waitContains(t *testing.T, want string, n int) {
	t.Helper()
	deadline := time.NewTimer(waitFor)
	defer deadline.Stop()
	for strings.Count(o.String(), want) < n {
		select {
		case <-o.wrote:
		case <-deadline.C:
			t.Fatalf("output never held %q %d times; it is:\n%s", want, n, o.String())
		}
	}
}

// proc is one presencectl command line running in-process.
type proc struct {
	cancel         context.CancelFunc
	done           chan int
	stdout, stderr *output
	tables         chan string
	code           int
	exited         bool
}

// start runs presencectl with args; dial may redirect its connections. The command is stopped
// at the end of the test.
func start(t *testing.T, dial client.Options, args ...string) *proc {
	ctx, cancel := context.WithCancel(context.Background())
	p := &proc{cancel: cancel, done: make(chan int, 1), stdout: newOutput(), stderr: newOutput(), tables: make(chan string, 64)}
	e := env{stdout: p.stdout, stderr: p.stderr, getenv: func(string) string { return "" }, dial: dial,
		backoff: 10 * time.Millisecond,
		rendered: func(table string) {
			select {
			case p.tables <- table:
			case <-ctx.Done():
			}
		}}
	go func() { p.done <- run(ctx, args, e) }()
	t.Cleanup(func() { p.stop(t) })
	return p
}

// stop cancels the command (Ctrl-C) and returns its exit status.
func (p *proc) stop(t *testing.T) int {
	t.Helper()
	p.cancel()
	return p.wait(t)
}

// wait returns the exit status once the command ends by itself.
func (p *proc) wait(t *testing.T) int {
	t.Helper()
	if !p.exited {
		select {
		case p.code = <-p.done:
			p.exited = true
		case <-time.After(waitFor):
			t.Fatalf("presencectl did not exit; stderr:\n%s", p.stderr)
		}
	}
	return p.code
}

// waitRow waits for a table whose row for user starts with want (user, state, activity,
// project, language) and returns that table.
func (p *proc) waitRow(t *testing.T, user string, want ...string) string {
	t.Helper()
	deadline := time.NewTimer(waitFor)
	defer deadline.Stop()
	var last string
	for {
		select {
		case last = <-p.tables:
			// Fields are compared as words: "just now" is one field of the table but two words.
			if got := row(last, user); len(got) > 0 && strings.HasPrefix(strings.Join(got[1:], " ")+" ", strings.Join(want, " ")+" ") {
				return last
			}
		case <-deadline.C:
			t.Fatalf("no table with %s as %v; last table:\n%s\nstderr:\n%s", user, want, last, p.stderr)
		}
	}
}

// row returns the fields of user's row in table.
func row(table, user string) []string {
	for _, line := range strings.Split(table, "\n") {
		if f := strings.Fields(line); len(f) > 0 && f[0] == user {
			return f
		}
	}
	return nil
}

// TestWatchAndStatus: bob's watch shows alice come online with the status given on the
// command line, and go offline when the status command is stopped (bye).
func TestWatchAndStatus(t *testing.T) {
	n := testkit.StartNode(t, quickConfig())
	w := start(t, client.Options{}, "watch", "--token", "bob", "--url", n.URL)
	first := w.waitRow(t, "alice", "Offline", "-", "-", "-", "never")
	if row(first, "carol") == nil || strings.Index(first, "alice") > strings.Index(first, "carol") {
		t.Fatalf("first table does not list alice then carol (the sync's order):\n%s", first)
	}

	s := start(t, client.Options{}, "status", "--token", "alice", "--activity", "Coding", "--project", "X", "--language", "Go", "--window", "w1", "--url", n.URL)
	w.waitRow(t, "alice", "Online", "Coding", "X", "Go", "now")
	s.stdout.waitContains(t, "alice online (window w1, resume token saved)\n", 1)

	if code := s.stop(t); code != 0 {
		t.Fatalf("status exit = %d, stderr:\n%s", code, s.stderr)
	}
	if !strings.HasSuffix(s.stdout.String(), "alice said bye\n") {
		t.Errorf("status stdout = %q, want it to end with the bye", s.stdout)
	}
	w.waitRow(t, "alice", "Offline", "-", "-", "-", "just now")
	if code := w.stop(t); code != 0 {
		t.Fatalf("watch exit = %d, stderr:\n%s", code, w.stderr)
	}
	// Not a terminal: each table is followed by a blank line, and there are no escapes.
	out := w.stdout.String()
	if !strings.HasPrefix(out, "USER ") || !strings.HasSuffix(out, "\n\n") || strings.Contains(out, "\x1b") {
		t.Errorf("watch stdout is not plain tables separated by blank lines:\n%q", out)
	}
	if s.stderr.String() != "" || w.stderr.String() != "" {
		t.Errorf("unexpected stderr: status %q, watch %q", s.stderr, w.stderr)
	}
}

// TestReplacedStops: another socket taking the window over is a close to stop at: the status
// command reports 4003 with the advice and exits 1.
func TestReplacedStops(t *testing.T) {
	n := testkit.StartNode(t, quickConfig())
	w := start(t, client.Options{}, "watch", "--token", "bob", "--url", n.URL)
	s := start(t, client.Options{}, "status", "--token", "alice", "--activity", "Debugging", "--window", "w1", "--url", n.URL)
	w.waitRow(t, "alice", "Online", "Debugging")

	n.Connect(t, wire.Hello{Token: "alice", Window: "w1"})
	if code := s.wait(t); code != 1 {
		t.Fatalf("status exit = %d, want 1; stderr:\n%s", code, s.stderr)
	}
	for _, want := range []string{"server error replaced:", "4003", "advice: stop"} {
		if !strings.Contains(s.stderr.String(), want) {
			t.Errorf("stderr lacks %q:\n%s", want, s.stderr)
		}
	}
}

// recordDials dials TCP to wherever *target says (the URL's address when empty) and sends each
// connection on conns, so a test can move or cut them.
func recordDials(target *atomic.Value, conns chan net.Conn) client.Options {
	return client.Options{NetDial: func(ctx context.Context, network, addr string) (net.Conn, error) {
		if to, _ := target.Load().(string); to != "" {
			addr = to
		}
		c, err := (&net.Dialer{}).DialContext(ctx, network, addr)
		if err == nil {
			conns <- c
		}
		return c, err
	}}
}

// TestResumeAfterDrop: a connection cut without a close frame is resumed with the token from
// the welcome, and the watch goes on with a fresh sync.
func TestResumeAfterDrop(t *testing.T) {
	n := testkit.StartNode(t, quickConfig())
	conns := make(chan net.Conn, 4)
	var target atomic.Value
	w := start(t, recordDials(&target, conns), "watch", "--token", "bob", "--url", n.URL)
	w.waitRow(t, "alice", "Offline")
	(<-conns).Close()
	w.waitRow(t, "alice", "Offline")
	for _, want := range []string{"connection lost", "resumed window w-"} {
		if !strings.Contains(w.stderr.String(), want) {
			t.Errorf("stderr lacks %q:\n%s", want, w.stderr)
		}
	}
	if code := w.stop(t); code != 0 {
		t.Fatalf("watch exit = %d", code)
	}
}

// TestRestartResumesElsewhere: a draining node closes with 1012 (advice resume); the status
// command reconnects, the other node does not know the resume token (4002, advice hello), so
// it says hello as a new window and sends its status again.
func TestRestartResumesElsewhere(t *testing.T) {
	b := testkit.StartNode(t, quickConfig())
	a, err := server.New(quickConfig())
	if err != nil {
		t.Fatal(err)
	}
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	served := make(chan error, 1)
	go func() { served <- a.Serve(ln) }()

	conns := make(chan net.Conn, 4)
	var target atomic.Value
	s := start(t, recordDials(&target, conns), "status", "--token", "alice", "--project", "P", "--url", "ws://"+ln.Addr().String()+"/ws")
	s.stdout.waitContains(t, "alice online", 1)

	target.Store(strings.TrimPrefix(strings.TrimSuffix(b.URL, "/ws"), "ws://"))
	ctx, cancel := context.WithTimeout(context.Background(), waitFor)
	defer cancel()
	if err := a.Shutdown(ctx); err != nil {
		t.Fatal(err)
	}
	if err := <-served; !errors.Is(err, server.ErrClosed) {
		t.Fatalf("serve: %v", err)
	}
	s.stdout.waitContains(t, "alice online", 2)
	w := start(t, client.Options{}, "watch", "--token", "bob", "--url", b.URL)
	w.waitRow(t, "alice", "Online", "Idle", "P", "-")
	for _, want := range []string{"1012", "advice: resume", "resume_failed", "saying hello as a new window"} {
		if !strings.Contains(s.stderr.String(), want) {
			t.Errorf("stderr lacks %q:\n%s", want, s.stderr)
		}
	}
}
