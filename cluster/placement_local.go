package cluster

import (
	"sync"

	"github.com/asynkron/protoactor-go/actor"
)

var _ Placement = (*LocalPlacement)(nil)

// LocalPlacement keeps one actor per user on this node, spawned on first use.
type LocalPlacement struct {
	root  *actor.RootContext
	spawn func(user string) *actor.PID

	mu     sync.RWMutex
	actors map[string]*actor.PID
	closed bool
}

// NewLocalPlacement starts each user's actor with spawn(user) on root's system. Spawn runs
// under the placement's lock, so the first message spawn sends is the actor's first.
func NewLocalPlacement(root *actor.RootContext, spawn func(user string) *actor.PID) *LocalPlacement {
	return &LocalPlacement{root: root, spawn: spawn, actors: map[string]*actor.PID{}}
}

// Send holds the read lock while it enqueues, so a Retire that removes the actor happens either
// before the message is enqueued (the message reaches a new activation) or after (the old one
// forwards it): nothing falls between.
func (p *LocalPlacement) Send(user string, msg any, sender *actor.PID) {
	p.mu.RLock()
	pid := p.actors[user]
	if pid != nil {
		p.send(pid, msg, sender)
		p.mu.RUnlock()
		return
	}
	p.mu.RUnlock()
	p.mu.Lock()
	defer p.mu.Unlock()
	if p.closed {
		return
	}
	if pid = p.actors[user]; pid == nil {
		pid = p.spawn(user)
		p.actors[user] = pid
	}
	p.send(pid, msg, sender)
}

func (p *LocalPlacement) send(pid *actor.PID, msg any, sender *actor.PID) {
	if sender != nil {
		p.root.RequestWithCustomSender(pid, msg, sender)
		return
	}
	p.root.Send(pid, msg)
}

func (p *LocalPlacement) Retire(user string, pid *actor.PID) bool {
	p.mu.Lock()
	defer p.mu.Unlock()
	if cur := p.actors[user]; cur == nil || !cur.Equal(pid) {
		return false
	}
	delete(p.actors, user)
	return true
}

// Lookup returns user's current activation, nil when none.
func (p *LocalPlacement) Lookup(user string) *actor.PID {
	p.mu.RLock()
	defer p.mu.RUnlock()
	return p.actors[user]
}

// Broadcast sends msg to every user actor it placed: a recovery path, never a delivery path.
// It lists the same actors that actors.Hosted would, so a node with this placement keeps no
// second set of them.
func (p *LocalPlacement) Broadcast(msg any) {
	p.mu.RLock()
	defer p.mu.RUnlock()
	for _, pid := range p.actors {
		p.root.Send(pid, msg)
	}
}

// Active reports how many user actors are active (for stats and tests).
func (p *LocalPlacement) Active() int {
	p.mu.RLock()
	defer p.mu.RUnlock()
	return len(p.actors)
}

// Close stops every user actor and waits for each; Sends after Close are dropped.
func (p *LocalPlacement) Close() {
	p.mu.Lock()
	p.closed = true
	pids := make([]*actor.PID, 0, len(p.actors))
	for _, pid := range p.actors {
		pids = append(pids, pid)
	}
	clear(p.actors)
	p.mu.Unlock()
	for _, pid := range pids {
		_ = p.root.StopFuture(pid).Wait()
	}
}
