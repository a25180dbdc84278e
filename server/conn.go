package server

import (
	"bufio"
	"context"
	"encoding/binary"
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	"os"
	"sync"
	"sync/atomic"
	"time"

	"github.com/asynkron/protoactor-go/actor"
	"github.com/gobwas/ws"
	"go.uber.org/zap"
	"golang.org/x/sys/unix"

	"github.com/presenced/presenced/actors"
	"github.com/presenced/presenced/auth"
	"github.com/presenced/presenced/server/poll"
	"github.com/presenced/presenced/wire"
)

// conn is one socket. Two ways to read it:
//
//   - polled (a TCP socket on Linux): after the upgrade the socket is detached from its
//     net.TCPConn (sock) and no goroutine waits on it. The node's epoll poller reports it
//     readable; a short-lived goroutine reads the frames that are there (with pooled buffers, a
//     frame must arrive whole within FrameTimeout: the goroutine waits for the rest through the
//     poller) and re-arms it. The socket's clock enforces the hello timeout, pings, dead peers
//     and the close grace.
//   - a reader goroutine (in-memory pipes in tests, or where epoll is missing): it blocks in
//     reads with deadlines, as the timer does for the polled way.
//
// Either way the outbox writes on a goroutine that exists only while something is queued, and
// finish runs once, when the socket is done.
type conn struct {
	n   *Node
	nc  net.Conn // until detached (then nil: sk); guarded by mu once served
	sk  *sock    // a polled socket's descriptor, set under mu before the poller has it
	out *outbox

	pid       *actor.PID // the connection actor, after a good hello
	user      string     // the verified user id, after a good hello
	actorDone signal     // fired once the connection actor has stopped
	limiter   limiter    // set up at the hello
	msg       *[]byte    // a fragmented text message being assembled: rare, so made by its first frame

	desc      *poll.Desc   // nil when a goroutine reads
	startNs   int64        // unix ns when serve began (the hello timeout counts from it)
	lastHeard atomic.Int64 // unix ns of the last frame heard
	readDL    int64        // polled: unix ns by which a read must be done (held with rmu)

	rmu sync.Mutex // held while reading: successive read goroutines of a polled socket

	mu     sync.Mutex      // guards the fields below (and pid for the clock)
	waiter chan struct{}   // polled: a reader waiting for the rest of a frame (awaitReadable)
	clock  actors.Deadline // on the node's Deadlines: no timer of its own
	// Unix ns, not time.Time: 16 bytes fewer each, which keeps conn in the 352-byte class.
	nextPing  int64
	closedAt  int64 // when our close frame went out (polled: the grace starts); 0: not yet
	finishing bool
}

func newConn(n *Node, nc net.Conn) *conn {
	c := &conn{n: n, nc: nc, out: newOutbox(nc, &n.cfg)}
	return c
}

// helloDue is when the hello must have been read.
func (c *conn) helloDue() time.Time { return time.Unix(0, c.startNs).Add(c.n.cfg.HelloTimeout) }

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

// readers and payloads are pooled: a socket holds them only while it reads.
var (
	readers  = sync.Pool{New: func() any { return bufio.NewReaderSize(nil, 512) }}
	payloads = sync.Pool{New: func() any { b := make([]byte, wire.MaxFrameBytes); return &b }}
)

// serve upgrades the socket (bounded by the hello timeout: a handshake that trickles in ends
// there), then hands it to the poller, or reads it on this goroutine when it cannot be polled.
func (c *conn) serve() {
	start := time.Now()
	c.startNs = start.UnixNano()
	_ = c.nc.SetDeadline(start.Add(c.n.cfg.HelloTimeout))
	if _, err := upgrader.Upgrade(c.nc); err != nil {
		c.logger().Debug("websocket upgrade failed", zap.Error(err))
		c.nc.Close()
		c.n.connDone(c)
		return
	}
	_ = c.nc.SetWriteDeadline(time.Time{})
	c.n.cfg.Metrics.ConnOpened()
	c.lastHeard.Store(c.startNs)
	c.out.owner = c
	c.mu.Lock()
	c.nextPing = start.Add(c.n.cfg.PingInterval).UnixNano()
	c.n.deps.Deadlines.Init(&c.clock, c.tick)
	c.clock.Reset(time.Unix(0, c.nextPing))
	c.mu.Unlock()
	if p := c.n.pollerFor(c.nc); p != nil {
		// c.mu is held across the detach (Shutdown closes whichever socket c holds) and across
		// Add: the first event may come before Add returns, and readable reads c.desc under c.mu.
		c.mu.Lock()
		sk, err := detach(c.nc)
		if err != nil {
			c.mu.Unlock()
			c.logger().Warn("socket cannot be detached (at the open-files limit?); reading it with a goroutine, which costs more memory", zap.Error(err))
		} else {
			c.nc, c.sk = nil, sk
			c.out.useFlusher(c.n.flusher.shard(), sk)
			desc, err := p.AddFD(sk, poll.Readable, c.onEvent)
			if err != nil {
				c.mu.Unlock()
				// The TCPConn is gone: there is no goroutine way back.
				c.logger().Warn("socket cannot be polled; closing it", zap.Error(err))
				c.finish()
				return
			}
			c.desc = desc
			c.armLocked()
			c.mu.Unlock()
			return // the poller has it now
		}
	}
	br := bufio.NewReaderSize(c.nc, 512)
	for c.readFrame(br) {
	}
	c.finish()
}

// onEvent runs on a poller worker: the socket has something to read (or hung up). A reader
// waiting for the rest of a frame is woken; otherwise reading (which may wait like that) happens
// on a short-lived goroutine of its own.
func (c *conn) onEvent(poll.Event) {
	if !c.wakeReader() {
		go c.readable()
	}
}

// wakeReader wakes the reader waiting in awaitReadable, if one is.
func (c *conn) wakeReader() bool {
	c.mu.Lock()
	w := c.waiter
	c.waiter = nil
	c.mu.Unlock()
	if w != nil {
		w <- struct{}{} // cap 1, and only the one who cleared waiter sends
	}
	return w != nil
}

// Read reads a polled socket for bufio: what is there, or, when nothing is, what comes before
// readDL (then os.ErrDeadlineExceeded, a net.Error that times out, as a net.Conn's deadline).
func (c *conn) Read(p []byte) (int, error) {
	for {
		n, err := c.sk.read(p)
		if err != unix.EAGAIN {
			return n, err
		}
		if err := c.awaitReadable(); err != nil {
			return 0, err
		}
	}
}

// awaitReadable re-arms the socket and waits for its event, or readDL. It holds the descriptor
// meanwhile: a close then shuts the socket down, which is an event, instead of closing the
// number under the poller.
func (c *conn) awaitReadable() error {
	if _, ok := c.sk.acquire(); !ok {
		return net.ErrClosed
	}
	defer c.sk.release()
	wait := time.Until(time.Unix(0, c.readDL))
	if wait <= 0 {
		return os.ErrDeadlineExceeded
	}
	ch := make(chan struct{}, 1)
	c.mu.Lock()
	c.waiter = ch
	desc := c.desc
	c.mu.Unlock()
	if err := c.n.poller.Resume(desc); err != nil {
		c.dropWaiter(ch)
		return fmt.Errorf("server: socket finished: %w", net.ErrClosed)
	}
	err := awaitSignal(ch, wait)
	if err != nil {
		c.dropWaiter(ch)
	}
	return err
}

func (c *conn) dropWaiter(ch chan struct{}) {
	c.mu.Lock()
	if c.waiter == ch {
		c.waiter = nil
	}
	c.mu.Unlock()
}

// setReadDeadline bounds the reads that follow, on either kind of socket.
func (c *conn) setReadDeadline(t time.Time) {
	if c.sk != nil {
		c.readDL = t.UnixNano()
		return
	}
	_ = c.nc.SetReadDeadline(t)
}

// closeSocket closes whichever socket c holds. Any goroutine, any number of times.
func (c *conn) closeSocket() {
	c.mu.Lock()
	sk, nc := c.sk, c.nc
	c.mu.Unlock()
	switch {
	case sk != nil:
		sk.close()
	case nc != nil:
		_ = nc.Close()
	}
}

// readable reads every frame that is there, then re-arms the socket. A frame that has begun
// must complete within FrameTimeout (before hello: within the hello timeout).
func (c *conn) readable() {
	c.rmu.Lock()
	defer c.rmu.Unlock()
	br := readers.Get().(*bufio.Reader)
	br.Reset(c)
	deadline := time.Now().Add(c.n.cfg.FrameTimeout)
	if c.pid == nil {
		deadline = minTime(deadline, c.helloDue())
	}
	if c.out.Closing() {
		deadline = minTime(deadline, time.Now().Add(c.n.cfg.CloseGrace))
	}
	c.setReadDeadline(deadline)
	alive := true
	for alive {
		alive = c.readFrame(br)
		if br.Buffered() == 0 {
			break
		}
	}
	br.Reset(nil)
	readers.Put(br)
	if !alive {
		c.finish()
		return
	}
	c.mu.Lock()
	desc := c.desc
	c.mu.Unlock()
	if err := c.n.poller.Resume(desc); err != nil {
		c.finish()
	}
}

func minTime(a, b time.Time) time.Time {
	if a.Before(b) {
		return a
	}
	return b
}

// tick is the socket's clock: pings every PingInterval; for a polled socket also the hello
// timeout, the dead-peer drop and the end of the close grace (a reader goroutine gets those
// from its read deadlines).
func (c *conn) tick() {
	now := time.Now()
	c.mu.Lock()
	if c.finishing {
		c.mu.Unlock()
		return
	}
	at, ev := c.dueLocked()
	passed := ev != nothingDue && !now.Before(at)
	end := passed && (ev == graceOver || ev == peerSilent)
	helloLate := passed && ev == helloDue
	if now.UnixNano() >= c.nextPing {
		c.nextPing = now.Add(c.n.cfg.PingInterval).UnixNano()
		if !end {
			c.out.queuePing()
		}
	}
	if !end {
		c.armLocked()
	}
	c.mu.Unlock()
	switch {
	case end:
		c.finish()
	case helloLate:
		c.fail(&wire.Error{Code: wire.ErrHelloTimeout, Msg: "no hello within 10 s", Close: wire.ClosePolicy})
	}
}

// What a polled socket's clock waits for besides the next ping (dueLocked).
type clockEvent uint8

const (
	nothingDue clockEvent = iota // a reader goroutine has read deadlines instead
	graceOver                    // our close went out CloseGrace ago: end the socket
	helloDue                     // no hello within HelloTimeout: close with hello_timeout
	peerSilent                   // nothing heard for DeadAfter: a drop
)

// dueLocked is a polled socket's next deadline other than the ping, and what passing it means.
func (c *conn) dueLocked() (time.Time, clockEvent) {
	switch {
	case c.desc == nil:
		return time.Time{}, nothingDue
	case c.closedAt != 0:
		return time.Unix(0, c.closedAt).Add(c.n.cfg.CloseGrace), graceOver
	case c.pid == nil && !c.out.Closing():
		return c.helloDue(), helloDue
	case c.pid != nil:
		return time.Unix(0, c.lastHeard.Load()).Add(c.n.cfg.DeadAfter), peerSilent
	}
	return time.Time{}, nothingDue // hello refused or timed out: waiting for our close to go out
}

// armLocked sets the clock to the next thing it must check.
func (c *conn) armLocked() {
	next := time.Unix(0, c.nextPing)
	if at, ev := c.dueLocked(); ev != nothingDue {
		next = minTime(next, at)
	}
	c.clock.Reset(next) // a time already passed fires at once
}

// closeSent runs on the writer after our close frame: the client has CloseGrace to answer.
func (c *conn) closeSent() {
	c.mu.Lock()
	defer c.mu.Unlock()
	now := time.Now()
	c.closedAt = now.UnixNano()
	if c.desc == nil {
		if c.nc != nil { // nil: the socket could not be polled after its detach, and is done
			_ = c.nc.SetReadDeadline(now.Add(c.n.cfg.CloseGrace))
		}
		return
	}
	if !c.finishing {
		c.armLocked()
	}
}

// writeFailed runs on the writer after a failed write: the socket is gone.
func (c *conn) writeFailed() {
	c.mu.Lock()
	polled := c.desc != nil
	c.mu.Unlock()
	if polled {
		go c.finish() // not on this goroutine: finish waits for the writer to return
		return
	}
	c.closeSocket() // the reader sees the error and finishes
}

// heard records a frame from the client; after hello, silence for DeadAfter is a drop.
func (c *conn) heard(now time.Time) {
	c.lastHeard.Store(now.UnixNano())
	if c.pid == nil || c.out.Closing() {
		return
	}
	c.mu.Lock()
	defer c.mu.Unlock()
	if c.desc == nil && c.nc != nil && c.closedAt == 0 {
		_ = c.nc.SetReadDeadline(now.Add(c.n.cfg.DeadAfter))
	}
}

// finish ends the socket once: the actor is told (a drop unless it saw bye) and joined, the
// writer sends what it was asked to (error and close frames) and is joined, and the socket is
// closed.
func (c *conn) finish() {
	c.mu.Lock()
	if c.finishing {
		c.mu.Unlock()
		return
	}
	c.finishing = true
	c.clock.Stop()
	desc := c.desc
	c.mu.Unlock()
	if desc != nil {
		_ = c.n.poller.Remove(desc)
		// A reader waiting for the rest of a frame gets no event now: wake it, it fails to
		// re-arm and returns.
		c.wakeReader()
	}
	if c.pid != nil {
		c.n.system.Root.Send(c.pid, actors.SocketClosed{LastHeard: time.Unix(0, c.lastHeard.Load())})
		select {
		case <-c.actorDone.wait():
		case <-time.After(c.n.cfg.AuthTimeout):
			c.logger().Warn("connection actor did not stop in time; stopping it")
			_ = c.n.system.Root.StopFuture(c.pid).Wait()
		}
		c.n.follows.unregister(c.user, c.pid)
	}
	if c.out.Closing() {
		// Let the writer send the error and close frames it was asked for.
		select {
		case <-c.out.done.wait():
		case <-time.After(c.n.cfg.WriteTimeout):
		}
	}
	c.out.Stop()
	c.closeSocket()
	c.n.cfg.Metrics.ConnClosed(c.out.closeInfo())
	c.n.connDone(c)
}

// msgLen is how much of a fragmented message has arrived.
func (c *conn) msgLen() int {
	if c.msg == nil {
		return 0
	}
	return len(*c.msg)
}

// readFrame reads and handles one frame; false means the socket is done for reading.
func (c *conn) readFrame(br *bufio.Reader) bool {
	h, err := ws.ReadHeader(br)
	if err != nil {
		c.readFailed(br, err)
		return false
	}
	if !h.Masked {
		c.fail(&wire.Error{Code: wire.ErrBadFrame, Msg: "client frames must be masked", Close: wire.CloseProtocolError})
		return false
	}
	if h.Length > wire.MaxFrameBytes || int64(c.msgLen())+h.Length > wire.MaxFrameBytes {
		c.fail(&wire.Error{Code: wire.ErrTooBig, Msg: "frames are limited to 4096 bytes", Close: wire.CloseTooBig})
		c.discard(br)
		return false
	}
	bp := payloads.Get().(*[]byte)
	defer payloads.Put(bp)
	payload := (*bp)[:h.Length]
	if _, err := io.ReadFull(br, payload); err != nil {
		c.readFailed(br, err)
		return false
	}
	ws.Cipher(payload, h.Mask, 0)
	c.heard(time.Now())
	if c.out.Closing() {
		// Our close is queued: read on only to let the client's close arrive.
		return h.OpCode != ws.OpClose
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
		return false
	case ws.OpBinary:
		c.fail(&wire.Error{Code: wire.ErrBinary, Msg: "binary frames are not supported: send JSON text", Close: wire.CloseUnsupportedData})
	case ws.OpText, ws.OpContinuation:
		if h.OpCode == ws.OpContinuation && c.msg == nil {
			c.fail(&wire.Error{Code: wire.ErrBadFrame, Msg: "continuation frame without a message", Close: wire.CloseProtocolError})
			return true
		}
		if !h.Fin {
			if c.msg == nil {
				c.msg = new([]byte)
			}
			*c.msg = append(*c.msg, payload...)
			return true
		}
		if c.msg != nil {
			m := append(*c.msg, payload...)
			c.msg = nil
			c.onText(m)
			return true
		}
		c.onText(payload)
	default:
		c.fail(&wire.Error{Code: wire.ErrBadFrame, Msg: "unknown opcode", Close: wire.CloseProtocolError})
	}
	return true
}

// readFailed handles a read that ended in err: a read deadline before hello is the hello
// timeout; on a polled socket after hello, a deadline runs only while a frame is being read, so
// it means the frame trickled in (it holds a goroutine and buffers, hence FrameTimeout). Other
// errors (EOF, reset, our own close) end the socket as a drop.
func (c *conn) readFailed(br *bufio.Reader, err error) {
	var ne net.Error
	if !errors.As(err, &ne) || !ne.Timeout() || c.out.Closing() {
		return
	}
	switch {
	case c.pid == nil:
		c.fail(&wire.Error{Code: wire.ErrHelloTimeout, Msg: "no hello within 10 s", Close: wire.ClosePolicy})
		c.awaitClose(br)
	case c.sk != nil: // polled
		c.fail(&wire.Error{Code: wire.ErrFrameTimeout, Msg: "a frame must arrive whole within 10 s", Close: wire.ClosePolicy})
	}
}

// awaitClose waits (within the close grace) for the client's answer to our close, so it reads
// our close frame instead of a reset.
func (c *conn) awaitClose(br *bufio.Reader) {
	c.setReadDeadline(time.Now().Add(c.n.cfg.CloseGrace + c.n.cfg.WriteTimeout))
	for c.readFrame(br) {
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
	c.n.cfg.Metrics.FrameIn(f)
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
	if c.limiter.allow(&c.n.cfg, time.Now()) {
		return true
	}
	c.n.cfg.Metrics.RateLimited()
	if c.limiter.abusive(&c.n.cfg) {
		c.fail(&wire.Error{Code: wire.ErrRateLimited, Msg: "sustained flooding: closing", Close: wire.ClosePolicy})
	} else if c.limiter.shouldWarn() {
		c.n.cfg.Metrics.FrameOut("error")
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
			c.n.cfg.Metrics.Hello(h.Resume != "", wire.ErrUnauthorized)
			c.fail(&wire.Error{Code: wire.ErrUnauthorized, Msg: "token not accepted: get a new one", Close: wire.CloseUnauthorized})
		} else {
			c.logger().Warn("authentication failed", zap.Error(err))
			c.n.cfg.Metrics.Hello(h.Resume != "", wire.ErrInternal)
			c.fail(&wire.Error{Code: wire.ErrInternal, Msg: "could not check the token: try again", Close: wire.CloseInternal})
		}
		return
	}
	t, err := c.n.follows.get(ctx, id, h.Token)
	if err != nil {
		if errors.Is(err, auth.ErrUnauthorized) {
			c.n.cfg.Metrics.Hello(h.Resume != "", wire.ErrUnauthorized)
			c.fail(&wire.Error{Code: wire.ErrUnauthorized, Msg: "token not accepted: get a new one", Close: wire.CloseUnauthorized})
			return
		}
		c.logger().Warn("loading follow graph failed", zap.String("user", id.ID), zap.Error(err))
		c.n.cfg.Metrics.Hello(h.Resume != "", wire.ErrInternal)
		c.fail(&wire.Error{Code: wire.ErrInternal, Msg: "could not load whom you follow: try again", Close: wire.CloseInternal})
		return
	}
	c.limiter.start(&c.n.cfg)
	spec := actors.ConnSpec{User: id.ID, Login: id.Login, Following: actors.Follow(t.list, id.ID), GraphVersion: t.version,
		Window: h.Window, Resume: h.Resume, Socket: c.out} // not the token: only the follow-list refreshes keep it
	spec.HelloAt = c.lastHeard.Load() // when the hello frame was read (unix ns)
	spec.Stopped = c.actorDone.fire
	pid := actors.SpawnConn(c.n.deps, spec)
	c.mu.Lock()
	c.pid, c.user = pid, id.ID
	c.mu.Unlock()
	c.n.follows.register(id, h.Token, c.pid, t)
	c.heard(time.Now())
}

// logger names the user once known. The field is added per line, not kept: zap's With clones
// the encoder (a 1 KiB buffer), which would cost more than an idle connection.
func (c *conn) logger() *zap.Logger {
	if c.user == "" {
		return c.n.log
	}
	return c.n.log.With(zap.String("user", c.user), zap.String("conn", c.pid.GetId()))
}
