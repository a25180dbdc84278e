package server

import (
	"encoding/binary"
	"net"
	"sync"
	"time"

	"github.com/gobwas/ws"

	"github.com/presenced/presenced/actors"
	"github.com/presenced/presenced/wire"
)

var _ actors.Socket = (*outbox)(nil)

// outbox is one socket's bounded outbound queue. Anyone may queue (Write, Close, pong, ping)
// without blocking; whatever is queued when a write starts leaves in that one write.
//
// On a polled TCP socket (useFlusher) frames, pings and pongs are written by the node's
// flusher after the write delay, with a non-blocking write. A writer goroutine (run) exists
// only for a close and its error frame, and for what a full socket buffer could not take.
// Elsewhere (in-memory pipes, no epoll) the writer goroutine does every write, started after
// the write delay for text frames and at once for the rest. Either way an idle socket holds no
// goroutine and no write buffer.
type outbox struct {
	nc net.Conn // the socket until useFlusher (then nil: sk); guarded by mu
	// cfg is the node's: MaxQueueBytes, WriteTimeout, WriteDelay (text frames wait this long
	// for company before a writer starts) and Metrics (counts the bytes writers take; nil:
	// none). Read from there, not copied: four fields fewer per socket.
	cfg *Config

	// Set by useFlusher (polled TCP sockets): text frames, pings and pongs then go out through
	// the node's flusher with non-blocking writes on sk, and a writer goroutine runs only for
	// closes and what a full socket buffer could not take.
	sk    *sock
	shard *flushShard

	// owner is told, on the writer, once the close frame is out and the write side is shut
	// (closeSent), or once a write failed (writeFailed): at most once, and never both. An
	// interface holding the conn, not two method values: those are two allocations a socket.
	// nil: nobody is told.
	owner outboxOwner

	// mu guards what follows. The flags come first, together, so that they share one word
	// (224-byte size class, where scattered they took 256).
	mu       sync.Mutex
	ping     bool // a server ping is due
	writing  bool // a writer runs: a goroutine, or the flusher on this outbox
	listed   bool // on the flusher's dirty list
	waiting  bool // timer is armed to start the writer
	finished bool // the close frame was written, or a write failed: nothing more goes out
	stopped  bool // Stop was called

	frames  [][]byte
	pong    []byte // payload of a client ping to answer, nil when none
	closing *closeReq
	carry   []byte // encoded bytes a non-blocking write left over: written first
	// int32s side by side: one word, which keeps the outbox in the 208-byte class (the queue's
	// bound is at most maxQueueBytesLimit).
	bytes int32
	full  int32       // flusher writes that found the socket full (for tests)
	timer *time.Timer // made on the first delayed write, then reused
	done  signal      // fired when finished
	wg    sync.WaitGroup
}

// outboxOwner is what an outbox tells how its socket's writes ended (the conn).
type outboxOwner interface {
	closeSent()
	writeFailed()
}

type closeReq struct {
	close     int
	code, msg string
}

func newOutbox(nc net.Conn, cfg *Config) *outbox {
	return &outbox{nc: nc, cfg: cfg}
}

func (o *outbox) afterError() {
	if o.owner != nil {
		o.owner.writeFailed()
	}
}

func (o *outbox) afterClose() {
	if o.owner != nil {
		o.owner.closeSent()
	}
}

// soonLocked starts the writer after the write delay, so that frames queued meanwhile (other
// users' flushes reaching the same follower) leave in the same write. One loopback write costs
// about as much as handling several frames, so batching is the main lever on fan-out throughput.
func (o *outbox) soonLocked() {
	if o.shard != nil {
		if !o.listed && !o.writing && !o.finished && !o.stopped {
			o.listed = true
			o.shard.add(o)
		}
		return
	}
	delay := max(o.cfg.WriteDelay, 0)
	if delay == 0 {
		o.kickLocked()
		return
	}
	if o.waiting || o.writing || o.finished || o.stopped {
		return // a writer runs or will run: it takes this frame too
	}
	o.waiting = true
	if o.timer == nil {
		o.timer = time.AfterFunc(delay, o.delayed)
		return
	}
	o.timer.Reset(delay)
}

// delayed runs on the timer's goroutine when the write delay is over.
func (o *outbox) delayed() {
	o.mu.Lock()
	defer o.mu.Unlock()
	o.waiting = false
	o.kickLocked()
}

// useFlusher routes this socket's frames through shard, writing on sk from now on (the
// net.Conn is let go). Frames queued before (only a close can be) are written by the writer
// goroutine, on whichever socket it finds.
func (o *outbox) useFlusher(shard *flushShard, sk *sock) {
	o.mu.Lock()
	defer o.mu.Unlock()
	o.shard, o.sk, o.nc = shard, sk, nil
}

// flushFast runs on the flusher: it writes what is queued with one non-blocking write, using
// and returning buf. Closes go to the writer goroutine; bytes the socket could not take now go
// to it too (carry), and it waits for the socket like any writer.
func (o *outbox) flushFast(buf []byte) []byte {
	o.mu.Lock()
	o.listed = false
	if o.writing || o.finished || o.stopped {
		o.mu.Unlock()
		return buf
	}
	if o.closing != nil || len(o.carry) > 0 {
		o.kickLocked()
		o.mu.Unlock()
		return buf
	}
	buf = appendBatch(buf[:0], o.pong, o.ping, o.frames, nil)
	clear(o.frames)
	o.cfg.Metrics.BytesOut(int(o.bytes))
	if len(o.frames) > 0 {
		o.frames = o.frames[:0] // a busy socket keeps its array: the next frame allocates nothing
	} else {
		// A batch without text frames (a ping or a pong) lets the array go: an idle socket's
		// writes are its pings, so from its first one it holds none (48 bytes a socket, the
		// sync's), and a busy one makes one again at most once per ping interval.
		o.frames = nil
	}
	o.bytes, o.pong, o.ping = 0, nil, false
	if len(buf) == 0 {
		o.mu.Unlock()
		return buf
	}
	o.writing = true
	o.wg.Add(1)
	o.mu.Unlock()

	n, err := o.sk.write(buf)

	o.mu.Lock()
	o.writing = false
	if err != nil {
		o.finished = true
		o.done.fire()
		o.mu.Unlock()
		o.wg.Done()
		o.afterError()
		return buf
	}
	switch {
	case n < len(buf):
		o.carry = append([]byte(nil), buf[n:]...) // the socket is full: a writer waits for it
		o.full++
		o.kickLocked()
	case o.closing != nil:
		o.kickLocked() // asked for while we wrote
	case len(o.frames) > 0 || o.pong != nil || o.ping:
		o.soonLocked() // queued while we wrote
	}
	o.mu.Unlock()
	o.wg.Done()
	return buf
}

// batches are the writer goroutines' buffers, pooled: a socket holds one only while its writer
// runs.
var batches = sync.Pool{New: func() any { b := make([]byte, 0, 4096); return &b }}

// kickLocked starts the writer if there is work and none runs.
func (o *outbox) kickLocked() {
	if o.writing || o.finished || o.stopped {
		return
	}
	if len(o.frames) == 0 && o.pong == nil && !o.ping && o.closing == nil && len(o.carry) == 0 {
		return
	}
	o.writing = true
	o.wg.Add(1)
	go o.run()
}

// Write queues a text frame. Past maxBytes queued the socket is closed as a slow consumer
// (4008): it resumes like any drop, and no one else waits for it.
func (o *outbox) Write(frame []byte) {
	o.mu.Lock()
	defer o.mu.Unlock()
	if o.closing != nil {
		return
	}
	if int(o.bytes)+len(frame) > o.cfg.MaxQueueBytes {
		o.closing = &closeReq{wire.CloseSlowConsumer, wire.ErrSlowConsumer, "outbound queue overflowed: read faster, then resume"}
	} else {
		o.frames = append(o.frames, frame)
		o.bytes += int32(len(frame))
		o.soonLocked()
		return
	}
	o.kickLocked()
}

// Close queues an error frame (when code != "") and a close frame after what is queued. The
// first close wins.
func (o *outbox) Close(closeCode int, code, msg string) {
	o.mu.Lock()
	defer o.mu.Unlock()
	if o.closing == nil {
		o.closing = &closeReq{closeCode, code, msg}
	}
	o.kickLocked()
}

// closeInfo is the close this socket's outbox was asked for (the first one wins), in the form
// Metrics.ConnClosed takes: sent is false when none was (the peer went away, a write failed,
// or the peer was silent past DeadAfter). The socket's finish reports it once.
func (o *outbox) closeInfo() (closeCode int, errCode string, sent bool) {
	o.mu.Lock()
	defer o.mu.Unlock()
	if o.closing == nil {
		return 0, "", false
	}
	return o.closing.close, o.closing.code, true
}

// Closing reports whether a close is queued: the reader ignores frames from then on.
func (o *outbox) Closing() bool {
	o.mu.Lock()
	defer o.mu.Unlock()
	return o.closing != nil
}

// queuePong answers a client's ping control frame.
func (o *outbox) queuePong(payload []byte) {
	o.mu.Lock()
	defer o.mu.Unlock()
	o.pong = append(o.pong[:0], payload...)
	o.controlLocked()
}

// queuePing sends a server ping (dead-peer detection).
func (o *outbox) queuePing() {
	o.mu.Lock()
	defer o.mu.Unlock()
	o.ping = true
	o.controlLocked()
}

// controlLocked gets a ping or pong written: by the flusher with whatever else is due (no
// goroutine per ping), or at once by the writer goroutine.
func (o *outbox) controlLocked() {
	if o.shard != nil {
		o.soonLocked()
		return
	}
	o.kickLocked()
}

// Stop makes the writer write nothing more and waits for it.
func (o *outbox) Stop() {
	o.mu.Lock()
	o.stopped = true
	if o.timer != nil {
		o.timer.Stop()
	}
	o.mu.Unlock()
	o.wg.Wait()
}

// run is the writer goroutine: it writes to nc while no flusher write is in flight (writing
// is held for one or the other). It returns when nothing is queued, after writing a close
// frame, on a write error, or on Stop.
func (o *outbox) run() {
	defer o.wg.Done()
	bp := batches.Get().(*[]byte)
	defer batches.Put(bp)
	var frames [][]byte
	for {
		o.mu.Lock()
		if o.stopped || (len(o.frames) == 0 && o.pong == nil && !o.ping && o.closing == nil && len(o.carry) == 0) {
			o.writing = false
			o.mu.Unlock()
			return
		}
		frames, o.frames = o.frames, frames[:0]
		o.cfg.Metrics.BytesOut(int(o.bytes))
		o.bytes = 0
		pong, ping, cl, carry := o.pong, o.ping, o.closing, o.carry
		o.pong, o.ping, o.carry = nil, false, nil
		nc, sk, shard := o.nc, o.sk, o.shard
		o.mu.Unlock()

		// The rest of a frame the flusher began goes first.
		*bp = appendBatch(append((*bp)[:0], carry...), pong, ping, frames, cl)
		clear(frames)
		var err error
		if sk != nil {
			err = shard.writeAll(sk, *bp, time.Now().Add(o.cfg.WriteTimeout))
		} else {
			_ = nc.SetWriteDeadline(time.Now().Add(o.cfg.WriteTimeout))
			_, err = nc.Write(*bp)
		}
		if err != nil || cl != nil {
			o.mu.Lock()
			o.finished, o.writing = true, false
			o.done.fire()
			o.mu.Unlock()
			if err != nil {
				o.afterError()
				return
			}
			// Half-close so the client reads our close frame instead of a reset.
			if sk != nil {
				sk.closeWrite()
			} else if tc, ok := nc.(interface{ CloseWrite() error }); ok {
				_ = tc.CloseWrite()
			}
			o.afterClose()
			return
		}
	}
}

// appendBatch encodes, in the order they go out, what one write sends: the pong, a ping, the
// text frames, and the close with its error frame before it, if one is asked for.
func appendBatch(b, pong []byte, ping bool, frames [][]byte, cl *closeReq) []byte {
	if pong != nil {
		b = appendFrame(b, ws.OpPong, pong)
	}
	if ping {
		b = appendFrame(b, ws.OpPing, nil)
	}
	for _, f := range frames {
		b = appendFrame(b, ws.OpText, f)
	}
	if cl == nil {
		return b
	}
	if cl.code != "" {
		b = appendFrame(b, ws.OpText, wire.Encode(wire.ErrorFrame{Code: cl.code, Msg: cl.msg}))
	}
	body := binary.BigEndian.AppendUint16(make([]byte, 0, 2+len(cl.code)), uint16(cl.close))
	return appendFrame(b, ws.OpClose, append(body, cl.code...))
}

// appendFrame appends one unmasked server frame to b (RFC 6455 §5.2: FIN and the opcode, then
// the length in 7, 7+16 or 7+64 bits). It is gobwas's header encoding (TestAppendFrame checks
// they agree) without its io.Writer, through which the header escapes: two allocations a frame
// on the flusher's path.
func appendFrame(b []byte, op ws.OpCode, payload []byte) []byte {
	switch l := len(payload); {
	case l < 126:
		b = append(b, 0x80|byte(op), byte(l))
	case l < 1<<16:
		b = append(b, 0x80|byte(op), 126)
		b = binary.BigEndian.AppendUint16(b, uint16(l))
	default:
		b = append(b, 0x80|byte(op), 127)
		b = binary.BigEndian.AppendUint64(b, uint64(l))
	}
	return append(b, payload...)
}
