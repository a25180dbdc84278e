package main

import (
	"bufio"
	"bytes"
	"context"
	"errors"
	"fmt"
	"io"
	"net"
	"sync"
	"sync/atomic"
	"time"

	"github.com/gobwas/ws"
	"github.com/gobwas/ws/wsutil"
)

// session is one WebSocket of a client (a client gets a new session when it reconnects in the
// storm). Its reader runs in one goroutine with a bufio.Reader of --read-buffer bytes and a reused
// payload buffer: the load generator shares the cores with the server, so reading must cost as
// little as possible.
type session struct {
	c  *client
	nc net.Conn
	br *bufio.Reader

	wmu  sync.Mutex // one writer at a time: the status sender and the reader's pongs; guards:
	wbuf bytes.Buffer
	whdr [ws.MaxHeaderSize]byte // ws.WriteHeaderBuffer scratch

	hdr     []byte // ws.ReadHeaderBuffer scratch
	buf     []byte // payload of the frame being read
	msg     []byte // a fragmented message being assembled (rare: presenced never fragments)
	dropped atomic.Bool

	dialAt, helloAt time.Time
	state           uint8  // awaitWelcome → awaitSync → ready
	resumed         bool   // the welcome said resumed:true
	refusal         string // the error frame that refused the hello
	helloCB         func(err error, resumed bool)
}

const (
	awaitWelcome = iota
	awaitSync
	ready
)

// fastBuf is the payload buffer outside --check: u, o and x frames are well under it; larger
// frames (sync, long errors) only need their first bytes, the rest is discarded unread.
const fastBuf = 512

// dial opens the TCP connection from the client's source address and upgrades it.
func (sh *shard) dial(ctx context.Context, c *client) (*session, error) {
	t0 := time.Now()
	d := ws.Dialer{
		Timeout: sh.cfg.HelloTimeout,
		NetDial: func(ctx context.Context, network, addr string) (net.Conn, error) {
			nd := net.Dialer{LocalAddr: sh.source(c.idx)}
			return nd.DialContext(ctx, network, addr)
		},
	}
	nc, br, _, err := d.Dial(ctx, sh.cfg.URL)
	if err != nil {
		return nil, fmt.Errorf("dial %s: %w", sh.cfg.URL, err)
	}
	var src io.Reader = nc
	if br != nil {
		// Bytes that arrived with the handshake response: read them first.
		pre := make([]byte, br.Buffered())
		_, _ = io.ReadFull(br, pre)
		ws.PutReader(br)
		src = io.MultiReader(bytes.NewReader(pre), nc)
	}
	size := fastBuf
	if sh.cfg.Check {
		size = 4096
	}
	s := &session{c: c, nc: nc, br: bufio.NewReaderSize(src, sh.cfg.ReadBuffer),
		hdr: make([]byte, ws.MaxHeaderSize), buf: make([]byte, size), dialAt: t0}
	return s, nil
}

// write sends one masked client frame in a single Write, reusing the session's buffer (no
// allocation per frame). A deadline keeps a server that stopped reading from stalling the status
// sender, which serves every client of the process.
func (s *session) write(op ws.OpCode, payload []byte) error {
	s.wmu.Lock()
	defer s.wmu.Unlock()
	h := ws.Header{Fin: true, OpCode: op, Masked: true, Mask: ws.NewMask(), Length: int64(len(payload))}
	s.wbuf.Reset()
	if err := ws.WriteHeaderBuffer(&s.wbuf, h, s.whdr[:]); err != nil {
		return fmt.Errorf("write: %w", err)
	}
	start := s.wbuf.Len()
	s.wbuf.Write(payload)
	b := s.wbuf.Bytes()
	ws.Cipher(b[start:], h.Mask, 0)
	if err := s.nc.SetWriteDeadline(time.Now().Add(5 * time.Second)); err != nil {
		return fmt.Errorf("write: %w", err)
	}
	if _, err := s.nc.Write(b); err != nil {
		return fmt.Errorf("write: %w", err)
	}
	return nil
}

// drop closes the TCP connection without a close frame (a network failure, as far as the server
// can tell) and marks it so the reader does not count the end as an unexpected close.
func (s *session) drop() {
	s.dropped.Store(true)
	_ = s.nc.Close()
}

// readLoop reads frames until the connection ends and returns why.
func (s *session) readLoop(sh *shard) error {
	for {
		h, err := ws.ReadHeaderBuffer(s.br, s.hdr)
		if err != nil {
			return err
		}
		if h.Length < 0 || h.Length > 16<<20 {
			return fmt.Errorf("frame of %d bytes", h.Length)
		}
		n := int(h.Length)
		if h.OpCode.IsControl() {
			if err := s.control(sh, h, n); err != nil {
				return err
			}
			continue
		}
		if h.OpCode == ws.OpBinary {
			sh.stats.binary.Add(1)
		}
		keep := n
		if !sh.cfg.Check && h.Fin && s.msg == nil {
			keep = min(n, len(s.buf)) // the fast path needs only the start of big frames
		} else if n > len(s.buf) {
			s.buf = make([]byte, n)
		}
		p := s.buf[:keep]
		if _, err := io.ReadFull(s.br, p); err != nil {
			return err
		}
		if keep < n {
			if _, err := s.br.Discard(n - keep); err != nil {
				return err
			}
		}
		if h.Masked {
			ws.Cipher(p, h.Mask, 0)
		}
		now := time.Now()
		if !h.Fin || s.msg != nil {
			s.msg = append(s.msg, p...)
			if !h.Fin {
				continue
			}
			p, s.msg = s.msg, nil
		}
		if h.OpCode == ws.OpText || h.OpCode == ws.OpContinuation {
			sh.onText(s, p, now)
		}
	}
}

// control answers a ping with a masked pong (the server drops peers silent for 45 s) and turns
// a close frame into wsutil.ClosedError (what client.Conn's handler returns too) after echoing
// its code. It is not wsutil.ControlHandler: that one needs a frame-limited reader (an allocation
// per frame) and returns the echo's write error instead of the server's close code.
func (s *session) control(sh *shard, h ws.Header, n int) error {
	var small [125]byte
	if n > len(small) {
		return fmt.Errorf("control frame of %d bytes", n)
	}
	p := small[:n]
	if _, err := io.ReadFull(s.br, p); err != nil {
		return err
	}
	if h.Masked {
		ws.Cipher(p, h.Mask, 0)
	}
	switch h.OpCode {
	case ws.OpPing:
		sh.stats.pings.Add(1)
		if err := s.write(ws.OpPong, p); err != nil && !s.dropped.Load() {
			return err
		}
	case ws.OpClose:
		ce := wsutil.ClosedError{Code: ws.StatusNoStatusRcvd}
		if n >= 2 {
			ce.Code, ce.Reason = ws.ParseCloseFrameData(p)
		}
		_ = s.write(ws.OpClose, p[:min(n, 2)])
		_ = s.nc.Close()
		return ce
	}
	return nil
}

// endReason names how a connection ended, for the unexpected-close table.
func endReason(err error) string {
	var ce wsutil.ClosedError
	var ne net.Error
	switch {
	case errors.As(err, &ce):
		return fmt.Sprintf("close %d", ce.Code)
	case errors.Is(err, io.EOF), errors.Is(err, io.ErrUnexpectedEOF):
		return "eof"
	case errors.As(err, &ne) && ne.Timeout():
		return "timeout"
	case errors.Is(err, net.ErrClosed):
		return "closed"
	}
	return "error"
}
