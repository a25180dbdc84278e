package server

import (
	"bufio"
	"encoding/binary"
	"net"
	"sync"
	"syscall"
	"time"

	"github.com/gobwas/ws"

	"github.com/presenced/presenced/actors"
	"github.com/presenced/presenced/metrics"
	"github.com/presenced/presenced/wire"
)

var _ actors.Socket = (*outbox)(nil)

// outbox is one socket's bounded outbound queue. Anyone may queue (Write, Close, pong, ping)
// without blocking. A writer goroutine exists only while something is queued: it takes
// everything queued, writes it with one flush (frames that arrive together leave in one
// syscall), and exits when the queue is empty, so an idle socket costs no goroutine and no
// write buffer (buffers come from a pool while writing). A text frame queued on an idle outbox
// starts the writer only after the write delay (Config.WriteDelay), so frames that come close
// together share one write; control frames and closes start it at once.
type outbox struct {
	nc       net.Conn
	maxBytes int
	wtimeout time.Duration
	delay    time.Duration    // text frames wait this long for company before a writer starts
	metrics  *metrics.Metrics // counts the bytes writers take; nil: none (set by newConn)

	// Set by useFlusher before the first frame (polled TCP sockets): text frames then go out
	// through the node's flusher with non-blocking writes on rc, and a writer goroutine runs
	// only for control frames, closes and what a full socket buffer could not take.
	rc    syscall.RawConn
	shard *flushShard

	// afterClose runs on the writer once the close frame is out and the write side is shut;
	// afterError once a write failed. Both run at most once, and never both.
	afterClose func()
	afterError func()

	mu       sync.Mutex
	frames   [][]byte
	bytes    int
	pong     []byte // payload of a client ping to answer, nil when none
	ping     bool   // a server ping is due
	closing  *closeReq
	writing  bool          // a writer runs: a goroutine, or the flusher on this outbox
	listed   bool          // on the flusher's dirty list
	carry    []byte        // encoded bytes a non-blocking write left over: written first
	waiting  bool          // timer is armed to start the writer
	timer    *time.Timer   // made on the first delayed write, then reused
	finished bool          // the close frame was written, or a write failed: nothing more goes out
	stopped  bool          // Stop was called
	done     chan struct{} // closed when finished
	wg       sync.WaitGroup
}

type closeReq struct {
	close     int
	code, msg string
}

func newOutbox(nc net.Conn, cfg *Config) *outbox {
	return &outbox{nc: nc, maxBytes: cfg.MaxQueueBytes, wtimeout: cfg.WriteTimeout, delay: max(cfg.WriteDelay, 0),
		done: make(chan struct{}), afterClose: func() {}, afterError: func() {}}
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
	if o.delay == 0 {
		o.kickLocked()
		return
	}
	if o.waiting || o.writing || o.finished || o.stopped {
		return // a writer runs or will run: it takes this frame too
	}
	o.waiting = true
	if o.timer == nil {
		o.timer = time.AfterFunc(o.delay, o.delayed)
		return
	}
	o.timer.Reset(o.delay)
}

// delayed runs on the timer's goroutine when the write delay is over.
func (o *outbox) delayed() {
	o.mu.Lock()
	defer o.mu.Unlock()
	o.waiting = false
	o.kickLocked()
}

// useFlusher routes this socket's text frames through shard, writing on rc. Call it before
// anything is queued.
func (o *outbox) useFlusher(shard *flushShard, rc syscall.RawConn) {
	o.mu.Lock()
	defer o.mu.Unlock()
	o.shard, o.rc = shard, rc
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
	buf = buf[:0]
	if o.pong != nil {
		buf = appendFrame(buf, ws.OpPong, o.pong)
	}
	if o.ping {
		buf = appendFrame(buf, ws.OpPing, nil)
	}
	for _, f := range o.frames {
		buf = appendFrame(buf, ws.OpText, f)
	}
	clear(o.frames)
	o.metrics.BytesOut(o.bytes)
	o.frames, o.bytes, o.pong, o.ping = o.frames[:0], 0, nil, false
	if len(buf) == 0 {
		o.mu.Unlock()
		return buf
	}
	o.writing = true
	o.wg.Add(1)
	o.mu.Unlock()

	n, err := rawWrite(o.rc, buf)

	o.mu.Lock()
	o.writing = false
	if err != nil {
		o.finished = true
		close(o.done)
		o.mu.Unlock()
		o.wg.Done()
		o.afterError()
		return buf
	}
	if n < len(buf) {
		o.carry = append([]byte(nil), buf[n:]...) // the socket is full: a writer waits for it
		o.kickLocked()
	} else if len(o.frames) > 0 || o.pong != nil || o.ping || o.closing != nil {
		o.soonLocked() // queued while we wrote
		if o.closing != nil {
			o.kickLocked()
		}
	}
	o.mu.Unlock()
	o.wg.Done()
	return buf
}

// writers are pooled: a socket holds one only while its writer runs.
var writers = sync.Pool{New: func() any { return bufio.NewWriterSize(nil, 4096) }}

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
	if o.bytes+len(frame) > o.maxBytes {
		o.closing = &closeReq{wire.CloseSlowConsumer, wire.ErrSlowConsumer, "outbound queue overflowed: read faster, then resume"}
	} else {
		o.frames = append(o.frames, frame)
		o.bytes += len(frame)
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
	o.kickLocked()
}

// queuePing sends a server ping (dead-peer detection).
func (o *outbox) queuePing() {
	o.mu.Lock()
	defer o.mu.Unlock()
	o.ping = true
	if o.shard != nil {
		o.soonLocked() // the flusher writes it with whatever else is due: no goroutine per ping
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

// run is the writer: the only goroutine that writes to nc. It returns when nothing is queued,
// after writing a close frame, on a write error, or on Stop.
func (o *outbox) run() {
	defer o.wg.Done()
	bw := writers.Get().(*bufio.Writer)
	bw.Reset(o.nc)
	defer func() {
		bw.Reset(nil)
		writers.Put(bw)
	}()
	var batch [][]byte
	for {
		o.mu.Lock()
		if o.stopped || (len(o.frames) == 0 && o.pong == nil && !o.ping && o.closing == nil && len(o.carry) == 0) {
			o.writing = false
			o.mu.Unlock()
			return
		}
		batch, o.frames = o.frames, batch[:0]
		o.metrics.BytesOut(o.bytes)
		o.bytes = 0
		pong, ping, cl, carry := o.pong, o.ping, o.closing, o.carry
		o.pong, o.ping, o.carry = nil, false, nil
		o.mu.Unlock()

		_ = o.nc.SetWriteDeadline(time.Now().Add(o.wtimeout))
		var err error
		if len(carry) > 0 {
			_, err = bw.Write(carry) // the rest of a frame the flusher began: before anything else
		}
		if err == nil {
			err = writeFrames(bw, batch, pong, ping, cl)
		}
		clear(batch)
		if err == nil {
			err = bw.Flush()
		}
		if err != nil || cl != nil {
			o.mu.Lock()
			o.finished, o.writing = true, false
			close(o.done)
			o.mu.Unlock()
			if err != nil {
				o.afterError()
				return
			}
			// Half-close so the client reads our close frame instead of a reset.
			if tc, ok := o.nc.(interface{ CloseWrite() error }); ok {
				_ = tc.CloseWrite()
			}
			o.afterClose()
			return
		}
	}
}

func writeFrames(bw *bufio.Writer, batch [][]byte, pong []byte, ping bool, cl *closeReq) error {
	if pong != nil {
		if err := writeFrame(bw, ws.OpPong, pong); err != nil {
			return err
		}
	}
	if ping {
		if err := writeFrame(bw, ws.OpPing, nil); err != nil {
			return err
		}
	}
	for _, f := range batch {
		if err := writeFrame(bw, ws.OpText, f); err != nil {
			return err
		}
	}
	if cl == nil {
		return nil
	}
	if cl.code != "" {
		if err := writeFrame(bw, ws.OpText, wire.Encode(wire.ErrorFrame{Code: cl.code, Msg: cl.msg})); err != nil {
			return err
		}
	}
	body := make([]byte, 2, 2+len(cl.code))
	binary.BigEndian.PutUint16(body, uint16(cl.close))
	body = append(body, cl.code...)
	return writeFrame(bw, ws.OpClose, body)
}

func writeFrame(bw *bufio.Writer, op ws.OpCode, payload []byte) error {
	if err := ws.WriteHeader(bw, ws.Header{Fin: true, OpCode: op, Length: int64(len(payload))}); err != nil {
		return err
	}
	_, err := bw.Write(payload)
	return err
}
