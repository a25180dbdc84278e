package actors

import (
	"context"
	"fmt"
	"sync"
	"time"

	"github.com/asynkron/protoactor-go/actor"
	"go.uber.org/zap"

	"github.com/presenced/presenced/cluster"
)

// Leases renews the leases of every user actor on this node, together: one round every
// LeaseTTL/3, one store call per RenewBatch users. A timer and a round trip per user would cost
// each idle user a timer and the node one Redis script call per user every 10 s (1,800 calls/s
// at 18,000 users, a third of an idle node's CPU).
//
// A user actor holds its lease here from its first write (Acquire) until it stops. When a round
// finds a lease taken by a newer activation, the holder gets leaseLost and fences itself. A
// round that cannot reach the store changes nothing; the next one tries again, and the lease
// outlives two missed rounds.
type Leases struct {
	store   cluster.Store
	root    *actor.RootContext
	log     *zap.Logger
	timeout func() time.Duration // bounds one store call

	mu      sync.Mutex
	held    map[string]heldLease // user → the activation that holds its lease here
	timer   *time.Timer          // the next round, nil while nothing is held
	running sync.WaitGroup       // a round in flight
	closed  bool
}

type heldLease struct {
	epoch uint64
	pid   *actor.PID
}

// RenewBatch is how many leases one store call renews.
const RenewBatch = 500

// renewEvery is the time between rounds: a third of the lease's life.
const renewEvery = cluster.LeaseTTL / 3

// leaseLost tells a user actor that a newer activation holds its lease.
type leaseLost struct{ epoch uint64 }

// NewLeases makes an empty set of leases renewed on store; lost ones are told through root.
func NewLeases(store cluster.Store, root *actor.RootContext, log *zap.Logger, timeout func() time.Duration) *Leases {
	return &Leases{store: store, root: root, log: log, timeout: timeout, held: map[string]heldLease{}}
}

// Hold renews user's lease at epoch from now on, on behalf of pid.
func (l *Leases) Hold(user string, epoch uint64, pid *actor.PID) {
	l.mu.Lock()
	defer l.mu.Unlock()
	if l.closed {
		return
	}
	l.held[user] = heldLease{epoch, pid}
	if l.timer == nil {
		l.timer = time.AfterFunc(renewEvery, l.round)
	}
}

// Release stops renewing user's lease at epoch (a newer epoch held here is kept).
func (l *Leases) Release(user string, epoch uint64) {
	l.mu.Lock()
	defer l.mu.Unlock()
	if h, ok := l.held[user]; ok && h.epoch == epoch {
		delete(l.held, user)
	}
}

// holding reports how many leases this node renews (for tests).
func (l *Leases) holding() int {
	l.mu.Lock()
	defer l.mu.Unlock()
	return len(l.held)
}

// Close stops the rounds and waits for one in flight.
func (l *Leases) Close() {
	l.mu.Lock()
	l.closed = true
	if l.timer != nil {
		l.timer.Stop()
		l.timer = nil
	}
	l.mu.Unlock()
	l.running.Wait()
}

// round renews every held lease and schedules the next round while any is held.
func (l *Leases) round() {
	l.mu.Lock()
	if l.closed {
		l.mu.Unlock()
		return
	}
	l.running.Add(1)
	defer l.running.Done()
	batch := make([]cluster.Lease, 0, len(l.held))
	for u, h := range l.held {
		batch = append(batch, cluster.Lease{User: u, Epoch: h.epoch})
	}
	l.mu.Unlock()

	for len(batch) > 0 {
		n := min(len(batch), RenewBatch)
		l.renew(batch[:n])
		batch = batch[n:]
	}

	l.mu.Lock()
	defer l.mu.Unlock()
	l.timer = nil
	if !l.closed && len(l.held) > 0 {
		l.timer = time.AfterFunc(renewEvery, l.round)
	}
}

func (l *Leases) renew(batch []cluster.Lease) {
	ctx, cancel := context.WithTimeout(context.Background(), l.timeout())
	defer cancel()
	fenced, err := l.store.RenewMany(ctx, batch)
	if err == nil && len(fenced) != len(batch) {
		err = fmt.Errorf("the store answered for %d leases of %d", len(fenced), len(batch))
	}
	if err != nil {
		l.log.Warn("renewing user leases failed; the next round retries (a lease outlives two missed rounds)",
			zap.Int("leases", len(batch)), zap.Error(err))
		return
	}
	l.mu.Lock()
	defer l.mu.Unlock()
	for i, lost := range fenced {
		if !lost {
			continue
		}
		le := batch[i]
		if h, ok := l.held[le.User]; ok && h.epoch == le.Epoch {
			delete(l.held, le.User)
			l.root.Send(h.pid, leaseLost{le.Epoch})
		}
	}
}
