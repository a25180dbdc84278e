package server

import (
	"bufio"
	"encoding/binary"
	"net"
	"sync"
	"time"

	"github.com/gobwas/ws"

	"github.com/presenced/presenced/actors"
	"github.com/presenced/presenced/wire"
)

var _ actors.Socket = (*outbox)(nil)

// outbox is one socket's bounded outbound queue and its writer goroutine. Anyone may queue
// (Write, Close, pong) without blocking; the writer drains everything queued in one go and
// writes it with one flush, so frames that arrive together leave in one syscall.
type outbox struct {
	nc       net.Conn
	maxBytes int
	wtimeout time.Duration
	grace    time.Duration
	ping     time.Duration

	mu      sync.Mutex
	frames  [][]byte
	bytes   int
	pong    []byte // payload of a client ping to answer, nil when none
	closing *closeReq
	wake    chan struct{} // cap 1: "something queued"
	done    chan struct{} // closed when the writer has returned
	stop    chan struct{} // closed to make the writer return now
	stopped bool
}

type closeReq struct {
	close     int
	code, msg string
}

func newOutbox(nc net.Conn, cfg *Config) *outbox {
	return &outbox{nc: nc, maxBytes: cfg.MaxQueueBytes, wtimeout: cfg.WriteTimeout, grace: cfg.CloseGrace,
		ping: cfg.PingInterval, wake: make(chan struct{}, 1), done: make(chan struct{}), stop: make(chan struct{})}
}

func (o *outbox) signal() {
	select {
	case o.wake <- struct{}{}:
	default:
	}
}

// Write queues a text frame. Past maxBytes queued the socket is closed as a slow consumer
// (4008): it resumes like any drop, and no one else waits for it.
func (o *outbox) Write(frame []byte) {
	o.mu.Lock()
	if o.closing != nil {
		o.mu.Unlock()
		return
	}
	if o.bytes+len(frame) > o.maxBytes {
		o.closing = &closeReq{wire.CloseSlowConsumer, wire.ErrSlowConsumer, "outbound queue overflowed: read faster, then resume"}
	} else {
		o.frames = append(o.frames, frame)
		o.bytes += len(frame)
	}
	o.mu.Unlock()
	o.signal()
}

// Close queues an error frame (when code != "") and a close frame after what is queued. The
// first close wins.
func (o *outbox) Close(closeCode int, code, msg string) {
	o.mu.Lock()
	if o.closing == nil {
		o.closing = &closeReq{closeCode, code, msg}
	}
	o.mu.Unlock()
	o.signal()
}

// Closing reports whether a close is queued: the reader ignores frames from then on.
func (o *outbox) Closing() bool {
	o.mu.Lock()
	defer o.mu.Unlock()
	return o.closing != nil
}

// extendRead moves the read deadline to t unless a close is under way (then the writer owns
// the deadline: CloseGrace after the close frame).
func (o *outbox) extendRead(t time.Time) {
	o.mu.Lock()
	if o.closing == nil {
		_ = o.nc.SetReadDeadline(t)
	}
	o.mu.Unlock()
}

// queuePong answers a client's ping control frame.
func (o *outbox) queuePong(payload []byte) {
	o.mu.Lock()
	o.pong = append(o.pong[:0], payload...)
	o.mu.Unlock()
	o.signal()
}

// Stop makes the writer return without writing more; it waits for it.
func (o *outbox) Stop() {
	o.mu.Lock()
	if !o.stopped {
		o.stopped = true
		close(o.stop)
	}
	o.mu.Unlock()
	<-o.done
}

// run is the writer goroutine: the only one that writes to nc. It returns after writing a close
// frame, on a write error, or on Stop.
func (o *outbox) run() {
	defer close(o.done)
	bw := bufio.NewWriterSize(o.nc, 4096)
	tick := time.NewTicker(o.ping)
	defer tick.Stop()
	var batch [][]byte
	for {
		ping := false
		select {
		case <-o.stop:
			return
		case <-o.wake:
		case <-tick.C:
			ping = true
		}
		o.mu.Lock()
		batch, o.frames = o.frames, batch[:0]
		o.bytes = 0
		pong := o.pong
		o.pong = nil
		cl := o.closing
		o.mu.Unlock()

		_ = o.nc.SetWriteDeadline(time.Now().Add(o.wtimeout))
		err := writeFrames(bw, batch, pong, ping, cl)
		clear(batch)
		if err == nil {
			err = bw.Flush()
		}
		if err != nil {
			_ = o.nc.Close() // the reader sees the error and cleans up
			return
		}
		if cl != nil {
			// Half-close so the client reads our close frame instead of a reset, and give it
			// CloseGrace to answer before the reader gives up.
			if tc, ok := o.nc.(interface{ CloseWrite() error }); ok {
				_ = tc.CloseWrite()
			}
			o.mu.Lock()
			_ = o.nc.SetReadDeadline(time.Now().Add(o.grace))
			o.mu.Unlock()
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
