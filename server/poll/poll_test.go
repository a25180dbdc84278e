//go:build linux

package poll_test

import (
	"encoding/binary"
	"errors"
	"io"
	"net"
	"sync"
	"sync/atomic"
	"syscall"
	"testing"
	"time"

	"go.uber.org/goleak"
	"golang.org/x/sys/unix"

	"github.com/presenced/presenced/server/poll"
)

// About the "no event" assertions (TestReadableOncePerResume, TestRemoveStopsEvents). They use
// no sleep. With one worker, callbacks run in the order epoll_wait reports events, and the
// kernel queues a socket's readiness in the order its data arrives: the epoll wakeup runs from
// the socket's data-ready callback, under the socket lock, before a reader can see the bytes.
// So the test (1) waits until A's bytes are in A's receive queue, peeking without consuming,
// (2) writes to another socket B and (3) waits for B's event. An event for A, had A been armed,
// would have come before B's. The barrier can only miss a bug, never fail a correct poller.

func newPoller(t testing.TB, workers int) *poll.Poller {
	t.Helper()
	p, err := poll.New(workers)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() {
		if err := p.Close(); err != nil {
			t.Error(err)
		}
	})
	return p
}

func listen(t testing.TB) *net.TCPListener {
	t.Helper()
	ln, err := net.ListenTCP("tcp", &net.TCPAddr{IP: net.IPv4(127, 0, 0, 1)})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { ln.Close() })
	return ln
}

// pair is both ends of one loopback TCP connection; both are closed by t.Cleanup.
type pair struct{ client, server *net.TCPConn }

func dial(t testing.TB, ln *net.TCPListener) pair {
	t.Helper()
	c, err := net.DialTCP("tcp", nil, ln.Addr().(*net.TCPAddr))
	if err != nil {
		t.Fatal(err)
	}
	s, err := ln.AcceptTCP()
	if err != nil {
		c.Close()
		t.Fatal(err)
	}
	t.Cleanup(func() { c.Close(); s.Close() })
	return pair{c, s}
}

// got is one callback: the event and what one Read returned.
type got struct {
	ev   poll.Event
	data string
	err  error
}

// watched is a registered server end whose callback reads once and reports; it never resumes.
type watched struct {
	mu     sync.Mutex
	d      *poll.Desc // set under mu across Add, as poll.Add documents
	nc     net.Conn
	events chan got
	stop   <-chan struct{} // the test's context: a failed test must not wedge a worker
}

func watch(t testing.TB, p *poll.Poller, nc net.Conn) *watched {
	t.Helper()
	w := &watched{nc: nc, events: make(chan got, 16), stop: t.Context().Done()}
	w.mu.Lock()
	defer w.mu.Unlock()
	d, err := p.Add(nc, w.onEvent)
	if err != nil {
		t.Fatal(err)
	}
	w.d = d
	return w
}

func (w *watched) onEvent(ev poll.Event) {
	w.mu.Lock() // orders this callback after Add's caller stored w.d
	defer w.mu.Unlock()
	g := got{ev: ev}
	if ev&poll.Readable != 0 {
		g.data, g.err = readNow(w.nc, 64)
	}
	select {
	case w.events <- g:
	case <-w.stop:
	}
}

func (w *watched) desc() *poll.Desc {
	w.mu.Lock()
	defer w.mu.Unlock()
	return w.d
}

// next waits for the next callback; the timeout only bounds a failing test.
func next(t testing.TB, w *watched) got {
	t.Helper()
	select {
	case g := <-w.events:
		return g
	case <-time.After(10 * time.Second):
		t.Fatal("no event within 10 s")
		return got{}
	}
}

func noEvent(t testing.TB, w *watched, why string) {
	t.Helper()
	select {
	case g := <-w.events:
		t.Fatalf("%s: unexpected event %v %q", why, g.ev, g.data)
	default:
	}
}

func write(t testing.TB, c net.Conn, s string) {
	t.Helper()
	if _, err := c.Write([]byte(s)); err != nil {
		t.Fatal(err)
	}
}

// readNow makes one read(2) and never waits, so that a spurious event fails the test with
// EAGAIN instead of parking a worker. It reports io.EOF like net.Conn.Read.
func readNow(c net.Conn, max int) (string, error) {
	rc, err := c.(syscall.Conn).SyscallConn()
	if err != nil {
		return "", err
	}
	buf := make([]byte, max)
	var n int
	var readErr error
	if err := rc.Read(func(fd uintptr) bool {
		n, readErr = unix.Read(int(fd), buf)
		return true
	}); err != nil {
		return "", err
	}
	if readErr != nil {
		return "", readErr
	}
	if n == 0 {
		return "", io.EOF
	}
	return string(buf[:n]), nil
}

// arrived returns once at least n bytes wait in c's receive queue, without reading them. It
// parks in the runtime netpoller between tries, so it needs no sleep; the deadline only bounds a
// failing test (someone else read the bytes).
func arrived(t testing.TB, c *net.TCPConn, n int) {
	t.Helper()
	rc, err := c.SyscallConn()
	if err != nil {
		t.Fatal(err)
	}
	_ = c.SetReadDeadline(time.Now().Add(10 * time.Second))
	defer c.SetReadDeadline(time.Time{})
	buf := make([]byte, n)
	var peekErr error
	err = rc.Read(func(fd uintptr) bool {
		k, _, err := unix.Recvfrom(int(fd), buf, unix.MSG_PEEK|unix.MSG_DONTWAIT)
		if err == unix.EAGAIN || (err == nil && k > 0 && k < n) {
			return false
		}
		peekErr = err
		return true
	})
	if err = errors.Join(err, peekErr); err != nil {
		t.Fatal(err)
	}
}

// barrier writes to b and waits for b's event: see the comment at the top of this file.
func barrier(t testing.TB, b pair, wb *watched, p *poll.Poller) {
	t.Helper()
	write(t, b.client, "b")
	if g := next(t, wb); g.data != "b" {
		t.Fatalf("barrier: got %v %q", g.ev, g.data)
	}
	if err := p.Resume(wb.desc()); err != nil {
		t.Fatal(err)
	}
}

func TestReadableOncePerResume(t *testing.T) {
	p := newPoller(t, 1)
	ln := listen(t)
	a, b := dial(t, ln), dial(t, ln)
	wa, wb := watch(t, p, a.server), watch(t, p, b.server)

	write(t, a.client, "1")
	if g := next(t, wa); g.ev != poll.Readable || g.data != "1" || g.err != nil {
		t.Fatalf("first event: %v %q %v", g.ev, g.data, g.err)
	}
	// Not resumed: more data must not fire.
	write(t, a.client, "2")
	arrived(t, a.server, 1)
	barrier(t, b, wb, p)
	noEvent(t, wa, "new data while disarmed")

	// Resume fires at once for the byte already waiting.
	if err := p.Resume(wa.desc()); err != nil {
		t.Fatal(err)
	}
	if g := next(t, wa); g.ev != poll.Readable || g.data != "2" {
		t.Fatalf("after resume: %v %q", g.ev, g.data)
	}
	// Resumed with nothing to read: quiet until the next write.
	if err := p.Resume(wa.desc()); err != nil {
		t.Fatal(err)
	}
	barrier(t, b, wb, p)
	noEvent(t, wa, "armed with nothing to read")
	write(t, a.client, "3")
	if g := next(t, wa); g.data != "3" {
		t.Fatalf("third event: %v %q", g.ev, g.data)
	}
}

func TestResumeWithUnreadBytesFiresAgain(t *testing.T) {
	p := newPoller(t, 1)
	a := dial(t, listen(t))
	events := make(chan string, 4)
	var mu sync.Mutex
	var d *poll.Desc
	mu.Lock()
	d, err := p.Add(a.server, func(ev poll.Event) {
		mu.Lock()
		defer mu.Unlock()
		s, _ := readNow(a.server, 1) // less than is there: level triggered must fire again
		events <- s
		if err := p.Resume(d); err != nil {
			t.Error(err)
		}
	})
	mu.Unlock()
	if err != nil {
		t.Fatal(err)
	}
	write(t, a.client, "xyz")
	for _, want := range []string{"x", "y", "z"} {
		select {
		case s := <-events:
			if s != want {
				t.Fatalf("got %q, want %q", s, want)
			}
		case <-time.After(10 * time.Second):
			t.Fatalf("no event for %q", want)
		}
	}
	if err := p.Remove(d); err != nil {
		t.Fatal(err)
	}
}

func TestHangupOnPeerClose(t *testing.T) {
	p := newPoller(t, 1)
	ln := listen(t)

	t.Run("close", func(t *testing.T) {
		a := dial(t, ln)
		wa := watch(t, p, a.server)
		a.client.Close()
		g := next(t, wa)
		if g.ev&poll.Hangup == 0 {
			t.Fatalf("got %v, want Hangup", g.ev)
		}
		if g.ev&poll.Readable != 0 && (g.data != "" || g.err == nil) {
			t.Fatalf("read after hangup: %q, %v; want EOF", g.data, g.err)
		}
		if err := p.Remove(wa.desc()); err != nil {
			t.Fatal(err)
		}
	})
	t.Run("last words then close", func(t *testing.T) {
		a := dial(t, ln)
		write(t, a.client, "bye")
		a.client.Close()
		arrived(t, a.server, 3)
		wa := watch(t, p, a.server)
		g := next(t, wa)
		if g.ev != poll.Readable|poll.Hangup || g.data != "bye" {
			t.Fatalf("got %v %q, want Readable|Hangup \"bye\"", g.ev, g.data)
		}
		if err := p.Remove(wa.desc()); err != nil {
			t.Fatal(err)
		}
	})
	t.Run("reset", func(t *testing.T) {
		a := dial(t, ln)
		wa := watch(t, p, a.server)
		_ = a.client.SetLinger(0) // close sends RST
		a.client.Close()
		if g := next(t, wa); g.ev&poll.Hangup == 0 {
			t.Fatalf("got %v, want Hangup", g.ev)
		}
		if err := p.Remove(wa.desc()); err != nil {
			t.Fatal(err)
		}
	})
}

func TestRemoveStopsEvents(t *testing.T) {
	p := newPoller(t, 1)
	ln := listen(t)
	a, b := dial(t, ln), dial(t, ln)
	wa, wb := watch(t, p, a.server), watch(t, p, b.server)

	if err := p.Remove(wa.desc()); err != nil {
		t.Fatal(err)
	}
	if err := p.Remove(wa.desc()); err != nil {
		t.Fatalf("second Remove: %v", err)
	}
	if err := p.Resume(wa.desc()); !errors.Is(err, poll.ErrRemoved) {
		t.Fatalf("Resume after Remove: %v, want ErrRemoved", err)
	}
	write(t, a.client, "a")
	arrived(t, a.server, 1)
	a.client.Close()
	barrier(t, b, wb, p)
	noEvent(t, wa, "after Remove")
}

// A conn closed without Remove must not let its stale Desc touch the socket that reuses its fd.
func TestRemoveAfterCloseSparesReusedFD(t *testing.T) {
	p := newPoller(t, 1)
	ln := listen(t)
	a := dial(t, ln)
	wa := watch(t, p, a.server)
	oldFD := fdOf(t, a.server)
	a.server.Close() // contract broken on purpose: closed before Remove

	c := dial(t, ln) // Linux hands out the lowest free fd: the dialling end gets oldFD
	if got := fdOf(t, c.client); got != oldFD {
		t.Fatalf("fd %d was not reused (got %d): the test cannot show what it means to", oldFD, got)
	}
	wc := watch(t, p, c.client)
	if err := p.Remove(wa.desc()); err != nil {
		t.Fatalf("Remove after close: %v", err)
	}
	if err := p.Resume(wa.desc()); !errors.Is(err, poll.ErrRemoved) {
		t.Fatalf("Resume: %v", err)
	}
	write(t, c.server, "c")
	if g := next(t, wc); g.data != "c" {
		t.Fatalf("reused fd: got %v %q", g.ev, g.data)
	}
	noEvent(t, wa, "stale Desc")
}

func TestResumeAfterCloseFails(t *testing.T) {
	p := newPoller(t, 1)
	a := dial(t, listen(t))
	wa := watch(t, p, a.server)
	a.server.Close()
	if err := p.Resume(wa.desc()); !errors.Is(err, net.ErrClosed) {
		t.Fatalf("Resume on a closed conn: %v, want net.ErrClosed", err)
	}
	if err := p.Remove(wa.desc()); err != nil {
		t.Fatal(err)
	}
}

func TestAddRejects(t *testing.T) {
	p := newPoller(t, 1)
	c1, c2 := net.Pipe()
	defer c1.Close()
	defer c2.Close()
	if _, err := p.Add(c1, func(poll.Event) {}); !errors.Is(err, poll.ErrNotSyscallConn) {
		t.Fatalf("net.Pipe: %v, want ErrNotSyscallConn", err)
	}
	a := dial(t, listen(t))
	a.server.Close()
	if _, err := p.Add(a.server, func(poll.Event) {}); !errors.Is(err, net.ErrClosed) {
		t.Fatalf("closed conn: %v, want net.ErrClosed", err)
	}
}

// Each of 1,000 connections gets its own 8 bytes, read in as many events as it takes, and then
// its hangup.
func TestThousandConns(t *testing.T) {
	const n = 1000
	p := newPoller(t, 4)
	ln := listen(t)
	type result struct {
		i    int
		data uint64
		ev   poll.Event
	}
	results := make(chan result, 2*n)
	pairs := make([]pair, n)
	for i := range pairs {
		pairs[i] = dial(t, ln)
		i, nc := i, pairs[i].server
		var mu sync.Mutex
		var d *poll.Desc
		var buf []byte
		onEvent := func(ev poll.Event) {
			mu.Lock()
			defer mu.Unlock()
			if ev&poll.Hangup != 0 && len(buf) == 8 {
				results <- result{i: i, ev: ev}
				if err := p.Remove(d); err != nil {
					t.Error(err)
				}
				return
			}
			s, err := readNow(nc, 8-len(buf))
			if err != nil {
				t.Errorf("conn %d: %v", i, err)
				return
			}
			buf = append(buf, s...)
			if len(buf) == 8 {
				results <- result{i: i, data: binary.BigEndian.Uint64(buf), ev: ev}
			}
			if err := p.Resume(d); err != nil {
				t.Error(err)
			}
		}
		mu.Lock()
		var err error
		d, err = p.Add(nc, onEvent)
		mu.Unlock()
		if err != nil {
			t.Fatal(err)
		}
	}
	for i, pr := range pairs {
		var msg [8]byte
		binary.BigEndian.PutUint64(msg[:], uint64(i)*7919)
		// Two writes, so that some reads see half a message and resume for the rest.
		write(t, pr.client, string(msg[:3]))
		write(t, pr.client, string(msg[3:]))
	}
	seen := make([]bool, n)
	for range n {
		r := recvResult(t, results)
		if r.data != uint64(r.i)*7919 {
			t.Fatalf("conn %d got %d", r.i, r.data)
		}
		if seen[r.i] {
			t.Fatalf("conn %d delivered twice", r.i)
		}
		seen[r.i] = true
	}
	for _, pr := range pairs {
		pr.client.Close()
	}
	clear(seen)
	for range n {
		r := recvResult(t, results)
		if r.ev&poll.Hangup == 0 || seen[r.i] {
			t.Fatalf("conn %d: hangup %v, seen %v", r.i, r.ev, seen[r.i])
		}
		seen[r.i] = true
	}
}

func recvResult[T any](t *testing.T, ch <-chan T) T {
	t.Helper()
	select {
	case r := <-ch:
		return r
	case <-time.After(20 * time.Second):
		t.Fatal("results stopped coming")
		var zero T
		return zero
	}
}

// A callback that blocks holds one worker, not the wait loop: another conn's event still runs.
func TestCallbacksRunOffTheWaitLoop(t *testing.T) {
	p := newPoller(t, 2)
	ln := listen(t)
	a, b := dial(t, ln), dial(t, ln)
	bRan := make(chan struct{})
	aDone := make(chan struct{})
	if _, err := p.Add(a.server, func(poll.Event) { <-bRan; close(aDone) }); err != nil {
		t.Fatal(err)
	}
	if _, err := p.Add(b.server, func(poll.Event) { close(bRan) }); err != nil {
		t.Fatal(err)
	}
	write(t, a.client, "a")
	arrived(t, a.server, 1)
	write(t, b.client, "b")
	select {
	case <-aDone:
	case <-time.After(10 * time.Second):
		t.Fatal("the blocked callback held up the other conn")
	}
}

// Close waits for running callbacks, drops queued ones, unblocks a wait loop stuck on a full
// queue, and leaves no goroutine behind; afterwards every method fails cleanly.
func TestCloseJoinsEverything(t *testing.T) {
	before := goleak.IgnoreCurrent()
	p, err := poll.New(1)
	if err != nil {
		t.Fatal(err)
	}
	ln := listen(t)
	const n = 100 // more than one worker's queue (64) + one running: the wait loop blocks
	release := make(chan struct{})
	started := make(chan struct{}, n)
	var running, finished atomic.Int32
	descs := make([]*poll.Desc, n)
	for i := range descs {
		pr := dial(t, ln)
		descs[i], err = p.Add(pr.server, func(poll.Event) {
			running.Add(1)
			started <- struct{}{}
			<-release
			finished.Add(1)
		})
		if err != nil {
			t.Fatal(err)
		}
		write(t, pr.client, "x")
	}
	<-started // one callback is running and holds the only worker
	closed := make(chan error)
	go func() { closed <- p.Close() }()
	close(release)
	if err := <-closed; err != nil {
		t.Fatal(err)
	}
	if r, f := running.Load(), finished.Load(); r != f {
		t.Fatalf("Close returned with %d of %d callbacks still running", r-f, r)
	}
	if r := running.Load(); r == n {
		t.Logf("all %d queued callbacks ran before Close took effect", n)
	}
	goleak.VerifyNone(t, before)

	if err := p.Close(); err != nil {
		t.Fatalf("second Close: %v", err)
	}
	pr := dial(t, ln)
	if _, err := p.Add(pr.server, func(poll.Event) {}); !errors.Is(err, poll.ErrClosed) {
		t.Fatalf("Add after Close: %v", err)
	}
	if err := p.Resume(descs[0]); !errors.Is(err, poll.ErrClosed) {
		t.Fatalf("Resume after Close: %v", err)
	}
	if err := p.Remove(descs[0]); err != nil {
		t.Fatalf("Remove after Close: %v", err)
	}
}

func TestEventString(t *testing.T) {
	for ev, want := range map[poll.Event]string{
		0: "0", poll.Readable: "Readable", poll.Hangup: "Hangup", poll.Readable | poll.Hangup: "Readable|Hangup", poll.Writable | poll.Hangup: "Hangup|Writable",
	} {
		if got := ev.String(); got != want {
			t.Errorf("%d: %q, want %q", ev, got, want)
		}
	}
}

func fdOf(t testing.TB, c *net.TCPConn) int {
	t.Helper()
	rc, err := c.SyscallConn()
	if err != nil {
		t.Fatal(err)
	}
	var fd int
	if err := rc.Control(func(f uintptr) { fd = int(f) }); err != nil {
		t.Fatal(err)
	}
	return fd
}

// TestWritableWhenRoomAgain: a full socket registered with AddFD for Writable gets no event
// while its peer reads nothing (the barrier above: a ready socket is queued by EPOLL_CTL_ADD
// itself, before B's data), and gets Writable once the peer drains it. AddFD takes only
// Readable or Writable.
func TestWritableWhenRoomAgain(t *testing.T) {
	p := newPoller(t, 1)
	ln := listen(t)
	a, b := dial(t, ln), dial(t, ln)
	rc, err := a.server.SyscallConn()
	if err != nil {
		t.Fatal(err)
	}
	filled := 0
	chunk := make([]byte, 64<<10)
	if err := rc.Control(func(fd uintptr) {
		for {
			n, err := unix.Write(int(fd), chunk)
			if n > 0 {
				filled += n
			}
			if err != nil {
				return
			}
		}
	}); err != nil {
		t.Fatal(err)
	}
	if filled == 0 {
		t.Fatal("nothing was written")
	}
	if _, err := p.AddFD(rc, poll.Hangup, func(poll.Event) {}); err == nil {
		t.Fatal("AddFD took Hangup as what to wait for")
	}
	events := make(chan poll.Event, 4)
	if _, err := p.AddFD(rc, poll.Writable, func(ev poll.Event) { events <- ev }); err != nil {
		t.Fatal(err)
	}
	wb := watch(t, p, b.server)
	if _, err := b.client.Write([]byte("B")); err != nil {
		t.Fatal(err)
	}
	next(t, wb)
	select {
	case ev := <-events:
		t.Fatalf("a full socket reported %v", ev)
	default:
	}
	go func() { _, _ = io.CopyN(io.Discard, a.client, int64(filled)) }()
	select {
	case ev := <-events:
		if ev != poll.Writable {
			t.Fatalf("event %v, want Writable", ev)
		}
	case <-time.After(10 * time.Second):
		t.Fatal("no Writable event after the peer drained the socket")
	}
}
