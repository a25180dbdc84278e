package server

import (
	"bytes"
	"errors"
	"net"
	"runtime/pprof"
	"strings"
	"testing"
	"time"

	"golang.org/x/sys/unix"

	"github.com/presenced/presenced/server/poll"
)

// TestSockCloseWaitsForItsUsers: close shuts the socket down at once (the peer reads EOF) but
// keeps the descriptor while something holds it, so its number cannot be reused under that
// holder; the last release closes it. Later uses fail with net.ErrClosed.
func TestSockCloseWaitsForItsUsers(t *testing.T) {
	nc, cl := tcpPair(t)
	sk, err := detach(nc)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := nc.Write([]byte("x")); !errors.Is(err, net.ErrClosed) {
		t.Fatalf("the net.Conn still writes after detach: %v", err)
	}
	fd, ok := sk.acquire()
	if !ok {
		t.Fatal("a fresh sock cannot be acquired")
	}
	sk.close()
	if _, err := unix.FcntlInt(uintptr(fd), unix.F_GETFD, 0); err != nil {
		t.Fatalf("the descriptor was closed while held: %v", err)
	}
	_ = cl.SetReadDeadline(time.Now().Add(10 * time.Second))
	if n, err := cl.Read(make([]byte, 1)); n != 0 || err == nil {
		t.Fatalf("the peer read %d bytes, %v; want EOF after the shutdown", n, err)
	}
	if _, err := sk.write([]byte("x")); !errors.Is(err, net.ErrClosed) {
		t.Fatalf("write after close: %v, want net.ErrClosed", err)
	}
	if _, err := sk.read(make([]byte, 1)); !errors.Is(err, net.ErrClosed) {
		t.Fatalf("read after close: %v, want net.ErrClosed", err)
	}
	sk.release()
	if _, err := unix.FcntlInt(uintptr(fd), unix.F_GETFD, 0); !errors.Is(err, unix.EBADF) {
		t.Fatalf("the descriptor is still open after the last release: %v", err)
	}
	sk.close() // again: nothing
}

// TestFullSocketWriterWakesOnClose: a writer waiting for a full socket (for up to an hour here)
// returns as soon as the socket is closed, with an error, and lets the descriptor go.
func TestFullSocketWriterWakesOnClose(t *testing.T) {
	nc, _ := tcpPair(t) // the client never reads
	sk, err := detach(nc)
	if err != nil {
		t.Fatal(err)
	}
	wp, err := poll.New(1)
	if err != nil {
		t.Fatal(err)
	}
	defer wp.Close()
	s := &flushShard{wp: wp}
	done := make(chan error, 1)
	go func() { done <- s.writeAll(sk, make([]byte, 64<<20), time.Now().Add(time.Hour)) }()
	// The kernel's buffers take a few MB at most: the writer soon waits for room.
	deadline := time.Now().Add(10 * time.Second)
	for !stackHas(t, "server.(*flushShard).awaitWritable") {
		select {
		case err := <-done:
			t.Fatalf("64 MB went into a socket nobody reads: %v", err)
		default:
		}
		if time.Now().After(deadline) {
			t.Fatal("the writer never waited for the full socket")
		}
		time.Sleep(time.Millisecond) // polling a condition, with a deadline
	}
	sk.close()
	select {
	case err := <-done:
		if err == nil {
			t.Fatal("the write succeeded on a closed socket")
		}
	case <-time.After(10 * time.Second):
		t.Fatal("the writer still waits after the close")
	}
	if _, ok := sk.acquire(); ok {
		t.Fatal("the sock can be acquired after close")
	}
}

// stackHas reports whether some goroutine is in fn.
func stackHas(t *testing.T, fn string) bool {
	t.Helper()
	var b bytes.Buffer
	if err := pprof.Lookup("goroutine").WriteTo(&b, 2); err != nil {
		t.Fatal(err)
	}
	return strings.Contains(b.String(), fn)
}
