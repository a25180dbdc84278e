package main

import (
	"context"
	"errors"
	"io"
	"net/http"
	"net/http/httptest"
	"os"
	"strings"
	"sync/atomic"
	"syscall"
	"testing"
	"testing/synctest"
	"time"

	"go.uber.org/zap"

	"github.com/presenced/presenced/client"
	"github.com/presenced/presenced/wire"
)

// startApp starts presenced in this process the way main does (dev auth, in memory) with both
// listeners on free loopback ports. t.Cleanup stops it, also after a failure (stop is
// idempotent: a test may stop it earlier itself); cleanups registered later, such as the
// clients' drops, run before.
func startApp(t *testing.T, extra ...string) *app {
	t.Helper()
	o, err := parse(append([]string{"--auth", "dev", "--graph", "../../examples/graph.json",
		"--listen", "127.0.0.1:0", "--internal-listen", "127.0.0.1:0"}, extra...))
	if err != nil {
		t.Fatal(err)
	}
	a, err := start(o, zap.NewNop())
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() {
		if err := a.stop(); err != nil {
			t.Error(err)
		}
	})
	return a
}

// expect GETs url and checks the status and that the body contains body.
func expect(t *testing.T, url string, status int, body string) {
	t.Helper()
	resp, err := http.Get(url)
	if err != nil {
		t.Fatal(err)
	}
	b, err := io.ReadAll(resp.Body)
	_ = resp.Body.Close()
	if err != nil {
		t.Fatal(err)
	}
	if resp.StatusCode != status || !strings.Contains(string(b), body) {
		t.Fatalf("GET %s: %d %q, want %d with %q", url, resp.StatusCode, b, status, body)
	}
}

// TestInternalListener: /healthz, /readyz and /metrics answer on the internal port of a
// started node, readiness fails with the reason once draining, pprof is off by default, and the
// public port serves none of it.
func TestInternalListener(t *testing.T) {
	a := startApp(t)
	in := "http://" + a.internal.addr.String()
	pub := "http://" + a.pub.Addr().String()
	expect(t, in+"/healthz", http.StatusOK, "ok")
	expect(t, in+"/readyz", http.StatusOK, "ok")
	expect(t, in+"/debug/pprof/", http.StatusNotFound, "")
	expect(t, in+"/metrics", http.StatusOK, "# TYPE presenced_connections gauge")
	for _, path := range []string{"/healthz", "/readyz", "/metrics", "/debug/pprof/"} {
		expect(t, pub+path, http.StatusNotFound, "")
	}
	resp, err := http.Post(in+"/healthz", "text/plain", nil)
	if err != nil {
		t.Fatal(err)
	}
	_ = resp.Body.Close()
	if resp.StatusCode != http.StatusMethodNotAllowed {
		t.Errorf("POST /healthz: %d", resp.StatusCode)
	}

	a.ready.draining.Store(true) // what main does when SIGTERM arrives
	expect(t, in+"/readyz", http.StatusServiceUnavailable, "draining")
	expect(t, in+"/healthz", http.StatusOK, "ok") // liveness is not readiness

	if err := a.stop(); err != nil {
		t.Fatal(err)
	}
	if _, err := http.Get(in + "/healthz"); err == nil {
		t.Error("the internal listener still answers after stop")
	}
}

// TestInternalPprof: --pprof serves the profiler on the internal port only, without the
// command line (it may hold the Redis password).
func TestInternalPprof(t *testing.T) {
	a := startApp(t, "--pprof")
	in := "http://" + a.internal.addr.String()
	expect(t, in+"/debug/pprof/", http.StatusOK, "goroutine")
	expect(t, in+"/debug/pprof/goroutine?debug=1", http.StatusOK, "goroutine profile")
	expect(t, in+"/debug/pprof/cmdline", http.StatusNotFound, "")
	expect(t, "http://"+a.pub.Addr().String()+"/debug/pprof/", http.StatusNotFound, "")
}

// TestNoInternalListener: --internal-listen "" serves no internal port.
func TestNoInternalListener(t *testing.T) {
	o, err := parse([]string{"--auth", "dev", "--graph", "../../examples/graph.json", "--listen", "127.0.0.1:0", "--internal-listen", ""})
	if err != nil {
		t.Fatal(err)
	}
	a, err := start(o, zap.NewNop())
	if err != nil {
		t.Fatal(err)
	}
	if a.internal != nil {
		t.Error("an internal listener without --internal-listen")
	}
	if err := a.stop(); err != nil {
		t.Fatal(err)
	}
}

type fakeNode struct{ err error }

func (f fakeNode) Ready(context.Context) error { return f.err }

// hangingNode is a node whose store never answers.
type hangingNode struct{}

func (hangingNode) Ready(ctx context.Context) error {
	<-ctx.Done()
	return ctx.Err()
}

// TestReadinessReasons: /readyz is the AND of "the node runs", "not draining" and the node's
// Ready, bounded by readyTimeout, and says which one failed.
func TestReadinessReasons(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		r := &readiness{}
		mux := internalMux(r, nil, false)
		check := func(status int, body string) {
			t.Helper()
			rec := httptest.NewRecorder()
			mux.ServeHTTP(rec, httptest.NewRequest("GET", "/readyz", nil))
			if rec.Code != status || !strings.Contains(rec.Body.String(), body) {
				t.Fatalf("/readyz: %d %q, want %d with %q", rec.Code, rec.Body, status, body)
			}
		}
		check(http.StatusServiceUnavailable, "starting")
		r.setNode(fakeNode{err: errors.New("redis: connection refused")})
		check(http.StatusServiceUnavailable, "node: redis: connection refused")
		r.setNode(hangingNode{})
		began := time.Now()
		check(http.StatusServiceUnavailable, "node: context deadline exceeded")
		if d := time.Since(began); d != readyTimeout {
			t.Errorf("a hanging check took %v, want %v", d, readyTimeout)
		}
		r.setNode(fakeNode{})
		check(http.StatusOK, "ok")
		r.draining.Store(true)
		check(http.StatusServiceUnavailable, "draining")
	})
}

// TestDrainDelay: a signal turns readiness off at once, then the delay is waited out; a
// second signal cuts it short.
func TestDrainDelay(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		var draining atomic.Bool
		sigs := make(chan os.Signal, 1)
		done := make(chan struct{})
		began := time.Now()
		go func() { drain(&draining, 5*time.Second, syscall.SIGTERM, sigs, zap.NewNop()); close(done) }()
		synctest.Wait()
		if !draining.Load() {
			t.Fatal("readiness is still on after the signal")
		}
		select {
		case <-done:
			t.Fatal("drain returned before its delay")
		default:
		}
		<-done
		if d := time.Since(began); d != 5*time.Second {
			t.Fatalf("drain took %v, want 5s", d)
		}

		draining.Store(false)
		done = make(chan struct{})
		began = time.Now()
		go func() { drain(&draining, time.Hour, syscall.SIGTERM, sigs, zap.NewNop()); close(done) }()
		synctest.Wait()
		sigs <- syscall.SIGINT
		<-done
		if d := time.Since(began); d != 0 || !draining.Load() {
			t.Fatalf("second signal: drain took %v (want 0), draining %v", d, draining.Load())
		}
	})
}

// TestRunDrainsOnSignal: in one process, SIGTERM then a second one skip the hour-long drain
// delay, and the shutdown tells the connected client to resume elsewhere.
func TestRunDrainsOnSignal(t *testing.T) {
	a := startApp(t, "--drain-delay", "1h", "--shutdown-timeout", "2h")
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	c, err := client.Dial(ctx, "ws://"+a.pub.Addr().String()+"/ws", client.Options{})
	if err != nil {
		t.Fatal(err)
	}
	defer func() { _ = c.Drop() }()
	if _, _, err := c.Hello(wire.Hello{Token: "bob"}); err != nil {
		t.Fatal(err)
	}
	// The client reads (and answers the close) while the node shuts down, as a real one does.
	type read struct {
		f   wire.Frame
		err error
	}
	reads := make(chan read, 2)
	go func() {
		for range 2 {
			f, _, err := c.Read()
			reads <- read{f, err}
		}
	}()
	sigs := make(chan os.Signal, 2)
	sigs <- syscall.SIGTERM
	sigs <- syscall.SIGTERM
	if err := a.run(sigs); err != nil {
		t.Fatal(err)
	}
	if !a.ready.draining.Load() {
		t.Error("not draining after run")
	}
	r := <-reads
	if e, ok := r.f.(wire.ErrorFrame); !ok || e.Code != wire.ErrServerRestart {
		t.Fatalf("want error server_restart, got %#v %v", r.f, r.err)
	}
	r = <-reads
	var ce *client.CloseError
	if !errors.As(r.err, &ce) || ce.Code != wire.CloseServiceRestart {
		t.Fatalf("want close 1012, got %v", r.err)
	}
}
