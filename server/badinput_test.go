package server_test

import (
	"bytes"
	"io"
	"net"
	"strings"
	"testing"

	"github.com/gobwas/ws"

	"github.com/presenced/presenced/testkit"
	"github.com/presenced/presenced/wire"
)

// bystanders connects bob (following alice) and alice, and returns a func that proves both are
// still served: alice's change reaches bob.
func bystanders(t *testing.T, n *testkit.Node) func(a wire.Activity) {
	b := n.Connect(t, wire.Hello{Token: "bob"})
	a := n.Connect(t, wire.Hello{Token: "alice"})
	b.Expect(wire.Online{ID: "alice", Presence: online(wire.Idle, "", "")})
	return func(act wire.Activity) {
		t.Helper()
		a.Send(wire.Status{Has: wire.FieldActivity, Activity: act})
		b.Expect(wire.Update{ID: "alice", Has: wire.FieldActivity, Activity: act})
	}
}

func TestBadInput(t *testing.T) {
	n := testkit.StartNode(t, fast(map[string][]string{"bob": {"alice"}}))
	stillServed := bystanders(t, n)
	hello := `{"t":"hello","token":"mallory"}`
	cases := []struct {
		name      string
		hello     bool // say hello first
		send      func(c *testkit.Client)
		errCode   string
		errMsg    string
		closeCode int
	}{
		{"garbage before hello", false, func(c *testkit.Client) { c.SendRaw("garbage") }, wire.ErrBadFrame,
			"not a JSON object: invalid character 'g' looking for beginning of value", wire.CloseInvalidPayload},
		{"garbage after hello", true, func(c *testkit.Client) { c.SendRaw("{") }, wire.ErrBadFrame,
			"not a JSON object: unexpected end of JSON input", wire.CloseInvalidPayload},
		{"binary frame", true, func(c *testkit.Client) { _ = c.Conn.SendBinary([]byte{1, 2, 3}) }, wire.ErrBinary,
			"binary frames are not supported: send JSON text", wire.CloseUnsupportedData},
		{"frame over 4 KiB", true, func(c *testkit.Client) { c.SendRaw(`{"t":"status","p":"` + strings.Repeat("x", 4100) + `"}`) },
			wire.ErrTooBig, "frames are limited to 4096 bytes", wire.CloseTooBig},
		{"frame before hello", false, func(c *testkit.Client) { c.SendRaw(`{"t":"status","a":"Coding"}`) }, wire.ErrHelloExpected,
			"the first frame must be hello", wire.ClosePolicy},
		{"second hello", true, func(c *testkit.Client) { c.SendRaw(hello) }, wire.ErrDuplicateHello,
			"hello was already said on this socket", wire.ClosePolicy},
		{"unknown t", true, func(c *testkit.Client) { c.SendRaw(`{"t":"dance"}`) }, wire.ErrBadFrame,
			`unknown frame type "dance"`, wire.CloseInvalidPayload},
		{"wrong type", true, func(c *testkit.Client) { c.SendRaw(`{"t":"status","a":7}`) }, wire.ErrBadFrame,
			`field "a" has the wrong type (want string)`, wire.CloseInvalidPayload},
		{"bad enum", true, func(c *testkit.Client) { c.SendRaw(`{"t":"status","a":"Sleeping"}`) }, wire.ErrBadFrame,
			`field "a" must be one of Coding, Debugging, Idle, not "Sleeping"`, wire.CloseInvalidPayload},
		{"over-long project", true, func(c *testkit.Client) { c.SendRaw(`{"t":"status","p":"` + strings.Repeat("p", 129) + `"}`) },
			wire.ErrBadFrame, `field "p" is 129 bytes, over the limit of 128`, wire.CloseInvalidPayload},
		{"bad token", false, func(c *testkit.Client) { c.SendRaw(`{"t":"hello","token":"not a user!"}`) }, wire.ErrUnauthorized,
			"token not accepted: get a new one", wire.CloseUnauthorized},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			c := n.Dial(t)
			if tc.hello {
				c.SendRaw(hello)
				if _, ok := c.Next().(wire.Welcome); !ok {
					t.Fatal("want welcome")
				}
				if _, ok := c.Next().(wire.Sync); !ok {
					t.Fatal("want sync")
				}
			}
			tc.send(c)
			c.Expect(wire.ErrorFrame{Code: tc.errCode, Msg: tc.errMsg})
			c.ExpectClose("", tc.closeCode)
			stillServed(wire.Coding)
			stillServed(wire.Idle)
		})
	}
}

// TestRateLimit: over 20 frames/s (burst 40) the excess is dropped with one rate_limited error
// and the socket stays open; sustained flooding closes with 1008. Others are served throughout.
func TestRateLimit(t *testing.T) {
	n := testkit.StartNode(t, fast(map[string][]string{"bob": {"alice"}, "carol": {"mallory"}}))
	stillServed := bystanders(t, n)
	carol := n.Connect(t, wire.Hello{Token: "carol"})
	m := n.Connect(t, wire.Hello{Token: "mallory"})
	carol.Expect(wire.Online{ID: "mallory", Presence: online(wire.Idle, "", "")})

	// 60 frames at once: the first 40 pass, some are dropped with one warning.
	var batch bytes.Buffer
	for i := 0; i < 60; i++ {
		batch.Write(clientFrame(`{"t":"status","a":"Coding"}`))
	}
	writeRaw(t, m.Conn.NetConn(), batch.Bytes())
	m.Expect(wire.ErrorFrame{Code: wire.ErrRateLimited, Msg: "over 20 frames per second (burst 40): frames dropped"})
	m.Quiet() // still open, and pings are not limited
	carol.Expect(wire.Update{ID: "mallory", Has: wire.FieldActivity, Activity: wire.Coding})
	stillServed(wire.Debugging)

	// A flood: more than 200 dropped within 10 s closes the socket.
	batch.Reset()
	for i := 0; i < 400; i++ {
		batch.Write(clientFrame(`{"t":"status","a":"Idle"}`))
	}
	writeRaw(t, m.Conn.NetConn(), batch.Bytes())
	for {
		f := m.Next()
		if e, ok := f.(wire.ErrorFrame); ok && e.Msg == "sustained flooding: closing" {
			break
		}
	}
	m.ExpectClose("", wire.ClosePolicy)
	stillServed(wire.Coding)
}

// clientFrame builds one masked client text frame.
func clientFrame(payload string) []byte {
	var b bytes.Buffer
	if err := writeMasked(&b, []byte(payload)); err != nil {
		panic(err) // a bytes.Buffer does not fail
	}
	return b.Bytes()
}

func writeRaw(t *testing.T, nc net.Conn, b []byte) {
	t.Helper()
	if _, err := nc.Write(b); err != nil {
		t.Fatalf("write: %v", err)
	}
}

// TestFragmentedMessages: a text message in fragments is one frame to the server, an empty
// first fragment included; a continuation with no message before it, and a message whose
// fragments add up to more than 4 KiB, are refused with their own error and close code.
func TestFragmentedMessages(t *testing.T) {
	n := testkit.StartNode(t, fast(map[string][]string{"bob": {"alice"}}))
	bob := n.Connect(t, wire.Hello{Token: "bob"})
	alice := n.Connect(t, wire.Hello{Token: "alice"})
	bob.Expect(wire.Online{ID: "alice", Presence: online(wire.Idle, "", "")})

	var b bytes.Buffer
	msg := []byte(`{"t":"status","a":"Coding","p":"presenced"}`)
	for i, part := range [][]byte{nil, msg[:10], msg[10:30], msg[30:]} {
		op := ws.OpContinuation
		if i == 0 {
			op = ws.OpText
		}
		if err := writeFragment(&b, op, i == 3, part); err != nil {
			t.Fatal(err)
		}
	}
	writeRaw(t, alice.Conn.NetConn(), b.Bytes())
	bob.Expect(wire.Update{ID: "alice", Has: wire.FieldActivity | wire.FieldProject, Activity: wire.Coding, Project: "presenced"})

	cases := []struct {
		name      string
		frames    func(w io.Writer) error
		errCode   string
		errMsg    string
		closeCode int
	}{
		{"continuation without a message", func(w io.Writer) error {
			return writeFragment(w, ws.OpContinuation, true, []byte(`{"t":"ping"}`))
		}, wire.ErrBadFrame, "continuation frame without a message", wire.CloseProtocolError},
		{"fragments over 4 KiB", func(w io.Writer) error {
			part := []byte(strings.Repeat("x", 3000))
			if err := writeFragment(w, ws.OpText, false, part); err != nil {
				return err
			}
			return writeFragment(w, ws.OpContinuation, true, part)
		}, wire.ErrTooBig, "frames are limited to 4096 bytes", wire.CloseTooBig},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			m := n.Connect(t, wire.Hello{Token: "mallory"})
			var b bytes.Buffer
			if err := tc.frames(&b); err != nil {
				t.Fatal(err)
			}
			writeRaw(t, m.Conn.NetConn(), b.Bytes())
			m.Expect(wire.ErrorFrame{Code: tc.errCode, Msg: tc.errMsg})
			m.ExpectClose("", tc.closeCode)
			alice.Send(wire.Status{Has: wire.FieldActivity, Activity: wire.Idle})
			bob.Expect(wire.Update{ID: "alice", Has: wire.FieldActivity, Activity: wire.Idle})
			alice.Send(wire.Status{Has: wire.FieldActivity, Activity: wire.Coding})
			bob.Expect(wire.Update{ID: "alice", Has: wire.FieldActivity, Activity: wire.Coding})
		})
	}
}
