package testkit

import (
	"context"
	"errors"
	"fmt"
	"reflect"
	"testing"
	"time"

	"github.com/presenced/presenced/client"
	"github.com/presenced/presenced/wire"
)

// Wait is how long an expectation waits for a frame (virtual time inside synctest).
var Wait = 10 * time.Second

// Client is a test's WebSocket client. A goroutine reads frames into a queue; expectations
// take from it with a deadline. t.Cleanup closes the socket and joins the reader.
type Client struct {
	tb      testing.TB
	Conn    *client.Conn
	frames  chan Received
	done    chan struct{}
	Welcome wire.Welcome
	Sync    wire.Sync
	// Timeout is how long an expectation waits (default Wait). Virtual-time tests raise it.
	Timeout time.Duration
}

// Received is one frame read by a Client, or the error that ended reading.
type Received struct {
	Frame wire.Frame
	Raw   []byte
	Err   error
}

// Dial opens a socket to n without saying hello.
func (n *Node) Dial(tb testing.TB) *Client {
	tb.Helper()
	c := n.DialRaw(tb)
	tc := &Client{tb: tb, Conn: c, frames: make(chan Received, 4096), done: make(chan struct{}), Timeout: Wait}
	go tc.read()
	// Cleanups run last-in first-out: this one (drop, then join the reader) runs before
	// DialRaw's own drop, which is then a no-op.
	tb.Cleanup(func() {
		_ = c.Drop()
		<-tc.done
	})
	return tc
}

// Connect dials, says hello and expects welcome then sync.
func (n *Node) Connect(tb testing.TB, h wire.Hello) *Client {
	tb.Helper()
	c := n.Dial(tb)
	c.Send(h)
	f := c.Next()
	w, ok := f.(wire.Welcome)
	if !ok {
		tb.Fatalf("testkit: %s: want welcome, got %#v", h.Token, f)
	}
	s, ok := c.Next().(wire.Sync)
	if !ok {
		tb.Fatalf("testkit: %s: want sync after welcome", h.Token)
	}
	c.Welcome, c.Sync = w, s
	return c
}

func (c *Client) read() {
	defer close(c.done)
	for {
		f, raw, err := c.Conn.Read()
		c.frames <- Received{Frame: f, Raw: raw, Err: err}
		if err != nil {
			return
		}
	}
}

// Send writes a frame or fails the test.
func (c *Client) Send(f wire.Frame) {
	c.tb.Helper()
	if err := c.Conn.Send(f); err != nil {
		c.tb.Fatalf("testkit: send %T: %v", f, err)
	}
}

// SendRaw writes one text frame with these bytes.
func (c *Client) SendRaw(b string) {
	c.tb.Helper()
	if err := c.Conn.SendRaw([]byte(b)); err != nil {
		c.tb.Fatalf("testkit: send raw: %v", err)
	}
}

// NextReceived returns the next frame or error, failing the test after Wait.
func (c *Client) NextReceived() Received {
	c.tb.Helper()
	select {
	case r := <-c.frames:
		return r
	case <-time.After(c.Timeout):
		c.tb.Fatalf("testkit: %s: no frame within %v", c, c.Timeout)
		return Received{}
	}
}

// Next returns the next frame, failing on an error.
func (c *Client) Next() wire.Frame {
	c.tb.Helper()
	r := c.NextReceived()
	if r.Err != nil {
		c.tb.Fatalf("testkit: want a frame, got error %v", r.Err)
	}
	return r.Frame
}

// Expect fails unless the next frame equals want exactly.
func (c *Client) Expect(want wire.Frame) {
	c.tb.Helper()
	if got := c.Next(); !reflect.DeepEqual(got, want) {
		c.tb.Fatalf("testkit: got %#v\nwant %#v", got, want)
	}
}

// ExpectRaw fails unless the next frame's bytes are exactly want.
func (c *Client) ExpectRaw(want string) {
	c.tb.Helper()
	r := c.NextReceived()
	if r.Err != nil || string(r.Raw) != want {
		c.tb.Fatalf("testkit: got %q (err %v), want %q", r.Raw, r.Err, want)
	}
}

// Quiet asserts that nothing is queued for this client: it pings, and the pong must be the next
// frame (the server sends pong after every frame queued before the ping).
func (c *Client) Quiet() {
	c.tb.Helper()
	c.Send(wire.Ping{})
	if got := c.Next(); got != (wire.Pong{}) {
		c.tb.Fatalf("testkit: want nothing before pong, got %#v", got)
	}
}

// ExpectClose fails unless the next frames are the error frame with errCode (skipped when "")
// and then a close with closeCode.
func (c *Client) ExpectClose(errCode string, closeCode int) {
	c.tb.Helper()
	if errCode != "" {
		f := c.Next()
		if e, ok := f.(wire.ErrorFrame); !ok || e.Code != errCode {
			c.tb.Fatalf("testkit: want error %q, got %#v", errCode, f)
		}
	}
	r := c.NextReceived()
	var ce *client.CloseError
	if !errors.As(r.Err, &ce) || ce.Code != closeCode {
		c.tb.Fatalf("testkit: want close %d, got frame %#v err %v", closeCode, r.Frame, r.Err)
	}
}

// Drop closes the TCP connection without a close frame (a network failure).
func (c *Client) Drop() { _ = c.Conn.Drop() }

// String names the client in failure messages.
func (c *Client) String() string { return fmt.Sprintf("client(%s)", c.Welcome.ID) }

// DialRaw opens a socket to n and returns the bare client, for tests that control reading.
func (n *Node) DialRaw(tb testing.TB) *client.Conn {
	tb.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), Wait)
	defer cancel()
	c, err := client.Dial(ctx, n.URL, n.opts)
	if err != nil {
		tb.Fatalf("testkit: %v", err)
	}
	tb.Cleanup(func() { _ = c.Drop() })
	return c
}
