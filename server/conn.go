package server

import (
	"bufio"
	"context"
	"encoding/binary"
	"errors"
	"io"
	"net"
	"net/http"
	"time"

	"github.com/asynkron/protoactor-go/actor"
	"github.com/gobwas/ws"
	"go.uber.org/zap"

	"github.com/presenced/presenced/actors"
	"github.com/presenced/presenced/auth"
	"github.com/presenced/presenced/wire"
)

// conn is one socket. serve runs on the connection's goroutine and is its reader; the outbox's
// goroutine is its only writer and is joined before serve returns.
type conn struct {
	n   *Node
	nc  net.Conn
	out *outbox
	log *zap.Logger

	pid       *actor.PID // the connection actor, after a good hello
	user      string     // the verified user id, after a good hello
	actorDone chan struct{}
	lastHeard time.Time
	limiter   *limiter
}

func newConn(n *Node, nc net.Conn) *conn {
	return &conn{n: n, nc: nc, out: newOutbox(nc, &n.cfg), log: n.log, actorDone: make(chan struct{})}
}

// upgrader does gobwas's zero-copy upgrade: no http.Request, no header maps.
var upgrader = ws.Upgrader{
	OnRequest: func(uri []byte) error {
		path := uri
		for i, c := range uri {
			if c == '?' {
				path = uri[:i]
				break
			}
		}
		if string(path) != "/ws" {
			return ws.RejectConnectionError(ws.RejectionStatus(http.StatusNotFound), ws.RejectionReason("presenced serves WebSockets at /ws"))
		}
		return nil
	},
}

func (c *conn) serve() {
	defer c.nc.Close()
	start := time.Now()
	_ = c.nc.SetDeadline(start.Add(c.n.cfg.HelloTimeout))
	if _, err := upgrader.Upgrade(c.nc); err != nil {
		c.log.Debug("websocket upgrade failed", zap.Error(err))
		return
	}
	_ = c.nc.SetWriteDeadline(time.Time{})
	c.lastHeard = start
	go c.out.run()
	c.readLoop()
	// The reader is done: tell the actor (a drop unless it saw bye), then join the writer.
	if c.pid != nil {
		c.n.system.Root.Send(c.pid, actors.SocketClosed{LastHeard: c.lastHeard})
		select {
		case <-c.actorDone:
		case <-time.After(c.n.cfg.AuthTimeout):
			c.log.Warn("connection actor did not stop in time; stopping it")
			_ = c.n.system.Root.StopFuture(c.pid).Wait()
		}
		c.n.follows.unregister(c.user, c.pid)
	}
	if c.out.Closing() {
		// Let the writer send the error and close frames it was asked for.
		select {
		case <-c.out.done:
		case <-time.After(c.n.cfg.WriteTimeout):
		}
	}
	c.out.Stop()
}

// readLoop reads frames until the socket ends. Before hello the read deadline is the hello
// timeout; after it, DeadAfter from the last frame heard.
func (c *conn) readLoop() {
	br := bufio.NewReaderSize(c.nc, 512)
	buf := make([]byte, 0, 512)
	var msg []byte // a fragmented text message being assembled
	for {
		h, err := ws.ReadHeader(br)
		if err != nil {
			var ne net.Error
			if c.pid == nil && errors.As(err, &ne) && ne.Timeout() && !c.out.Closing() {
				c.fail(&wire.Error{Code: wire.ErrHelloTimeout, Msg: "no hello within 10 s", Close: wire.ClosePolicy})
			}
			return
		}
		if !h.Masked {
			c.fail(&wire.Error{Code: wire.ErrBadFrame, Msg: "client frames must be masked", Close: wire.CloseProtocolError})
			return
		}
		if h.Length > wire.MaxFrameBytes || int64(len(msg))+h.Length > wire.MaxFrameBytes {
			c.fail(&wire.Error{Code: wire.ErrTooBig, Msg: "frames are limited to 4096 bytes", Close: wire.CloseTooBig})
			c.discard(br)
			return
		}
		if int64(cap(buf)) < h.Length {
			buf = make([]byte, h.Length)
		}
		payload := buf[:h.Length]
		if _, err := io.ReadFull(br, payload); err != nil {
			return
		}
		ws.Cipher(payload, h.Mask, 0)
		now := time.Now()
		c.lastHeard = now
		if c.pid != nil {
			c.out.extendRead(now.Add(c.n.cfg.DeadAfter))
		}
		if c.out.Closing() {
			// Our close is queued: read on only to let the client's close arrive.
			if h.OpCode == ws.OpClose {
				return
			}
			continue
		}
		switch h.OpCode {
		case ws.OpPing:
			c.out.queuePong(payload)
		case ws.OpPong:
		case ws.OpClose:
			// The client closes: echo its code. Without bye this is a drop.
			code := wire.CloseNormal
			if len(payload) >= 2 {
				code = int(binary.BigEndian.Uint16(payload))
			}
			c.out.Close(code, "", "")
			return
		case ws.OpBinary:
			c.fail(&wire.Error{Code: wire.ErrBinary, Msg: "binary frames are not supported: send JSON text", Close: wire.CloseUnsupportedData})
		case ws.OpText, ws.OpContinuation:
			if h.OpCode == ws.OpContinuation && msg == nil {
				c.fail(&wire.Error{Code: wire.ErrBadFrame, Msg: "continuation frame without a message", Close: wire.CloseProtocolError})
				continue
			}
			if !h.Fin {
				msg = append(msg, payload...)
				continue
			}
			if msg != nil {
				msg = append(msg, payload...)
				c.onText(msg)
				msg = nil
				continue
			}
			c.onText(payload)
		default:
			c.fail(&wire.Error{Code: wire.ErrBadFrame, Msg: "unknown opcode", Close: wire.CloseProtocolError})
		}
	}
}

// discard reads and drops input until the close grace ends, so our close frame is not lost to a
// TCP reset caused by unread data.
func (c *conn) discard(br *bufio.Reader) {
	_, _ = io.Copy(io.Discard, br)
}

// fail sends the error frame and closes with its code.
func (c *conn) fail(e *wire.Error) {
	c.out.Close(e.Close, e.Code, e.Msg)
}

func (c *conn) onText(b []byte) {
	f, err := wire.Decode(b)
	if err != nil {
		var we *wire.Error
		if errors.As(err, &we) {
			c.fail(we)
		} else {
			c.fail(wire.BadFrame("%v", err))
		}
		return
	}
	if c.pid == nil {
		h, ok := f.(wire.Hello)
		if !ok {
			c.fail(&wire.Error{Code: wire.ErrHelloExpected, Msg: "the first frame must be hello", Close: wire.ClosePolicy})
			return
		}
		c.hello(h)
		return
	}
	if _, ok := f.(wire.Hello); ok {
		c.fail(&wire.Error{Code: wire.ErrDuplicateHello, Msg: "hello was already said on this socket", Close: wire.ClosePolicy})
		return
	}
	// Status, invisible and privacy frames are limited; ping and bye are cheap and must always work.
	switch f.(type) {
	case wire.Status, wire.Invisible, wire.Privacy:
		if !c.admit() {
			return
		}
	}
	c.n.system.Root.Send(c.pid, actors.Inbound{Frame: f})
}

// admit applies the rate limit to one frame: false drops it (with at most one rate_limited error
// a second), and sustained flooding closes the socket with 1008.
func (c *conn) admit() bool {
	if c.limiter.allow(time.Now()) {
		return true
	}
	if c.limiter.abusive() {
		c.fail(&wire.Error{Code: wire.ErrRateLimited, Msg: "sustained flooding: closing", Close: wire.ClosePolicy})
	} else if c.limiter.shouldWarn() {
		c.out.Write(wire.Encode(wire.ErrorFrame{Code: wire.ErrRateLimited, Msg: "over 20 frames per second (burst 40): frames dropped"}))
	}
	return false
}

// hello authenticates and starts the connection actor, which attaches the window.
func (c *conn) hello(h wire.Hello) {
	ctx, cancel := context.WithTimeout(context.Background(), c.n.cfg.AuthTimeout)
	defer cancel()
	id, err := c.n.cfg.Auth.Authenticate(ctx, h.Token)
	if err != nil {
		if errors.Is(err, auth.ErrUnauthorized) {
			c.fail(&wire.Error{Code: wire.ErrUnauthorized, Msg: "token not accepted: get a new one", Close: wire.CloseUnauthorized})
		} else {
			c.log.Warn("authentication failed", zap.Error(err))
			c.fail(&wire.Error{Code: wire.ErrInternal, Msg: "could not check the token: try again", Close: wire.CloseInternal})
		}
		return
	}
	t, err := c.n.follows.get(ctx, id, h.Token)
	if err != nil {
		if errors.Is(err, auth.ErrUnauthorized) {
			c.fail(&wire.Error{Code: wire.ErrUnauthorized, Msg: "token not accepted: get a new one", Close: wire.CloseUnauthorized})
			return
		}
		c.log.Warn("loading follow graph failed", zap.String("user", id.ID), zap.Error(err))
		c.fail(&wire.Error{Code: wire.ErrInternal, Msg: "could not load whom you follow: try again", Close: wire.CloseInternal})
		return
	}
	c.log = c.log.With(zap.String("user", id.ID))
	c.limiter = newLimiter(&c.n.cfg)
	done := c.actorDone
	spec := actors.ConnSpec{User: id.ID, Login: id.Login, Following: withoutSelf(t.list, id.ID), GraphVersion: t.version, Hello: h, Socket: c.out}
	props := actors.ConnProps(c.n.deps, spec).Configure(actor.WithReceiverMiddleware(onStopped(done)))
	c.pid = c.n.system.Root.Spawn(props)
	c.user = id.ID
	c.n.follows.register(id, h.Token, c.pid, t)
	c.out.extendRead(time.Now().Add(c.n.cfg.DeadAfter))
}

func withoutSelf(users []auth.Followee, self string) []auth.Followee {
	out := make([]auth.Followee, 0, len(users))
	for _, u := range users {
		if u.ID != self {
			out = append(out, u)
		}
	}
	return out
}

// onStopped closes done when the actor has stopped, so the reader can join it.
func onStopped(done chan struct{}) actor.ReceiverMiddleware {
	return func(next actor.ReceiverFunc) actor.ReceiverFunc {
		return func(ctx actor.ReceiverContext, env *actor.MessageEnvelope) {
			next(ctx, env)
			if _, ok := env.Message.(*actor.Stopped); ok {
				close(done)
			}
		}
	}
}
