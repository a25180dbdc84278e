package server

import (
	"errors"
	"sync"
	"sync/atomic"
	"syscall"
	"time"
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

	mu    sync.Mutex
	dirty []*outbox // sockets with frames waiting for this shard's next round
	spare []*outbox

	wake chan struct{} // cap 1: the dirty list went from empty to not empty
	done chan struct{} // closed by close: the shard returns
	buf  []byte        // owned by the shard goroutine

	wrote func(*outbox) // tests only: runs on the shard goroutine after each socket's write
}

// newFlusher starts shards goroutines; close stops them.
func newFlusher(shards int, delay time.Duration) *flusher {
	f := &flusher{}
	for range max(shards, 1) {
		s := &flushShard{delay: delay, wake: make(chan struct{}, 1), done: make(chan struct{})}
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

// rawWrite writes b with non-blocking write(2) calls on the socket's own descriptor and returns
// how much went out; a full kernel buffer (EAGAIN) is not an error: n < len(b) says the rest
// must wait for a writer that may block.
func rawWrite(rc syscall.RawConn, b []byte) (int, error) {
	n := 0
	var werr error
	err := rc.Write(func(fd uintptr) bool {
		for n < len(b) {
			m, e := syscall.Write(int(fd), b[n:])
			if m > 0 {
				n += m
			}
			switch {
			case e == nil:
			case errors.Is(e, syscall.EINTR):
			case errors.Is(e, syscall.EAGAIN):
				return true
			default:
				werr = e
				return true
			}
		}
		return true
	})
	if err != nil {
		return n, err
	}
	return n, werr
}
