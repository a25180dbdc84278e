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
// and a test's goroutines end by themselves. When the queue is full (workers blocked in store
// calls, say) a run gets a goroutine of its own rather than wait. Connection actors use it;
// user actors, which block in a store call at every change, keep Proto.Actor's default.
type Dispatcher struct {
	throughput int
	max        int32
	idleAfter  time.Duration
	work       chan func()
	quit       chan struct{} // closed by Close
	closeOnce  sync.Once
	workers    atomic.Int32
	waiting    atomic.Int32 // workers blocked on an empty queue
}

var _ actor.Dispatcher = (*Dispatcher)(nil)

// NewDispatcher runs at most throughput messages per mailbox run, on at most max workers, with
// at most queueLen runs waiting.
func NewDispatcher(throughput, max, queueLen int, idleAfter time.Duration) *Dispatcher {
	return &Dispatcher{throughput: throughput, max: int32(max), idleAfter: idleAfter, work: make(chan func(), queueLen), quit: make(chan struct{})}
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
		return
	}
	go d.worker()
}

func (d *Dispatcher) worker() {
	defer d.workers.Add(-1)
	idle := time.NewTimer(d.idleAfter)
	defer idle.Stop()
	for {
		select {
		case fn := <-d.work:
			fn()
			continue
		default:
		}
		d.waiting.Add(1)
		idle.Reset(d.idleAfter)
		select {
		case fn := <-d.work:
			d.waiting.Add(-1)
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
				fn()
			default:
				return
			}
		}
	}
}

// Close makes the workers exit once the queue is empty; runs scheduled after it get goroutines
// of their own.
func (d *Dispatcher) Close() { d.closeOnce.Do(func() { close(d.quit) }) }

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
