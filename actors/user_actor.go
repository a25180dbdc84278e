package actors

import (
	"context"
	"errors"
	"slices"
	"strconv"
	"strings"
	"time"

	"github.com/asynkron/protoactor-go/actor"
	pcluster "github.com/asynkron/protoactor-go/cluster"
	"go.uber.org/zap"
	"google.golang.org/protobuf/proto"

	"github.com/presenced/presenced/actors/actorpb"
	"github.com/presenced/presenced/cluster"
	"github.com/presenced/presenced/wire"
)

// UserProps makes the props of the user actors that are cluster grains: each one is its
// cluster identity.
func UserProps(d *Deps) *actor.Props {
	return actor.PropsFromProducer(func() actor.Actor {
		return &userActor{d: d, grain: true}
	}, WithMailbox(), actor.WithDispatcher(d.userDispatcher))
}

// spawnUser starts the local actor of user. All local user actors share one Props (a Props and
// its closure per user would cost a good part of an idle connection), so the actor learns who
// it is from its name, user/<id>/<n>, which also survives a restart after a panic. n makes each
// activation's name new: the previous one may still be stopping.
func (d *Deps) spawnUser(user string) *actor.PID {
	name := userPrefix + user + "/" + strconv.FormatUint(d.spawned.Add(1), 36)
	pid, err := d.System.Root.SpawnNamed(d.userProps, name)
	if err != nil {
		// Only a taken name fails, and n is new each time; say so rather than lose the user.
		d.Log.Error("spawning a user actor failed", zap.String("user", user), zap.Error(err))
	}
	return pid
}

const userPrefix = "user/"

// userFromName is the user in a local user actor's name (see spawnUser).
func userFromName(id string) string {
	id = strings.TrimPrefix(id, userPrefix)
	if i := strings.LastIndexByte(id, '/'); i >= 0 {
		return id[:i]
	}
	return id
}

// timerFired is a self-message from a due Deadline; it never leaves the node.
type timerFired struct{ t Timer }

// connGone is a self-message: a watched connection actor terminated.
type connGone struct{ conn ConnID }

// retryIO is a self-message: try the failed store write or publish again.
type retryIO struct{ gen uint64 }

// Republish asks a user actor to write and publish its state again under a new version (after
// the store or the bus lost data). It never leaves the node.
type Republish struct{}

// userTimer is one armed timer of a user actor, on the node's Deadlines; a user actor has at
// most one per kind and window. It is not reused: re-arming makes a new one, so fire reads only
// what was set before it was scheduled.
//
// It keeps what the message needs, not the Timer (its At is the Deadline's), and finds the
// actor's PID through the actor, whose d and self never change once it has started: 80 bytes,
// where the Timer and a root and a PID of its own took 112.
type userTimer struct {
	Deadline
	a      *userActor
	window string
	gen    uint64
	kind   TimerKind
}

func (ut *userTimer) fire() {
	ut.a.d.System.Root.Send(ut.a.self, timerFired{Timer{Kind: ut.kind, Window: ut.window, Gen: ut.gen}})
}

// userActor wraps User. All fields are owned by the actor's Receive, except that timers'
// callbacks (userTimer.fire, on the Deadlines' goroutines, and the I/O retry's AfterFunc) only Send.
//
// The flags are kept together at the end, so that they share one word (one actor per user).
type userActor struct {
	d      *Deps
	user   string
	self   *actor.PID
	rules  *User
	timers []*userTimer // a few at most (away, debounce, one per waiting window): a slice beats a map's buckets

	// Failed I/O is retried with backoff (ioPending, ioPublish below); the actor does not
	// retire while some is pending.
	ioGen   uint64
	ioRetry *ioRetry // while I/O is failing: nil the rest of the time, which is nearly always

	epoch uint64 // fencing epoch from Store.Acquire; 0 until the first write

	grain     bool // a cluster grain: its identity is the user; else its name says it (spawnUser)
	retiring  bool
	ioPending bool
	ioPublish bool // the pending work includes a publish
	isFenced  bool // a newer activation exists: this one does nothing more
}

func (a *userActor) Receive(ctx actor.Context) {
	switch m := ctx.Message().(type) {
	case *actor.Started:
		a.self = ctx.Self()
		if a.grain {
			a.user = pcluster.GetClusterIdentity(ctx).GetIdentity()
		} else {
			a.user = userFromName(a.self.GetId())
		}
		a.start(ctx)
	case *actor.Terminated:
		// A watched connection ended. Terminated is a system message and overtakes the
		// connection's own Detach (with its last-heard time) still in the mailbox, so queue it
		// behind: only a connection whose node died never sends that Detach.
		ctx.Send(a.self, connGone{ConnID{Address: m.GetWho().GetAddress(), ID: m.GetWho().GetId()}})
	case connGone:
		if w := a.rules.WindowOf(m.conn); w != "" && !a.retiring && !a.isFenced {
			now := time.Now()
			a.apply(ctx, a.rules.Detach(now, w, m.conn, false, now))
		}
	case *actor.Stopping:
		a.track(false)
		for _, t := range a.timers {
			t.Stop()
		}
		a.ioRetry.stop()
		if a.epoch != 0 {
			a.d.Leases.Release(a.user, a.epoch)
		}
	case leaseLost:
		if m.epoch == a.epoch && !a.isFenced {
			a.fenced()
		}
	case retryIO:
		if m.gen == a.ioGen && a.ioPending && !a.retiring && !a.isFenced {
			a.persistAndPublish(a.ioPublish)
			a.maybeRetire(ctx)
		}
	case Republish:
		if !a.retiring && !a.isFenced {
			a.apply(ctx, a.rules.Republish())
		}
	case *actorpb.Envelope:
		if m.GetVersion() > actorpb.EnvelopeVersion {
			a.logger().Warn("dropping a message from a newer envelope version", zap.Uint32("version", m.GetVersion()))
			return
		}
		if a.isFenced {
			// Never act again; answer a hello so its connection does not wait.
			if m.GetAttach() != nil {
				ctx.Respond(envelope(&actorpb.AttachReply{ErrorCode: wire.ErrInternal, CloseCode: wire.CloseInternal,
					ErrorMsg: "this user moved to another node: reconnect and resume"}))
			}
			return
		}
		if a.retiring {
			// Retired while this was queued: a new activation owns the user now.
			a.d.Placement.Send(a.user, m, ctx.Sender())
			return
		}
		a.onEnvelope(ctx, m)
	case timerFired:
		if i := a.timerIndex(m.t.Kind, m.t.Window); i >= 0 && a.timers[i].gen == m.t.Gen {
			a.timers = slices.Delete(a.timers, i, i+1)
		}
		if !a.retiring && !a.isFenced {
			eff := a.rules.Fire(time.Now(), m.t)
			if m.t.Kind == TimerDebounce && eff.Publish != nil {
				a.d.Metrics.DebounceFlush()
			}
			a.apply(ctx, eff)
		}
	}
}

// start loads the user's record and takes over its windows, once the actor knows who it is.
func (a *userActor) start(ctx actor.Context) {
	var eff Effects
	a.rules, eff = a.load()
	// Windows rebuilt from the store: learn which of their connections are gone.
	for _, c := range a.rules.Conns() {
		ctx.Watch(c.pid())
	}
	eff.Retire = false // activated for a message that is already in the mailbox
	a.d.Metrics.UserActivated()
	a.track(true)
	a.apply(ctx, eff)
}

// track records (or forgets) that this node hosts the user: locally for recovery broadcasts
// (unless the placement lists its actors itself), and in the store when this node is a cluster
// member.
func (a *userActor) track(on bool) {
	a.d.hosting(a.user, a.self, on)
	gt, ok := a.d.Store.(cluster.GrainTracker)
	if !ok || a.d.Member == "" {
		return
	}
	ctx, cancel := context.WithTimeout(context.Background(), a.d.ioTimeout())
	defer cancel()
	var err error
	if on {
		err = gt.Track(ctx, a.d.Member, a.user)
	} else {
		err = gt.Untrack(ctx, a.d.Member, a.user)
	}
	if err != nil {
		a.logger().Warn("recording where the user actor lives failed; if this node dies the user waits for its next message", zap.Error(err))
	}
}

// load rebuilds the rules from the store; a user never seen starts offline with no last seen.
func (a *userActor) load() (*User, Effects) {
	ctx, cancel := context.WithTimeout(context.Background(), a.d.ioTimeout())
	defer cancel()
	var rec actorpb.UserRecord
	b, err := a.d.Store.LoadUser(ctx, a.user)
	switch {
	case errors.Is(err, cluster.ErrNotFound):
	case err != nil:
		a.logger().Error("loading user record failed; starting from an empty record", zap.Error(err))
	default:
		if err := proto.Unmarshal(b, &rec); err != nil {
			a.logger().Error("user record does not decode; starting from an empty record", zap.Error(err))
		}
	}
	return RestoreUser(a.d.Users, stateFromPB(&rec), time.Now())
}

func (a *userActor) onEnvelope(ctx actor.Context, env *actorpb.Envelope) {
	now := time.Now()
	switch b := env.GetBody().(type) {
	case *actorpb.Envelope_Attach:
		var res AttachResult
		var eff Effects
		if b.Attach.GetReattach() {
			res, eff = a.rules.Reattach(now, b.Attach.GetResumeToken(), connID(b.Attach.GetConn()))
		} else {
			res, eff = a.rules.Attach(now, b.Attach.GetWindow(), b.Attach.GetResumeToken(), connID(b.Attach.GetConn()))
		}
		if res.Err == nil {
			// The verified name and list version travel with every hello: a rename shows at once.
			eff = eff.then(a.rules.Identify(now, b.Attach.GetLogin(), b.Attach.GetGraphVersion()))
		}
		reply := &actorpb.AttachReply{Ok: res.Err == nil, Window: res.Window, ResumeToken: res.Resume, Resumed: res.Resumed}
		if res.Err != nil {
			reply.ErrorCode, reply.ErrorMsg, reply.CloseCode = res.Err.Code, res.Err.Msg, uint32(res.Err.Close)
		}
		ctx.Respond(envelope(reply))
		if res.Err == nil {
			a.d.watchPeer(ctx, connID(b.Attach.GetConn()).pid())
		}
		a.apply(ctx, eff)
	case *actorpb.Envelope_Status:
		s := b.Status
		st := wire.Status{}
		if s.Activity != nil {
			st.Has |= wire.FieldActivity
			st.Activity = wire.Activity(s.GetActivity())
		}
		if s.Project != nil {
			st.Has |= wire.FieldProject
			st.Project = s.GetProject()
		}
		if s.Language != nil {
			st.Has |= wire.FieldLanguage
			st.Language = s.GetLanguage()
		}
		a.apply(ctx, a.rules.Status(now, s.GetWindow(), connID(s.GetConn()), st))
	case *actorpb.Envelope_Invisible:
		v := b.Invisible
		a.apply(ctx, a.rules.SetInvisible(now, v.GetWindow(), connID(v.GetConn()), v.GetOn()))
	case *actorpb.Envelope_Privacy:
		v := b.Privacy
		a.apply(ctx, a.rules.SetPrivacy(now, v.GetWindow(), connID(v.GetConn()),
			PrivacyChange{Mutual: v.Mutual, ShareProject: v.ShareProject, ShareLanguage: v.ShareLanguage}))
	case *actorpb.Envelope_GraphChanged:
		a.apply(ctx, a.rules.GraphChanged(now, b.GraphChanged.GetVersion()))
	case *actorpb.Envelope_Wake:
		// Activation was the point: the restore already watched the windows' connections.
	case *actorpb.Envelope_Detach:
		d := b.Detach
		a.apply(ctx, a.rules.Detach(now, d.GetWindow(), connID(d.GetConn()), d.GetBye(), time.UnixMilli(d.GetLastHeardMs())))
	default:
		a.logger().Warn("user actor dropping a message it does not handle", zap.String("type", typeName(env)))
	}
}

// apply carries out effects in the order the rules promise: persist, publish, kick, timers, retire.
func (a *userActor) apply(ctx actor.Context, eff Effects) {
	if eff.Persist || eff.Publish != nil {
		a.persistAndPublish(eff.Publish != nil || (a.ioPending && a.ioPublish))
	}
	for _, k := range eff.Kicks {
		ctx.Send(k.Conn.pid(), envelope(&actorpb.Kick{CloseCode: uint32(k.Close), ErrorCode: k.Code, Msg: k.Msg}))
	}
	for _, t := range eff.Timers {
		a.arm(t)
	}
	if eff.Retire {
		a.maybeRetire(ctx)
	}
}

// maybeRetire passivates the actor when the rules are idle and nothing waits to be written.
func (a *userActor) maybeRetire(ctx actor.Context) {
	if a.rules.Idle() && !a.ioPending && a.d.Placement.Retire(a.user, a.self) {
		a.retiring = true
		ctx.Poison(a.self)
	}
}

// persistAndPublish writes the record and the public presence, then publishes the presence when
// asked. A failure is logged once and retried with backoff (100 ms doubling to 10 s): the node
// keeps serving while Redis is away and converges when it is back.
func (a *userActor) persistAndPublish(publish bool) {
	ctx, cancel := context.WithTimeout(context.Background(), a.d.ioTimeout())
	defer cancel()
	cur := presenceToPB(a.user, a.rules.Published())
	if publish {
		cur.PublishedUs = time.Now().UnixMicro() // flush-to-write is measured from it, and --stamp-flush sends it as "ft"
	}
	rec, err := proto.Marshal(stateToPB(a.user, a.rules.State()))
	if err != nil {
		a.logger().Error("marshal user record", zap.Error(err))
		return
	}
	payload, err := proto.Marshal(envelope(cur))
	if err != nil {
		a.logger().Error("marshal presence", zap.Error(err))
		return
	}
	err = a.write(ctx, rec, payload, publish)
	if errors.Is(err, cluster.ErrFenced) {
		a.fenced()
		return
	}
	if err != nil {
		if !a.ioPending {
			a.logger().Warn("writing presence failed; retrying until it works", zap.Error(err))
		}
		a.ioPending, a.ioPublish = true, publish
		if a.ioRetry == nil {
			a.ioRetry = &ioRetry{}
		}
		r := a.ioRetry
		r.stop()
		r.backoff = min(max(2*r.backoff, 100*time.Millisecond), 10*time.Second)
		a.ioGen++
		root, self, gen := a.d.System.Root, a.self, a.ioGen
		r.timer = time.AfterFunc(r.backoff, func() { root.Send(self, retryIO{gen}) })
		return
	}
	if publish {
		a.d.Metrics.DeltaPublished()
	}
	if a.ioPending {
		a.logger().Info("writing presence works again")
	}
	a.ioPending, a.ioPublish = false, false
	a.ioRetry.stop()
	a.ioRetry = nil
}

// ioRetry is the backoff of failed I/O. A stale retry that fires anyway carries an old
// generation (ioGen stays in the actor, so a new ioRetry cannot reuse one).
type ioRetry struct {
	backoff time.Duration
	timer   *time.Timer
}

func (r *ioRetry) stop() {
	if r != nil && r.timer != nil {
		r.timer.Stop()
	}
}

// write acquires the user on the first write, then saves (and publishes) under its epoch, in one
// atomic step when the store can.
func (a *userActor) write(ctx context.Context, rec, payload []byte, publish bool) error {
	if a.epoch == 0 {
		e, err := a.d.Store.Acquire(ctx, a.user)
		if err != nil {
			return err
		}
		a.epoch = e
		a.d.Leases.Hold(a.user, e, a.self)
	}
	if ap, ok := a.d.Store.(cluster.AtomicPublisher); ok && publish {
		return ap.SaveAndPublish(ctx, a.user, a.epoch, rec, payload)
	}
	if err := a.d.Store.SaveUser(ctx, a.user, a.epoch, rec, payload); err != nil || !publish {
		return err
	}
	return a.d.Bus.Publish(ctx, a.user, payload)
}

// fenced: a newer activation of this user exists (double activation). This one must never write
// again: it closes its windows' sockets so their clients resume where the user lives now, and
// stops.
func (a *userActor) fenced() {
	a.logger().Warn("a newer activation took this user over: closing this one's windows and stopping")
	a.d.Metrics.LeaseLost()
	for _, c := range a.rules.Conns() {
		a.d.System.Root.Send(c.pid(), envelope(&actorpb.Kick{CloseCode: uint32(wire.CloseInternal), ErrorCode: wire.ErrInternal,
			Msg: "your session moved to another node: reconnect and resume"}))
	}
	a.ioPending = false
	a.isFenced = true
	a.d.Placement.Retire(a.user, a.self)
	a.d.System.Root.Poison(a.self)
}

// arm schedules t on the node's Deadlines (one time.AfterFunc per shard, not per timer): when
// due it sends a generation-stamped message to the actor; the rules ignore stale generations,
// so replacing a timer only saves work.
func (a *userActor) arm(t Timer) {
	ut := &userTimer{a: a, window: t.Window, gen: t.Gen, kind: t.Kind}
	a.d.Deadlines.Init(&ut.Deadline, ut.fire)
	ut.Reset(t.At)
	if i := a.timerIndex(t.Kind, t.Window); i >= 0 {
		a.timers[i].Stop()
		a.timers[i] = ut
		return
	}
	a.timers = append(a.timers, ut)
}

// timerIndex finds the armed timer of kind for window (empty for the user's own), or -1.
func (a *userActor) timerIndex(kind TimerKind, window string) int {
	for i, ut := range a.timers {
		if ut.kind == kind && ut.window == window {
			return i
		}
	}
	return -1
}

// logger names the user; see connActor.logger for why the field is not kept.
func (a *userActor) logger() *zap.Logger { return a.d.Log.With(zap.String("user", a.user)) }
