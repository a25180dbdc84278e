package server_test

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"io"
	"net"
	"runtime/pprof"
	"strings"
	"testing"
	"time"

	"github.com/gobwas/ws"

	"github.com/presenced/presenced/server"
	"github.com/presenced/presenced/testkit"
	"github.com/presenced/presenced/wire"
)

// connGoroutines counts goroutines running any of the server's per-socket code: readers,
// writers and the upgrade.
func connGoroutines(t *testing.T) int {
	t.Helper()
	var b bytes.Buffer
	if err := pprof.Lookup("goroutine").WriteTo(&b, 2); err != nil {
		t.Fatal(err)
	}
	n := 0
	for _, g := range strings.Split(b.String(), "\n\n") {
		if strings.Contains(g, "presenced/server.(*conn)") || strings.Contains(g, "presenced/server.(*outbox)") {
			n++
		}
	}
	return n
}

// TestIdleSocketsHoldNoGoroutine: 200 connected, idle sockets (hello said, sync read, nothing
// more to send) leave no goroutine of the server behind: epoll watches them, and a writer exists
// only while something is queued.
func TestIdleSocketsHoldNoGoroutine(t *testing.T) {
	graph := map[string][]string{}
	for i := range 200 {
		graph[fmt.Sprintf("u%d", i)] = []string{fmt.Sprintf("u%d", (i+1)%200), fmt.Sprintf("u%d", (i+7)%200)}
	}
	n := testkit.StartNode(t, fast(graph))
	for i := range 200 {
		c := n.DialRaw(t) // no reading goroutine on the client side either
		if _, _, err := c.Hello(wire.Hello{Token: fmt.Sprintf("u%d", i)}); err != nil {
			t.Fatal(err)
		}
	}
	if got := n.Stats().Conns; got != 200 {
		t.Fatalf("conns = %d, want 200", got)
	}
	// The last writers (the o frames of the last users to come online) finish on their own.
	deadline := time.Now().Add(10 * time.Second)
	for connGoroutines(t) != 0 {
		if time.Now().After(deadline) {
			t.Fatalf("%d per-socket goroutines remain for 200 idle sockets, want 0", connGoroutines(t))
		}
		time.Sleep(10 * time.Millisecond) // polling a condition, with a deadline
	}
}

// TestSlowHandshake: an HTTP upgrade that trickles in a byte at a time is cut at the hello
// timeout; it never holds the server longer.
func TestSlowHandshake(t *testing.T) {
	cfg := fast(nil)
	cfg.HelloTimeout = 300 * time.Millisecond
	n := testkit.StartNode(t, cfg)
	nc, err := net.Dial("tcp", strings.TrimSuffix(strings.TrimPrefix(n.URL, "ws://"), "/ws"))
	if err != nil {
		t.Fatal(err)
	}
	defer nc.Close()
	start := time.Now()
	stop := make(chan struct{})
	trickled := make(chan struct{})
	go func() {
		defer close(trickled)
		req := "GET /ws HTTP/1.1\r\nHost: x\r\nUpgrade: websocket\r\nConnection: Upgrade\r\nX-Slow: " + strings.Repeat("a", 1000)
		for i := range len(req) {
			select {
			case <-stop:
				return
			case <-time.After(20 * time.Millisecond): // the attacker's pace, not a synchronisation
			}
			if _, err := nc.Write([]byte{req[i]}); err != nil {
				return
			}
		}
	}()
	_ = nc.SetReadDeadline(time.Now().Add(10 * time.Second))
	_, err = io.Copy(io.Discard, nc) // until the server closes
	elapsed := time.Since(start)
	close(stop)
	<-trickled
	if ne, ok := errors.AsType[net.Error](err); ok && ne.Timeout() {
		t.Fatalf("the server kept a trickling handshake open for %v", elapsed)
	}
	if elapsed < cfg.HelloTimeout || elapsed > cfg.HelloTimeout+2*time.Second {
		t.Fatalf("closed after %v, want just after the %v hello timeout", elapsed, cfg.HelloTimeout)
	}
}

// TestSlowFrame: after hello, a frame whose bytes trickle in gets error frame_timeout and close
// 1008 once FrameTimeout has passed since its first byte; others are still served.
func TestSlowFrame(t *testing.T) {
	cfg := fast(map[string][]string{"bob": {"alice"}})
	cfg.FrameTimeout = 300 * time.Millisecond
	n := testkit.StartNode(t, cfg)
	stillServed := bystanders(t, n)
	m := n.Connect(t, wire.Hello{Token: "mallory"})
	var hdr bytes.Buffer
	if err := ws.WriteHeader(&hdr, ws.Header{Fin: true, OpCode: ws.OpText, Masked: true, Mask: [4]byte{1, 2, 3, 4}, Length: 100}); err != nil {
		t.Fatal(err)
	}
	nc := m.Conn.NetConn()
	if _, err := nc.Write(append(hdr.Bytes(), 'x')); err != nil {
		t.Fatal(err)
	}
	start := time.Now()
	stop := make(chan struct{})
	trickled := make(chan struct{})
	go func() {
		defer close(trickled)
		for range 99 {
			select {
			case <-stop:
				return
			case <-time.After(20 * time.Millisecond): // the attacker's pace
			}
			if _, err := nc.Write([]byte{'x'}); err != nil {
				return
			}
		}
	}()
	m.ExpectClose(wire.ErrFrameTimeout, wire.ClosePolicy)
	elapsed := time.Since(start)
	close(stop)
	<-trickled
	if elapsed < cfg.FrameTimeout-50*time.Millisecond || elapsed > cfg.FrameTimeout+2*time.Second {
		t.Fatalf("closed after %v, want just after the %v frame timeout", elapsed, cfg.FrameTimeout)
	}
	stillServed(wire.Coding)
}

// TestHalfFrameDoesNotOutliveShutdown: a reader waiting for the rest of a frame (here for up to
// an hour) is woken when its socket finishes: a shutdown ends it at once, not at FrameTimeout.
// Its client is told to resume elsewhere like any other.
func TestHalfFrameDoesNotOutliveShutdown(t *testing.T) {
	n, m := halfFrame(t)
	shut := make(chan error, 1)
	go func() {
		ctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
		defer cancel()
		shut <- n.Shutdown(ctx)
	}()
	m.ExpectClose(wire.ErrServerRestart, wire.CloseServiceRestart)
	if err := <-shut; err != nil {
		t.Fatalf("shutdown: %v", err)
	}
	deadline := time.Now().Add(10 * time.Second)
	for connGoroutines(t) != 0 {
		if time.Now().After(deadline) {
			t.Fatalf("%d per-socket goroutines remain after the shutdown: the half frame's reader was not woken", connGoroutines(t))
		}
		time.Sleep(time.Millisecond) // polling a condition, with a deadline
	}
}

// TestHalfFrameThenHangup: a client that sends half a frame and hangs up is finished at once
// (its reader, waiting for the rest through the poller, is woken by the hangup), not at
// FrameTimeout, an hour here.
func TestHalfFrameThenHangup(t *testing.T) {
	n, m := halfFrame(t)
	_ = m.Conn.NetConn().Close()
	deadline := time.Now().Add(10 * time.Second)
	for n.Stats().Conns != 0 || connGoroutines(t) != 0 {
		if time.Now().After(deadline) {
			t.Fatalf("after the hangup: %d sockets, %d per-socket goroutines; want 0 and 0", n.Stats().Conns, connGoroutines(t))
		}
		time.Sleep(time.Millisecond) // polling a condition, with a deadline
	}
}

// halfFrame connects mallory to a node whose FrameTimeout is an hour, sends the header and
// first byte of a 100-byte frame, and returns once the server's reader waits for the rest.
func halfFrame(t *testing.T) (*testkit.Node, *testkit.Client) {
	t.Helper()
	cfg := fast(nil)
	cfg.FrameTimeout = time.Hour
	n := testkit.StartNode(t, cfg)
	m := n.Connect(t, wire.Hello{Token: "mallory"})
	var hdr bytes.Buffer
	if err := ws.WriteHeader(&hdr, ws.Header{Fin: true, OpCode: ws.OpText, Masked: true, Mask: [4]byte{1, 2, 3, 4}, Length: 100}); err != nil {
		t.Fatal(err)
	}
	if _, err := m.Conn.NetConn().Write(append(hdr.Bytes(), 'x')); err != nil {
		t.Fatal(err)
	}
	deadline := time.Now().Add(10 * time.Second)
	for !server.StackHas(t, "presenced/server.(*conn).awaitReadable") {
		if time.Now().After(deadline) {
			t.Fatal("the server never waited for the rest of the frame")
		}
		time.Sleep(time.Millisecond) // polling a condition, with a deadline
	}
	return n, m
}
