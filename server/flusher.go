package server

import (
	"errors"
	"fmt"
	"net"
	"os"
	"sync"
	"sync/atomic"
	"time"

	"github.com/presenced/presenced/server/poll"
)

// flusher writes the text frames of polled sockets without a goroutine per write. It has one
// shard per core; each socket belongs to one shard. A socket that gets a frame while idle joins
// its shard's dirty list; the shard waits the write delay (so frames for one socket that arrive
// close together share a write), then writes every dirty socket in turn with one non-blocking
// write(2) each, from one long-lived goroutine with a reused buffer. Sockets listed during a
// round are written right after it, without another delay: they have waited the round.
//
// A socket whose kernel buffer is full is never waited for here: what did not fit is handed to
// the socket's own writer goroutine (outbox.run), which waits with the write timeout and the
// slow-consumer bound like any other write. Control frames and closes always take that path.
type flusher struct {
	shards []*flushShard
	next   atomic.Uint32 // round robin for new sockets
	wg     sync.WaitGroup
}

type flushShard struct {
	delay time.Duration
	wp    *poll.Poller // waits for full sockets to take more (nil: they cannot wait)

	mu    sync.Mutex
	dirty []*outbox // sockets with frames waiting for this shard's next round
	spare []*outbox

	wake chan struct{} // cap 1: the dirty list went from empty to not empty
	done chan struct{} // closed by close: the shard returns
	buf  []byte        // owned by the shard goroutine

	wrote func(*outbox) // tests only: runs on the shard goroutine after each socket's write
}

// newFlusher starts shards goroutines; close stops them. Writers wait for full sockets on wp.
func newFlusher(shards int, delay time.Duration, wp *poll.Poller) *flusher {
	f := &flusher{}
	for range max(shards, 1) {
		s := &flushShard{delay: delay, wp: wp, wake: make(chan struct{}, 1), done: make(chan struct{})}
		f.shards = append(f.shards, s)
		f.wg.Add(1)
		go func() {
			defer f.wg.Done()
			s.run()
		}()
	}
	return f
}

// shard picks the shard of a new socket.
func (f *flusher) shard() *flushShard {
	return f.shards[int(f.next.Add(1))%len(f.shards)]
}

// close stops the shards once every socket is finished (frames still listed are dropped: their
// sockets are closed) and waits for them.
func (f *flusher) close() {
	for _, s := range f.shards {
		close(s.done)
	}
	f.wg.Wait()
}

// add lists o for the next round. The caller holds o.mu (lock order: outbox, then shard).
func (s *flushShard) add(o *outbox) {
	s.mu.Lock()
	s.dirty = append(s.dirty, o)
	first := len(s.dirty) == 1
	s.mu.Unlock()
	if first {
		select {
		case s.wake <- struct{}{}:
		default:
		}
	}
}

func (s *flushShard) run() {
	t := time.NewTimer(time.Hour)
	t.Stop()
	for {
		select {
		case <-s.done:
			return
		case <-s.wake:
		}
		if s.delay > 0 {
			t.Reset(s.delay)
			select {
			case <-s.done:
				t.Stop()
				return
			case <-t.C:
			}
		}
		// Sockets listed while a round wrote have waited as long as the round took: they are
		// written next, with no delay of their own. Under load the rounds batch by themselves.
		for s.round() {
			select {
			case <-s.done:
				return
			case <-s.wake: // the token of the list about to be written
			default:
			}
		}
	}
}

// round writes every listed socket and reports whether more were listed meanwhile.
func (s *flushShard) round() (more bool) {
	s.mu.Lock()
	list := s.dirty
	s.dirty, s.spare = s.spare[:0], nil
	s.mu.Unlock()
	for _, o := range list {
		s.buf = o.flushFast(s.buf)
		if s.wrote != nil {
			s.wrote(o)
		}
	}
	clear(list) // let go of the outboxes
	s.mu.Lock()
	s.spare = list[:0] // only this goroutine touches spare
	more = len(s.dirty) > 0
	s.mu.Unlock()
	return more
}

// writeAll writes b to sk by WriteTimeout's deadline: what the socket does not take at once
// waits for room through the node's write poller (one registration per wait: only a full
// socket waits). It holds the descriptor while it waits, so a close shuts the socket down,
// which ends the wait, instead of closing the number under the poller.
func (s *flushShard) writeAll(sk *sock, b []byte, deadline time.Time) error {
	for {
		n, err := sk.write(b)
		if err != nil {
			return err
		}
		if b = b[n:]; len(b) == 0 {
			return nil
		}
		if err := s.awaitWritable(sk, deadline); err != nil {
			return err
		}
	}
}

func (s *flushShard) awaitWritable(sk *sock, deadline time.Time) error {
	if s.wp == nil {
		return errors.New("server: the socket is full and no poller can wait for it")
	}
	if _, ok := sk.acquire(); !ok {
		return net.ErrClosed
	}
	defer sk.release()
	wait := time.Until(deadline)
	if wait <= 0 {
		return os.ErrDeadlineExceeded
	}
	ready := make(chan struct{}, 1)
	d, err := s.wp.AddFD(sk, poll.Writable, func(poll.Event) {
		select {
		case ready <- struct{}{}:
		default:
		}
	})
	if err != nil {
		return fmt.Errorf("server: wait for a full socket: %w", err)
	}
	defer func() { _ = s.wp.Remove(d) }()
	return awaitSignal(ready, wait)
}
