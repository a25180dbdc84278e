package actors

import (
	"context"
	"fmt"
	"slices"
	"sync"
	"sync/atomic"
	"unique"

	"github.com/asynkron/protoactor-go/actor"
	"go.uber.org/zap"
	"google.golang.org/protobuf/proto"

	"github.com/presenced/presenced/actors/actorpb"
	"github.com/presenced/presenced/auth"
	"github.com/presenced/presenced/cluster"
	"github.com/presenced/presenced/metrics"
	"github.com/presenced/presenced/wire"
)

// Fanout routes each user's published changes to the connection actors on this node that follow
// that user, and holds the node's bus subscription to presence:<user> while at least one does.
// A delivery touches only the followers of its user: O(K), never all connections.
type Fanout struct {
	root *actor.RootContext
	log  *zap.Logger
	bus  cluster.Bus // set once by SetBus before any Subscribe

	// StampFlush adds each change's flush time (its PublishedUs) to the frames it becomes, as
	// the test-only "ft" field (--stamp-flush: load tests measure flush to receipt with it).
	// Set it before the node serves; it is read, never written, after that.
	StampFlush bool

	mu   sync.Mutex
	subs map[string]followerSet // user → its followers' connection actors on this node

	received  atomic.Uint64 // payloads from the bus
	delivered atomic.Uint64 // envelopes handed to connection actors
}

// NewFanout makes an empty fanout. Call SetBus before use: the bus needs Deliver and the
// fanout needs the bus.
func NewFanout(root *actor.RootContext, log *zap.Logger) *Fanout {
	return &Fanout{root: root, log: log, subs: map[string]followerSet{}}
}

// SetBus connects the fanout to its bus.
func (f *Fanout) SetBus(b cluster.Bus) { f.bus = b }

// Subscribe adds pid as a follower of each user; the first follower of a user on this node
// subscribes the node to the user's channel. Call it before reading the store for a sync so no
// change falls between the read and the subscription. pid is the connection actor's own PID
// (ctx.Self()): followers are told apart by pointer, so Unsubscribe must get the same one.
func (f *Fanout) Subscribe(ctx context.Context, users []string, pid *actor.PID) error {
	f.mu.Lock()
	defer f.mu.Unlock()
	for _, u := range users {
		set, ok := f.subs[u]
		if !ok {
			if err := f.bus.Subscribe(ctx, u); err != nil {
				return fmt.Errorf("fanout: subscribe %s: %w", u, err)
			}
		}
		set.add(pid)
		f.subs[u] = set
	}
	return nil
}

// Unsubscribe removes pid from each user's followers; the last one unsubscribes the node.
func (f *Fanout) Unsubscribe(ctx context.Context, users []string, pid *actor.PID) {
	f.mu.Lock()
	defer f.mu.Unlock()
	for _, u := range users {
		set, ok := f.subs[u]
		if !ok {
			continue
		}
		set.remove(pid)
		f.subs[u] = set
		if set.len() == 0 {
			delete(f.subs, u)
			if err := f.bus.Unsubscribe(ctx, u); err != nil {
				f.log.Warn("bus unsubscribe failed", zap.String("user", u), zap.Error(err))
			}
		}
	}
}

// Deliver is the bus's callback: it decodes the payload once and hands the same envelope to
// every local follower of user. It never blocks (actor mailboxes are queues).
func (f *Fanout) Deliver(user string, payload []byte) {
	env := &actorpb.Envelope{}
	if err := proto.Unmarshal(payload, env); err != nil || env.GetUpdate() == nil {
		f.log.Warn("dropping undecodable bus payload", zap.String("user", user), zap.Error(err))
		return
	}
	if env.GetVersion() > actorpb.EnvelopeVersion {
		f.log.Warn("dropping bus payload from a newer envelope version", zap.Uint32("version", env.GetVersion()))
		return
	}
	// One Delivery for every follower: they share the decoded update and the encoded frames.
	// Sending under the lock is fine: Send only enqueues on a mailbox.
	d := NewDelivery(env.GetUpdate())
	d.stamp = f.StampFlush
	f.received.Add(1)
	f.mu.Lock()
	set := f.subs[user]
	for _, pid := range set.few {
		f.root.Send(pid, d)
	}
	for pid := range set.many {
		f.root.Send(pid, d)
	}
	f.delivered.Add(uint64(set.len()))
	f.mu.Unlock()
}

// followerSet is one user's followers on this node, told apart by pointer (each is its
// connection actor's own PID). A node holds an entry per followed user per socket, so the set
// is a slice, 8 bytes a follower, until it holds manyFollowers; then a set of pointers (an
// 8-byte slot each, plus its table's spare slots), so that a user followed by thousands on
// this node is still added to and removed from in constant time. A map keyed by the actors'
// ids took a 24-byte slot, and comparing ids read two more cache lines per follower.
type followerSet struct {
	few  []*actor.PID
	many map[*actor.PID]struct{} // nil while few holds the set
}

// manyFollowers is the size at which a followerSet becomes a map: below it, a scan of the
// slice's pointers (contiguous, nothing else read) is about as short as a map's hashing.
const manyFollowers = 1024

func (s *followerSet) add(pid *actor.PID) {
	if s.many != nil {
		s.many[pid] = struct{}{}
		return
	}
	if slices.Contains(s.few, pid) {
		return
	}
	if len(s.few) < manyFollowers {
		s.few = append(s.few, pid)
		return
	}
	s.many = make(map[*actor.PID]struct{}, 2*manyFollowers)
	for _, p := range s.few {
		s.many[p] = struct{}{}
	}
	s.many[pid] = struct{}{}
	s.few = nil
}

func (s *followerSet) remove(pid *actor.PID) {
	if s.many != nil {
		delete(s.many, pid)
		return
	}
	for i, p := range s.few {
		if p == pid {
			last := len(s.few) - 1
			s.few[i], s.few[last] = s.few[last], nil
			s.few = s.few[:last]
			return
		}
	}
}

func (s *followerSet) len() int {
	if s.many != nil {
		return len(s.many)
	}
	return len(s.few)
}

// Delivery is one published change handed to every local follower's connection actor. It never
// leaves the node (so it is a plain Go value, not part of the protobuf envelope). Followers that
// saw the same previous state need the same frame: the first one to need it encodes it, and the
// others reuse the bytes, so a change is encoded about once per node, not once per follower.
type Delivery struct {
	Update *actorpb.PresenceUpdate // read-only: shared by every follower
	key    uint32                  // userKey(Update.User), hashed once for every view
	shown  shownPresence           // shownToAll(Update), interned once for every view
	who    Followed                // the user and login of Update, as follow lists hold them
	stamp  bool                    // frames carry Update.PublishedUs as "ft" (Fanout.StampFlush)

	mu     sync.Mutex
	frames []sharedFrame // a handful at most: one per distinct previous state seen
}

type sharedFrame struct {
	login      string
	prev, next shownPresence
	b          []byte
	t          string // the frame's type on the wire, for metrics
}

// NewDelivery wraps one published change for the node's followers of its user.
func NewDelivery(up *actorpb.PresenceUpdate) *Delivery {
	who := unique.Make(auth.Followee{ID: up.GetUser(), Login: up.GetLogin()})
	return &Delivery{Update: up, key: userKey(up.GetUser()), shown: shownToAll(up), who: who}
}

// frame returns the encoded frame that moves a follower from prev to next of the user shown as
// login, and its type, encoding it only if no follower needed it before. Called from many
// connection actors at once; the bytes returned are shared and must not be modified.
func (d *Delivery) frame(login string, prev, next shownPresence) ([]byte, string, bool) {
	d.mu.Lock()
	defer d.mu.Unlock()
	for i := range d.frames {
		if sf := &d.frames[i]; sf.login == login && sf.prev == prev && sf.next == next {
			return sf.b, sf.t, sf.b != nil
		}
	}
	var b []byte
	var t string
	if f, ok := wire.Diff(login, prev.Value(), true, next.Value()); ok {
		if d.stamp {
			f = withFlushTime(f, wire.FlushTime(d.Update.GetPublishedUs()))
		}
		b, t = wire.Encode(f), metrics.FrameType(f)
	}
	d.frames = append(d.frames, sharedFrame{login: login, prev: prev, next: next, b: b, t: t})
	return b, t, b != nil
}

// withFlushTime sets the test-only flush time on the frames that carry one (u, o, x).
func withFlushTime(f wire.Frame, ft wire.FlushTime) wire.Frame {
	switch f := f.(type) {
	case wire.Update:
		f.FT = ft
		return f
	case wire.Online:
		f.FT = ft
		return f
	case wire.Offline:
		f.FT = ft
		return f
	}
	return f
}

// FanoutStats counts the fanout's work since start.
type FanoutStats struct {
	Channels  int    // user channels this node subscribes to
	Received  uint64 // payloads received from the bus
	Delivered uint64 // envelopes handed to connection actors
}

// Stats returns the counters.
func (f *Fanout) Stats() FanoutStats {
	return FanoutStats{Channels: f.Followed(), Received: f.received.Load(), Delivered: f.delivered.Load()}
}

// Followed reports how many users this node follows for its connections (channels held).
func (f *Fanout) Followed() int {
	f.mu.Lock()
	defer f.mu.Unlock()
	return len(f.subs)
}

// Resync asks every local connection actor to re-read the store for the users it follows. It is
// the recovery path after the bus lost messages, not a delivery path.
func (f *Fanout) Resync() {
	f.mu.Lock()
	seen := map[string]bool{}
	resync := func(pid *actor.PID) {
		if !seen[pid.Id] {
			seen[pid.Id] = true
			f.root.Send(pid, Resync{})
		}
	}
	for _, set := range f.subs {
		for _, pid := range set.few {
			resync(pid)
		}
		for pid := range set.many {
			resync(pid)
		}
	}
	f.mu.Unlock()
}
