package server

import (
	"bufio"
	"encoding/binary"
	"fmt"
	"io"
	"net"
	"testing"
	"testing/synctest"
	"time"

	"github.com/gobwas/ws"

	"github.com/presenced/presenced/auth"
	"github.com/presenced/presenced/server/poll"
	"github.com/presenced/presenced/wire"
)

// tcpPair returns both ends of a loopback TCP connection.
func tcpPair(t *testing.T) (server, client net.Conn) {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer ln.Close()
	accepted := make(chan net.Conn, 1)
	go func() {
		c, _ := ln.Accept()
		accepted <- c
	}()
	client, err = net.Dial("tcp", ln.Addr().String())
	if err != nil {
		t.Fatal(err)
	}
	server = <-accepted
	if server == nil {
		t.Fatal("accept failed")
	}
	t.Cleanup(func() { server.Close(); client.Close() })
	return server, client
}

// flushedOutbox is an outbox on a real socket, detached as a polled one is, whose frames go
// through a flusher; its writer waits for the full socket on a write poller.
func flushedOutbox(t *testing.T, nc net.Conn, maxBytes int) (*outbox, *flusher) {
	t.Helper()
	wp, err := poll.New(1)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = wp.Close() })
	f := newFlusher(2, time.Millisecond, wp)
	o := newOutbox(nc, &Config{MaxQueueBytes: maxBytes, WriteTimeout: 10 * time.Second})
	o.useFlusher(f.shard(), detached(t, nc))
	return o, f
}

// detached is nc's descriptor, taken from it as serve does for a polled socket.
func detached(t *testing.T, nc net.Conn) *sock {
	t.Helper()
	sk, err := detach(nc)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(sk.close)
	return sk
}

// readFrame reads one unmasked server frame.
func readServerFrame(br *bufio.Reader) (ws.Header, []byte, error) {
	h, err := ws.ReadHeader(br)
	if err != nil {
		return h, nil, err
	}
	b := make([]byte, h.Length)
	_, err = io.ReadFull(br, b)
	return h, b, err
}

// TestFlusherFullSocket: 20 MB of frames for a client that reads nothing at first overflow the
// kernel's buffers; what a non-blocking write could not send is carried to a writer goroutine
// that waits for the socket. Once the client reads, every frame arrives whole and in order.
func TestFlusherFullSocket(t *testing.T) {
	nc, cl := tcpPair(t)
	o, f := flushedOutbox(t, nc, 64<<20)
	const n, size = 20000, 1000
	for i := range n {
		b := make([]byte, size)
		copy(b, fmt.Sprintf("%08d", i))
		o.Write(b)
	}
	// The kernel's buffers cannot hold 20 MB: some flusher write must have found them full
	// (and the writer goroutine took the rest), or this test proves nothing.
	deadline := time.Now().Add(10 * time.Second)
	for {
		o.mu.Lock()
		full := o.full
		o.mu.Unlock()
		if full > 0 {
			break
		}
		if time.Now().After(deadline) {
			t.Fatal("no write found the socket full")
		}
		time.Sleep(time.Millisecond) // polling a condition, with a deadline
	}
	br := bufio.NewReader(cl)
	_ = cl.SetReadDeadline(time.Now().Add(30 * time.Second))
	for i := range n {
		h, b, err := readServerFrame(br)
		if err != nil {
			t.Fatalf("frame %d: %v", i, err)
		}
		if h.OpCode != ws.OpText || len(b) != size || string(b[:8]) != fmt.Sprintf("%08d", i) {
			t.Fatalf("frame %d: got op %v, %d bytes, %q", i, h.OpCode, len(b), b[:8])
		}
	}
	o.Stop()
	f.close()
}

// TestFlusherRoundsBackToBack: a socket listed while a round writes others has waited that
// round, so it is written right after it, not after another write delay (an hour here, in
// virtual time: one delay in all, not two).
func TestFlusherRoundsBackToBack(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		nc1, cl1 := tcpPair(t)
		nc2, cl2 := tcpPair(t)
		f := newFlusher(1, time.Hour, nil)
		cfg := &Config{MaxQueueBytes: 1 << 20, WriteTimeout: 10 * time.Second}
		polled := func(nc net.Conn) *outbox {
			o := newOutbox(nc, cfg)
			o.useFlusher(f.shards[0], detached(t, nc))
			return o
		}
		o1, o2 := polled(nc1), polled(nc2)
		f.shards[0].wrote = func(o *outbox) {
			if o == o1 {
				o2.Write([]byte("second")) // listed while the first round runs
			}
		}
		start := time.Now()
		o1.Write([]byte("first"))
		time.Sleep(time.Hour)
		synctest.Wait() // the shard is idle again, with whatever it wrote written
		o2.mu.Lock()
		listed := o2.listed
		o2.mu.Unlock()
		if listed {
			t.Fatal("the socket listed during a round still waits for another write delay")
		}
		for i, c := range []struct {
			cl   net.Conn
			want string
		}{{cl1, "first"}, {cl2, "second"}} {
			_, b, err := readServerFrame(bufio.NewReader(c.cl))
			if err != nil || string(b) != c.want {
				t.Fatalf("socket %d: %q, %v; want %q", i+1, b, err, c.want)
			}
		}
		if d := time.Since(start); d != time.Hour {
			t.Fatalf("both written after %v, want one write delay (1h)", d)
		}
		o1.Stop()
		o2.Stop()
		f.close()
	})
}

// TestFlusherTrimsIdleQueue: a socket keeps its queue's array after a write of text frames (the
// next frame needs no new one) and lets it go with a write that carries none, a ping: an idle
// socket holds no array. Each write arrives as sent.
func TestFlusherTrimsIdleQueue(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		nc, cl := tcpPair(t)
		f := newFlusher(1, time.Millisecond, nil)
		o := newOutbox(nc, &Config{MaxQueueBytes: 1 << 20, WriteTimeout: 10 * time.Second})
		o.useFlusher(f.shards[0], detached(t, nc))
		br := bufio.NewReader(cl)
		capacity := func() int {
			synctest.Wait()
			time.Sleep(time.Millisecond) // the write delay
			synctest.Wait()
			o.mu.Lock()
			defer o.mu.Unlock()
			return cap(o.frames)
		}
		read := func(op ws.OpCode, want string) {
			t.Helper()
			h, b, err := readServerFrame(br)
			if err != nil || h.OpCode != op || string(b) != want {
				t.Fatalf("read %v %q, %v; want %v %q", h.OpCode, b, err, op, want)
			}
		}
		o.Write([]byte("sync"))
		if c := capacity(); c == 0 {
			t.Fatal("the queue let its array go after a text frame")
		}
		read(ws.OpText, "sync")
		o.queuePing()
		if c := capacity(); c != 0 {
			t.Fatalf("after a write with no text frame the queue holds an array of %d", c)
		}
		read(ws.OpPing, "")
		o.Write([]byte("next"))
		if c := capacity(); c == 0 {
			t.Fatal("no array for the next frame")
		}
		read(ws.OpText, "next")
		o.Stop()
		f.close()
	})
}

// TestFlusherSlowConsumer: a client that never reads is closed with slow_consumer and 4008 once
// more than MaxQueueBytes wait for its socket; the frames queued before that arrive intact,
// then the error frame and the close.
func TestFlusherSlowConsumer(t *testing.T) {
	nc, cl := tcpPair(t)
	o, f := flushedOutbox(t, nc, 64<<10)
	frame := make([]byte, 1000)
	sent := 0
	deadline := time.Now().Add(20 * time.Second)
	for !o.Closing() {
		if time.Now().After(deadline) {
			t.Fatal("the outbox never overflowed")
		}
		o.Write(frame)
		sent++
	}
	br := bufio.NewReader(cl)
	_ = cl.SetReadDeadline(time.Now().Add(30 * time.Second))
	got := 0
	for {
		h, b, err := readServerFrame(br)
		if err != nil {
			t.Fatalf("after %d frames: %v", got, err)
		}
		if h.OpCode == ws.OpClose {
			if code := binary.BigEndian.Uint16(b); code != wire.CloseSlowConsumer {
				t.Fatalf("close code %d, want %d", code, wire.CloseSlowConsumer)
			}
			break
		}
		if h.OpCode != ws.OpText {
			t.Fatalf("op %v", h.OpCode)
		}
		if len(b) != 1000 {
			f, err := wire.DecodeServer(b)
			if ef, ok := f.(wire.ErrorFrame); err != nil || !ok || ef.Code != wire.ErrSlowConsumer {
				t.Fatalf("frame %d: %q", got, b)
			}
			continue
		}
		got++
	}
	if got >= sent {
		t.Fatalf("%d of %d frames arrived before the close: the overflowing ones must not", got, sent)
	}
	o.Stop()
	f.close()
}

// TestAppendFrame: frames built on a byte slice are what gobwas compiles, at every header
// length, and building them allocates nothing once the slice has room.
func TestAppendFrame(t *testing.T) {
	for _, n := range []int{0, 1, 125, 126, 65535, 65536} {
		payload := make([]byte, n)
		want, err := ws.CompileFrame(ws.NewFrame(ws.OpText, true, payload))
		if err != nil {
			t.Fatal(err)
		}
		if got := appendFrame(nil, ws.OpText, payload); string(got) != string(want) {
			t.Fatalf("%d-byte payload: frame differs from gobwas's (%d vs %d bytes)", n, len(got), len(want))
		}
	}
	buf := make([]byte, 0, 4096)
	payload := []byte(`{"t":"u","id":"alice","a":"Coding"}`)
	if allocs := testing.AllocsPerRun(100, func() { buf = appendFrame(buf[:0], ws.OpText, payload) }); allocs != 0 {
		t.Fatalf("appendFrame allocates %v times", allocs)
	}
}

// TestQueueBoundLimit: the outbound queue's bound defaults to 256 KiB and is at most 1 GiB (an
// outbox counts it in an int32).
func TestQueueBoundLimit(t *testing.T) {
	for _, tc := range []struct{ set, want int }{{0, 256 << 10}, {1 << 20, 1 << 20}, {4 << 30, 1 << 30}} {
		c := Config{Auth: auth.DevAuth{}, Graph: auth.StaticGraph{}, MaxQueueBytes: tc.set}
		if err := c.setDefaults(); err != nil {
			t.Fatal(err)
		}
		if c.MaxQueueBytes != tc.want {
			t.Errorf("MaxQueueBytes %d: got %d, want %d", tc.set, c.MaxQueueBytes, tc.want)
		}
	}
}
