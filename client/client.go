// Package client is the Go client of the presenced protocol: dial, say hello, read frames, send
// status. presencectl and the test kit are built on it.
package client

import (
	"context"
	"encoding/binary"
	"errors"
	"fmt"
	"io"
	"net"
	"sync"

	"github.com/gobwas/ws"
	"github.com/gobwas/ws/wsutil"

	"github.com/presenced/presenced/wire"
)

// CloseError is returned by Read once the server has closed the socket with a close frame.
type CloseError struct {
	Code   int
	Reason string
}

func (e *CloseError) Error() string { return fmt.Sprintf("closed by server: %d %s", e.Code, e.Reason) }

// Advice returns what the protocol tells a client to do after this close.
func (e *CloseError) Advice() wire.Advice {
	for _, c := range wire.Codes {
		if c.Close == e.Code {
			return c.Advice
		}
	}
	return wire.AdviceReconnect
}

// Conn is one WebSocket to presenced. Read from one goroutine; Send from any.
type Conn struct {
	nc net.Conn
	rd *wsutil.Reader
	wm sync.Mutex // one writer at a time: frames are written in pieces
	lw lockedWriter

	ignorePings bool
}

type lockedWriter struct{ c *Conn }

func (w lockedWriter) Write(p []byte) (int, error) {
	w.c.wm.Lock()
	defer w.c.wm.Unlock()
	return w.c.nc.Write(p)
}

// Options tune Dial. The zero value dials TCP.
type Options struct {
	// NetDial replaces the TCP dial (tests use in-memory pipes).
	NetDial func(ctx context.Context, network, addr string) (net.Conn, error)
	// IgnorePings leaves server pings unanswered, like a dead peer (tests of drop detection).
	IgnorePings bool
}

// Dial opens a WebSocket to url (ws://host:port/ws).
func Dial(ctx context.Context, url string, opt Options) (*Conn, error) {
	nc, br, _, err := ws.Dialer{NetDial: opt.NetDial}.Dial(ctx, url)
	if err != nil {
		return nil, fmt.Errorf("client: dial %s: %w", url, err)
	}
	c := &Conn{nc: nc, ignorePings: opt.IgnorePings}
	c.lw = lockedWriter{c}
	var src io.Reader = nc
	if br != nil {
		src = br
	}
	c.rd = &wsutil.Reader{Source: src, State: ws.StateClientSide, CheckUTF8: true,
		OnIntermediate: wsutil.ControlFrameHandler(c.lw, ws.StateClientSide)}
	return c, nil
}

// Send writes one frame.
func (c *Conn) Send(f wire.Frame) error { return c.SendRaw(wire.Encode(f)) }

// SendRaw writes one text frame with exactly these bytes.
func (c *Conn) SendRaw(b []byte) error {
	c.wm.Lock()
	defer c.wm.Unlock()
	return wsutil.WriteClientMessage(c.nc, ws.OpText, b)
}

// SendBinary writes one binary frame (which the protocol forbids; for tests).
func (c *Conn) SendBinary(b []byte) error {
	c.wm.Lock()
	defer c.wm.Unlock()
	return wsutil.WriteClientMessage(c.nc, ws.OpBinary, b)
}

// Read returns the next frame and its raw bytes. Pings are answered on the way. After the
// server's close frame it returns *CloseError.
func (c *Conn) Read() (wire.Frame, []byte, error) {
	for {
		h, err := c.rd.NextFrame()
		if err != nil {
			return nil, nil, err
		}
		if h.OpCode.IsControl() {
			if h.OpCode == ws.OpClose {
				return nil, nil, c.onClose()
			}
			if h.OpCode == ws.OpPing && c.ignorePings {
				if err := c.rd.Discard(); err != nil {
					return nil, nil, err
				}
				continue
			}
			if err := c.rd.OnIntermediate(h, c.rd); err != nil {
				var ce wsutil.ClosedError
				if errors.As(err, &ce) {
					return nil, nil, &CloseError{Code: int(ce.Code), Reason: ce.Reason}
				}
				return nil, nil, err
			}
			continue
		}
		b, err := io.ReadAll(c.rd)
		if err != nil {
			return nil, nil, err
		}
		f, err := wire.DecodeServer(b)
		if err != nil {
			return nil, b, fmt.Errorf("client: %w (frame %q)", err, b)
		}
		return f, b, nil
	}
}

// onClose reads the server's close frame, echoes it as the protocol asks (ignoring a failure:
// the server may already be gone) and returns it as *CloseError.
func (c *Conn) onClose() error {
	body, err := io.ReadAll(c.rd)
	if err != nil {
		return err
	}
	ce := &CloseError{Code: int(ws.StatusNoStatusRcvd)}
	if len(body) >= 2 {
		ce.Code = int(binary.BigEndian.Uint16(body))
		ce.Reason = string(body[2:])
	}
	c.wm.Lock()
	_ = ws.WriteFrame(c.nc, ws.MaskFrameInPlace(ws.NewCloseFrame(body[:min(len(body), 2)])))
	c.wm.Unlock()
	return ce
}

// Drop closes the TCP connection with no close frame, like a network failure.
func (c *Conn) Drop() error { return c.nc.Close() }

// NetConn exposes the socket for tests that write raw bytes.
func (c *Conn) NetConn() net.Conn { return c.nc }

// Hello says hello and reads the welcome and sync. On a refusal it returns the server's
// *wire.Error (code and message from the error frame, Close from the close frame).
func (c *Conn) Hello(h wire.Hello) (wire.Welcome, wire.Sync, error) {
	if err := c.Send(h); err != nil {
		return wire.Welcome{}, wire.Sync{}, err
	}
	f, _, err := c.Read()
	if err != nil {
		return wire.Welcome{}, wire.Sync{}, err
	}
	switch f := f.(type) {
	case wire.Welcome:
		f2, _, err := c.Read()
		if err != nil {
			return wire.Welcome{}, wire.Sync{}, err
		}
		s, ok := f2.(wire.Sync)
		if !ok {
			return wire.Welcome{}, wire.Sync{}, fmt.Errorf("client: want sync after welcome, got %T", f2)
		}
		return f, s, nil
	case wire.ErrorFrame:
		e := &wire.Error{Code: f.Code, Msg: f.Msg}
		if _, _, err := c.Read(); err != nil {
			var ce *CloseError
			if errors.As(err, &ce) {
				e.Close = ce.Code
			}
		}
		return wire.Welcome{}, wire.Sync{}, e
	default:
		return wire.Welcome{}, wire.Sync{}, fmt.Errorf("client: want welcome, got %T", f)
	}
}
