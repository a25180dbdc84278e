package actors

import (
	"container/heap"
	"sync"
	"sync/atomic"
	"time"
)

// Deadlines runs many callbacks from a few runtime timers: each shard keeps its deadlines in a
// min-heap and arms one time.AfterFunc for the earliest. Every socket (its clock), every user
// actor (away, debounce) and every user's follow-list refresh used to hold a time.Timer of its
// own; a timer and its closure are about 160 bytes, a Deadline is 32 plus a heap slot, and an
// idle connection held three.
//
// A deadline's callback runs on the shard's timer goroutine, outside any lock, like an
// AfterFunc's. As with time.Timer, Stop can lose to a deadline that has just passed: its
// callback may still run once after Stop returns false, so callbacks check that they are still
// wanted (user actor timers carry a generation; a socket's clock checks its state).
type Deadlines struct {
	shards []deadlineShard
	next   atomic.Uint32
}

// NewDeadlines makes shards independent heaps (a few per core keeps the locks cold).
func NewDeadlines(shards int) *Deadlines {
	return &Deadlines{shards: make([]deadlineShard, max(shards, 1))}
}

// Deadline is one callback and when it is due. The zero value is unusable: Init it once, then
// Reset and Stop it as often as needed. It may be embedded in its owner (no allocation).
type Deadline struct {
	fn    func()
	at    int64 // unix ns; meaningful while scheduled
	idx   int32 // position in the shard's heap; -1: not scheduled
	shard *deadlineShard
}

// Init binds d to a shard of ds and to fn.
func (ds *Deadlines) Init(d *Deadline, fn func()) {
	d.fn, d.idx = fn, -1
	d.shard = &ds.shards[int(ds.next.Add(1))%len(ds.shards)]
}

// Reset schedules d at at (now or earlier: at once, on the shard's timer goroutine), moving it
// if it was scheduled.
func (d *Deadline) Reset(at time.Time) {
	s := d.shard
	s.mu.Lock()
	defer s.mu.Unlock()
	d.at = at.UnixNano()
	if d.idx < 0 {
		heap.Push(&s.h, d)
	} else {
		heap.Fix(&s.h, int(d.idx))
	}
	s.armLocked()
}

// Stop unschedules d; false when it was not scheduled (it fired, or was never set).
func (d *Deadline) Stop() bool {
	s := d.shard
	s.mu.Lock()
	defer s.mu.Unlock()
	if d.idx < 0 {
		return false
	}
	heap.Remove(&s.h, int(d.idx))
	return true
}

type deadlineShard struct {
	mu      sync.Mutex
	h       deadlineHeap // keeps its capacity: 8 bytes per deadline at the busiest
	timer   *time.Timer  // made on the first Reset
	armedAt int64        // when timer fires; 0: not armed
}

// armLocked makes the timer fire at the earliest deadline, unless it already fires by then.
func (s *deadlineShard) armLocked() {
	if len(s.h) == 0 {
		return // a timer armed for a deadline that went away fires and finds nothing
	}
	first := s.h[0].at
	if s.armedAt != 0 && s.armedAt <= first {
		return
	}
	s.armedAt = first
	wait := time.Until(time.Unix(0, first))
	if s.timer == nil {
		s.timer = time.AfterFunc(wait, s.fire)
		return
	}
	s.timer.Reset(wait)
}

// fire runs on the timer's goroutine: it takes every deadline that is due, re-arms for the
// next, and runs the callbacks outside the lock (they may Reset their deadlines).
func (s *deadlineShard) fire() {
	s.mu.Lock()
	now := time.Now().UnixNano()
	s.armedAt = 0
	var due []*Deadline
	for len(s.h) > 0 && s.h[0].at <= now {
		due = append(due, heap.Pop(&s.h).(*Deadline))
	}
	s.armLocked()
	s.mu.Unlock()
	for _, d := range due {
		d.fn()
	}
}

// deadlineHeap is container/heap's min-heap by due time; each Deadline knows its index.
type deadlineHeap []*Deadline

func (h deadlineHeap) Len() int           { return len(h) }
func (h deadlineHeap) Less(i, j int) bool { return h[i].at < h[j].at }
func (h deadlineHeap) Swap(i, j int) {
	h[i], h[j] = h[j], h[i]
	h[i].idx, h[j].idx = int32(i), int32(j)
}
func (h *deadlineHeap) Push(x any) {
	d := x.(*Deadline)
	d.idx = int32(len(*h))
	*h = append(*h, d)
}
func (h *deadlineHeap) Pop() any {
	old := *h
	d := old[len(old)-1]
	old[len(old)-1] = nil
	*h = old[:len(old)-1]
	d.idx = -1
	return d
}
