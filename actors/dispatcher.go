package actors

import (
	"sync"
	"sync/atomic"
	"time"

	"github.com/asynkron/protoactor-go/actor"
)

// Dispatcher runs mailboxes on goroutines that live on between runs. Proto.Actor's default
// starts a goroutine for every run of a mailbox; a connection actor runs once per delivery, so
// under fan-out that is a goroutine start, a stack that grows and copies, and an exit per frame:
// 18% of the server's CPU at 150,000 frames/s (measured, docs/benchmarks.md).
//
// Runs wait in a queue of queueLen for at most max workers; a worker is started when a run
// finds none waiting, and exits after idleAfter without work, so an idle node keeps no workers
// and a test's goroutines end by themselves. When the queue is full a run gets a goroutine of
// its own rather than wait.
//
// Actors that block in store calls (user actors at every write) are why runs must not wait
// long behind busy workers: when Redis hangs every worker waits out its call's timeout. So
// once runs are queued and no worker has taken one for stallAfter, the queued runs each get a
// goroutine of their own, as Proto.Actor's default would have given them at once. While the
// store answers, a wave of runs (18,000 goodbyes, each with a save) waits for max workers in
// the queue instead of holding 18,000 goroutines and their stacks (docs/benchmarks.md, Mass
// disconnect).
type Dispatcher struct {
	throughput int
	max        int32
	idleAfter  time.Duration
	stallAfter time.Duration // 0: never
	work       chan func()
	quit       chan struct{} // closed by Close
	closeOnce  sync.Once
	workers    atomic.Int32
	waiting    atomic.Int32  // workers blocked on an empty queue
	taken      atomic.Uint64 // runs workers have taken: the stall check's sign of progress

	guardMu    sync.Mutex
	guard      *time.Timer // the armed stall check, nil when none
	guardTaken uint64      // taken when the guard was armed
}

var _ actor.Dispatcher = (*Dispatcher)(nil)

// NewDispatcher runs at most throughput messages per mailbox run, on at most max workers, with
// at most queueLen runs waiting, and gives queued runs goroutines of their own once no worker
// has taken one for stallAfter (0: never).
func NewDispatcher(throughput, max, queueLen int, idleAfter, stallAfter time.Duration) *Dispatcher {
	return &Dispatcher{throughput: throughput, max: int32(max), idleAfter: idleAfter, stallAfter: stallAfter,
		work: make(chan func(), queueLen), quit: make(chan struct{})}
}

// Throughput is how many messages a mailbox processes before it yields.
func (d *Dispatcher) Throughput() int { return d.throughput }

// Schedule queues fn for a worker, starting one when none is waiting; a full queue runs fn on
// a goroutine of its own.
func (d *Dispatcher) Schedule(fn func()) {
	select {
	case <-d.quit:
		go fn()
		return
	default:
	}
	select {
	case d.work <- fn:
	default:
		go fn()
		return
	}
	if d.waiting.Load() > 0 {
		return
	}
	if d.workers.Add(1) > d.max {
		d.workers.Add(-1)
		d.armGuard() // fn waits for a busy worker
		return
	}
	go d.worker()
}

// armGuard arms the stall check unless one is armed.
func (d *Dispatcher) armGuard() {
	if d.stallAfter <= 0 {
		return
	}
	d.guardMu.Lock()
	defer d.guardMu.Unlock()
	if d.guard == nil {
		select {
		case <-d.quit: // Close stopped the guard; the workers drain the queue
		default:
			d.armGuardLocked()
		}
	}
}

func (d *Dispatcher) armGuardLocked() {
	d.guardTaken = d.taken.Load()
	d.guard = time.AfterFunc(d.stallAfter, d.checkStall)
}

// checkStall gives every queued run a goroutine of its own when no worker has taken a run
// since the guard was armed, stallAfter ago, and looks again later while runs are queued.
func (d *Dispatcher) checkStall() {
	d.guardMu.Lock()
	stalled := d.taken.Load() == d.guardTaken
	d.guardMu.Unlock()
	if stalled {
	drain:
		for {
			select {
			case fn := <-d.work:
				go fn()
			default:
				break drain
			}
		}
	}
	d.guardMu.Lock()
	defer d.guardMu.Unlock()
	d.guard = nil
	select {
	case <-d.quit:
		return
	default:
	}
	// A run queued while this check ran found it armed: look again for it.
	if len(d.work) > 0 {
		d.armGuardLocked()
	}
}

func (d *Dispatcher) worker() {
	defer d.workers.Add(-1)
	idle := time.NewTimer(d.idleAfter)
	defer idle.Stop()
	for {
		select {
		case fn := <-d.work:
			d.took()
			fn()
			continue
		default:
		}
		d.waiting.Add(1)
		idle.Reset(d.idleAfter)
		select {
		case fn := <-d.work:
			d.waiting.Add(-1)
			d.took()
			fn()
		case <-d.quit:
			d.waiting.Add(-1)
			d.drain()
			return
		case <-idle.C:
			// A run queued just as the wait ended saw this worker waiting and started none:
			// take it. (Schedule queues, then reads waiting; this decrements, then looks.)
			d.waiting.Add(-1)
			select {
			case fn := <-d.work:
				d.took()
				fn()
			default:
				return
			}
		}
	}
}

// took records that a worker took a run, for the stall check: a counter, not a clock, because
// it runs for every connection actor's run under fan-out.
func (d *Dispatcher) took() { d.taken.Add(1) }

// Close makes the workers exit once the queue is empty and stops the stall check; runs
// scheduled after it get goroutines of their own.
func (d *Dispatcher) Close() {
	d.closeOnce.Do(func() {
		d.guardMu.Lock()
		close(d.quit)
		if d.guard != nil {
			d.guard.Stop()
			d.guard = nil
		}
		d.guardMu.Unlock()
	})
}

// drain runs what is queued (a closing worker leaves nothing behind).
func (d *Dispatcher) drain() {
	for {
		select {
		case fn := <-d.work:
			fn()
		default:
			return
		}
	}
}

// alive reports how many workers are alive (for tests).
func (d *Dispatcher) alive() int { return int(d.workers.Load()) }
