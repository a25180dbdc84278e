// Package actors holds presenced's two actors: the user actor (one per user with windows; it
// owns aggregation, debounce, away, resume tokens, invisible and last seen) and the connection
// actor (one per socket; it forwards frames to the user actor and keeps the follower's view).
// Both are thin shells over plain rule types (User, View) that take the time and return effects.
package actors

import (
	"crypto/rand"
	"encoding/base64"
	"runtime"
	"sync"
	"sync/atomic"
	"time"

	"github.com/asynkron/protoactor-go/actor"
	"go.uber.org/zap"

	"github.com/presenced/presenced/cluster"
	"github.com/presenced/presenced/metrics"
)

// Deps is what the actors of one node share. It is built once by the node and read-only after.
type Deps struct {
	System    *actor.ActorSystem
	Placement cluster.Placement
	Store     cluster.Store
	Follows   cluster.Follows // cached follow lists: whom mutual-only users follow back
	Bus       cluster.Bus
	Fanout    *Fanout
	// Users is what every user actor of the node shares: the timing, and the maker of resume
	// tokens and window ids (RandomToken: 256 random bits, base64url).
	Users *UserEnv
	Log   *zap.Logger
	// IOTimeout bounds one store or bus call made from an actor (default 5 s).
	IOTimeout time.Duration
	// Member is this node's cluster address when user actors are grains ("" on a single node):
	// user actors record where they live so survivors can wake them if this member dies.
	Member string
	// Hosted lists the user actors active on this node, for recovery broadcasts, when the
	// placement cannot (BroadcastUsers): in a cluster.
	Hosted Hosted
	// Leases renews the leases of this node's user actors in rounds.
	Leases *Leases
	// Deadlines runs the node's timers: user actors' (away, debounce, a waiting window's), and
	// the server's socket clocks and follow-list refreshes.
	Deadlines *Deadlines
	// Metrics counts hellos, frames, publishes, activations and lease losses; nil counts nothing.
	Metrics *metrics.Metrics

	// The Props every local user actor and every connection actor share (see spawnUser, SpawnConn).
	userProps, connProps           *actor.Props
	userDispatcher, connDispatcher *Dispatcher
	spawned                        atomic.Uint64 // names actors: user/<id>/<n>, conn/<boot>/<n>
	boot                           string        // random per node start: connection ids never repeat (SpawnConn)
	specsMu                        sync.Mutex
	specs                          map[string]*ConnSpec // connection actor id → its spec, until the actor takes it (SpawnConn)
}

// Broadcaster is a placement that can reach every user actor it placed on this node.
type Broadcaster interface{ Broadcast(msg any) }

// BroadcastUsers sends msg to every user actor on this node: through the placement when it can
// list them (a single node), else through Hosted.
func (d *Deps) BroadcastUsers(msg any) {
	if b, ok := d.Placement.(Broadcaster); ok {
		b.Broadcast(msg)
		return
	}
	d.Hosted.Broadcast(d.System.Root, msg)
}

// hosting records in Hosted that pid is (on) or no longer is user's actor here, when the
// placement cannot list its actors itself (see BroadcastUsers).
func (d *Deps) hosting(user string, pid *actor.PID, on bool) {
	if _, ok := d.Placement.(Broadcaster); ok {
		return
	}
	if on {
		d.Hosted.add(user, pid)
	} else {
		d.Hosted.remove(user, pid)
	}
}

// Hosted is the set of user actors active on this node. The zero value is ready.
type Hosted struct {
	mu   sync.Mutex
	pids map[string]*actor.PID
}

func (h *Hosted) add(user string, pid *actor.PID) {
	h.mu.Lock()
	defer h.mu.Unlock()
	if h.pids == nil {
		h.pids = map[string]*actor.PID{}
	}
	h.pids[user] = pid
}

// remove forgets pid as user's actor, unless a newer one replaced it.
func (h *Hosted) remove(user string, pid *actor.PID) {
	h.mu.Lock()
	defer h.mu.Unlock()
	if cur := h.pids[user]; cur != nil && cur.Equal(pid) {
		delete(h.pids, user)
	}
}

// Broadcast sends msg to every user actor on this node: a recovery path, never a delivery path.
func (h *Hosted) Broadcast(root *actor.RootContext, msg any) {
	h.mu.Lock()
	defer h.mu.Unlock()
	for _, pid := range h.pids {
		root.Send(pid, msg)
	}
}

// watchPeer is how a user actor and a connection actor of its window watch each other: in a
// cluster only. There the other one can move or its node die, and a watch is how a connection
// learns to reattach and a user actor that a connection's node died. On a single node the two
// live and die together: a connection actor always detaches its window as it stops (see
// connActor.release), a user actor with a live window never retires, and a watch would cost each
// side a watcher set.
func (d *Deps) watchPeer(ctx actor.Context, pid *actor.PID) {
	if d.Member != "" {
		ctx.Watch(pid)
	}
}

// Close stops the node's lease rounds and the connection actors' workers, once the actors have
// stopped.
func (d *Deps) Close() {
	d.Leases.Close()
	d.userDispatcher.Close()
	d.connDispatcher.Close()
}

func (d *Deps) ioTimeout() time.Duration {
	if d.IOTimeout > 0 {
		return d.IOTimeout
	}
	return 5 * time.Second
}

// NewDeps wires one node's actor dependencies but placement: a fanout on bus (made by newBus
// with the fanout's Deliver) and the store. The caller sets Placement.
func NewDeps(system *actor.ActorSystem, store cluster.Store, newBus func(cluster.Deliver) cluster.Bus, user UserConfig, log *zap.Logger) *Deps {
	fan := NewFanout(system.Root, log)
	bus := newBus(fan.Deliver)
	fan.SetBus(bus)
	d := &Deps{System: system, Store: store, Follows: cluster.NewMemoryFollows(), Bus: bus, Fanout: fan, Users: &UserEnv{Config: user, NewToken: RandomToken}, Log: log,
		specs: map[string]*ConnSpec{}, boot: RandomToken()[:8]}
	d.Leases = NewLeases(store, system.Root, log, d.ioTimeout)
	d.Deadlines = NewDeadlines(4 * runtime.GOMAXPROCS(0))
	// User actors block in a store call at every write, so they get more workers than the Redis
	// client has connections (10 a core), and, like connection actors (which block in a sync's
	// read), goroutines of their own once a hung store has held every worker for a second.
	d.userDispatcher = NewDispatcher(300, 32*runtime.GOMAXPROCS(0), 16384, time.Second, dispatchStall)
	d.userProps = actor.PropsFromProducer(func() actor.Actor { return &userActor{d: d} }, WithMailbox(), actor.WithDispatcher(d.userDispatcher))
	d.connDispatcher = NewDispatcher(300, 8*runtime.GOMAXPROCS(0), 16384, time.Second, dispatchStall)
	d.connProps = actor.PropsFromProducer(func() actor.Actor { return &connActor{d: d} }, WithMailbox(), actor.WithDispatcher(d.connDispatcher))
	return d
}

// dispatchStall is how long runs may wait behind workers that all sit in one run each before
// they get goroutines of their own: far above a healthy store call, far below its 5 s timeout.
const dispatchStall = time.Second

// NewLocalDeps is NewDeps with user actors placed on this node.
func NewLocalDeps(system *actor.ActorSystem, store cluster.Store, newBus func(cluster.Deliver) cluster.Bus, user UserConfig, log *zap.Logger) (*Deps, *cluster.LocalPlacement) {
	d := NewDeps(system, store, newBus, user, log)
	p := cluster.NewLocalPlacement(system.Root, d.spawnUser)
	d.Placement = p
	return d, p
}

// RandomToken returns 256 bits from crypto/rand as unpadded base64url (43 characters).
func RandomToken() string {
	var b [32]byte
	_, _ = rand.Read(b[:]) // crypto/rand.Read never fails on supported platforms (Go ≥1.24)
	return base64.RawURLEncoding.EncodeToString(b[:])
}
