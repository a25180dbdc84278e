package actors

import (
	"context"
	"strconv"
	"time"

	"github.com/asynkron/protoactor-go/actor"
	"go.uber.org/zap"
	"google.golang.org/protobuf/proto"

	"github.com/presenced/presenced/actors/actorpb"
	"github.com/presenced/presenced/auth"
	"github.com/presenced/presenced/metrics"
	"github.com/presenced/presenced/wire"
)

// Socket is the connection actor's way to its client. The server implements it over a
// WebSocket. Both methods are called from the actor's Receive and must not block.
type Socket interface {
	// Write queues one encoded text frame. The slice may be shared with other sockets (one
	// change's frame goes to many followers): it must never be modified.
	Write(frame []byte)
	// Close queues an error frame (when code != "") and a close after what is queued.
	Close(closeCode int, code, msg string)
}

// Inbound carries one decoded client frame (after hello) from the socket reader to the actor.
// It never leaves the node, so it is a plain Go value.
type Inbound struct{ Frame wire.Frame }

// SocketClosed tells the actor its socket is gone; LastHeard is when the client was last heard
// from (the last seen of a drop).
type SocketClosed struct{ LastHeard time.Time }

// Resync asks a connection actor to re-read the store for the users it follows and send what
// changed (after the bus may have lost messages).
type Resync struct{}

// FollowingChanged tells a connection actor that its user's follow list changed (a graph
// refresh): the view follows the new list and the client gets a new sync. Local to the node.
type FollowingChanged struct {
	Following []auth.Followee
	Version   uint64
}

// ConnSpec is what the server knows when it spawns a connection actor: who the client is (from
// its verified token), whom it follows, and the two fields of its hello the actor uses. The
// spec lives as long as its connection (a restart starts from it), so it holds no more: not the
// hello's token, and 16 bytes fewer than the whole wire.Hello (the 128-byte size class, not 144).
type ConnSpec struct {
	User         string     // internal user key (GitHub id)
	Login        string     // name shown on the wire
	Following    []Followed // users this user follows, no duplicates, not the user (see Follow)
	GraphVersion uint64     // version of the cached following list
	Window       string     // the hello's window id; empty: the user actor makes one
	Resume       string     // the hello's resume token; empty: a new window
	// HelloAt is when the hello frame was read (unix ns), for the hello-to-sync latency; zero:
	// when the actor started (which leaves out authentication and the follow list). A restarted
	// actor attaching its window again sets it negative: helloRestart once its hello was
	// counted, which the hello metrics then leave out; minus the hello's time for a fresh hello
	// not yet counted (the actor panicked while answering it), which still counts as a hello,
	// not as the resume the restart's attach is. Unix ns, not a time.Time: the spec lives as
	// long as its connection.
	HelloAt int64
	Socket  Socket
	// Stopped, when not nil, is called once the actor has stopped (the server joins it).
	Stopped func()
}

// helloRestart is ConnSpec.HelloAt of a restarted connection actor's spec.
const helloRestart = -1

// maxPending bounds the frames a client may send between hello and welcome; the rate limit
// keeps an honest client far below it.
const maxPending = 64

// SpawnConn starts the connection actor of spec. Every connection actor shares one Props (a
// Props, its closure and a middleware per socket would cost a good part of an idle connection):
// the actor takes its spec by its name, conn/<boot>/<n>, from the node's map of specs at start;
// a restart hands it back there first, for the new instance to take. So the map holds only
// actors about to start, not every connection.
// User records keep their windows' connection ids, so an id must never come back: a counter
// alone would (a restarted node counts from 1 again, at the same address), hence boot, random
// per node start.
func SpawnConn(d *Deps, spec ConnSpec) *actor.PID {
	name := "conn/" + d.boot + "/" + strconv.FormatUint(d.spawned.Add(1), 36)
	d.specsMu.Lock()
	d.specs[name] = &spec
	d.specsMu.Unlock()
	pid, err := d.System.Root.SpawnNamed(d.connProps, name)
	if err != nil {
		// Only a taken name fails, and n is new each time.
		d.Log.Error("spawning a connection actor failed", zap.Error(err))
	}
	return pid
}

// takeSpec removes and returns the spec waiting for connection actor id; nil when none is.
func (d *Deps) takeSpec(id string) *ConnSpec {
	d.specsMu.Lock()
	defer d.specsMu.Unlock()
	spec := d.specs[id]
	delete(d.specs, id)
	return spec
}

// putSpec leaves spec for the next instance of connection actor id (a restart).
func (d *Deps) putSpec(id string, spec *ConnSpec) {
	d.specsMu.Lock()
	defer d.specsMu.Unlock()
	d.specs[id] = spec
}

// connActor wraps a View; all fields are owned by Receive.
//
// The flags are kept together, so that they share one word (one actor per connection).
type connActor struct {
	d    *Deps
	spec *ConnSpec // handed to the next instance on a restart, so that one starts from what it became
	view *View
	self *actor.PID

	attached   bool // the user actor gave us the window
	failed     bool // the user actor refused the hello
	subscribed bool
	closed     bool // the socket is gone
	detached   bool // the user actor was told the window's socket ended
	kicked     bool // the user actor closed this socket: never look for it again
	counted    bool // the hello's result is in the metrics

	window    string // set when attached
	lastHeard int64  // unix ns, set with closed
	pending   []wire.Frame

	userPID     *actor.PID // the user actor that answered the hello (watched)
	token       string     // this window's current resume token
	reattaching uint64     // > 0 while looking for a moved user actor: the attempt's generation

	// followsMe caches, per mutual-only followed user, whether they follow this user back, at
	// the version of their list the answer was read for.
	followsMe map[string]followsBack
}

type followsBack struct {
	version uint64
	ok      bool
}

// reattachRetry is a self-message: no answer to a reattach yet, try again.
type reattachRetry struct{ gen uint64 }

// reattachEvery is how often a connection asks again for a user actor that moved.
const reattachEvery = time.Second

func (c *connActor) Receive(ctx actor.Context) {
	if c.spec == nil {
		switch ctx.Message().(type) {
		case *actor.Started, *actor.Stopped:
		default:
			return // its spec is gone (stopped before it started): nothing to do
		}
	}
	switch m := ctx.Message().(type) {
	case *actor.Started:
		c.self = ctx.Self()
		spec := c.d.takeSpec(c.self.GetId())
		if spec == nil {
			return
		}
		if spec.HelloAt == 0 {
			spec.HelloAt = time.Now().UnixNano()
		}
		c.spec, c.view = spec, NewView(spec.Following)
		c.d.Placement.Send(c.spec.User, envelope(&actorpb.Attach{
			User: c.spec.User, Window: c.spec.Window, ResumeToken: c.spec.Resume, Conn: connRef(c.self),
			Login: c.spec.Login, GraphVersion: c.spec.GraphVersion,
		}), c.self)
	case *actor.Restarting:
		if c.attached {
			// The next instance asks for this window again, as this same connection resuming it
			// with its current token: the original hello would open a second window (or fail, its
			// resume token spent) while this one stayed held. The client gets a welcome with the
			// new token, and a sync for the view this instance loses.
			switch {
			case c.counted:
				c.spec.HelloAt = helloRestart
			case c.spec.Resume == "":
				c.spec.HelloAt = -c.spec.HelloAt // a fresh hello, to be counted as one
			}
			c.spec.Window, c.spec.Resume = c.window, c.token
		}
		c.d.putSpec(c.self.GetId(), c.spec)
	case *actor.Stopping:
		c.release()
	case *actor.Stopped:
		c.d.takeSpec(c.self.GetId()) // none, unless it stopped while restarting
		if c.spec != nil && c.spec.Stopped != nil {
			c.spec.Stopped()
		}
	case Inbound:
		c.onInbound(ctx, m.Frame)
	case *actor.Terminated:
		// The user actor stopped: on a node that died, or drained. Find where it lives now.
		if c.userPID != nil && m.GetWho().Equal(c.userPID) && c.attached && !c.closed && !c.detached && !c.kicked {
			c.reattach()
		}
	case reattachRetry:
		if m.gen == c.reattaching && !c.closed && !c.kicked {
			c.reattach()
		}
	case FollowingChanged:
		c.onFollowingChanged(m)
	case Resync:
		if c.subscribed {
			if err := c.resync(); err != nil {
				c.logger().Warn("resync failed; the next bus recovery retries", zap.Error(err))
			}
		}
	case SocketClosed:
		c.closed, c.lastHeard = true, sinceEpoch(m.LastHeard, time.Nanosecond)
		c.finish(ctx)
	case *Delivery:
		if b, t, ok := c.view.Deliver(m, c.visible); ok {
			c.write(t, b)
			c.d.Metrics.FlushToWrite(m.Update.GetPublishedUs())
		}
	case *actorpb.Envelope:
		if m.GetVersion() > actorpb.EnvelopeVersion {
			c.logger().Warn("dropping a message from a newer envelope version", zap.Uint32("version", m.GetVersion()))
			return
		}
		switch b := m.GetBody().(type) {
		case *actorpb.Envelope_AttachReply:
			if c.reattaching > 0 {
				c.onReattached(ctx, b.AttachReply)
				return
			}
			c.onAttached(ctx, b.AttachReply)
		case *actorpb.Envelope_Kick:
			c.kicked = true
			k := b.Kick
			c.spec.Socket.Close(int(k.GetCloseCode()), k.GetErrorCode(), k.GetMsg())
		default:
			c.logger().Warn("connection actor dropping a message it does not handle", zap.String("type", typeName(m)))
		}
	}
}

func (c *connActor) onInbound(ctx actor.Context, f wire.Frame) {
	if c.closed || c.failed || c.detached {
		return
	}
	if !c.attached {
		if len(c.pending) < maxPending {
			c.pending = append(c.pending, f)
		}
		return
	}
	switch f := f.(type) {
	case wire.Status:
		s := &actorpb.StatusReport{Window: c.window, Conn: connRef(c.self)}
		if f.Has&wire.FieldActivity != 0 {
			a := int32(f.Activity)
			s.Activity = &a
		}
		if f.Has&wire.FieldProject != 0 {
			s.Project = proto.String(f.Project)
		}
		if f.Has&wire.FieldLanguage != 0 {
			s.Language = proto.String(f.Language)
		}
		c.d.Placement.Send(c.spec.User, envelope(s), nil)
	case wire.Invisible:
		c.d.Placement.Send(c.spec.User, envelope(&actorpb.SetInvisible{Window: c.window, On: f.On, Conn: connRef(c.self)}), nil)
	case wire.Privacy:
		p := &actorpb.SetPrivacy{Window: c.window, Conn: connRef(c.self)}
		if f.Has&wire.PrivacyVisibleTo != 0 {
			p.Mutual = proto.Bool(f.VisibleTo == wire.AudienceMutual)
		}
		if f.Has&wire.PrivacyShareProject != 0 {
			p.ShareProject = proto.Bool(f.ShareProject)
		}
		if f.Has&wire.PrivacyShareLanguage != 0 {
			p.ShareLanguage = proto.Bool(f.ShareLanguage)
		}
		c.d.Placement.Send(c.spec.User, envelope(p), nil)
	case wire.Ping:
		// Pong goes through the actor on purpose: it follows every frame queued before the ping.
		c.send(wire.Pong{})
	case wire.Bye:
		c.detached = true
		c.d.Placement.Send(c.spec.User, envelope(&actorpb.Detach{Window: c.window, Conn: connRef(c.self), Bye: true}), nil)
		c.spec.Socket.Close(wire.CloseNormal, "", "")
	}
}

// onAttached answers the hello: welcome and sync, or the refusal. The hello counts once here,
// ok once its sync is queued (a socket that closed before the answer is not counted). A
// restarted actor's attach is not a hello and counts nowhere, unless the actor panicked before
// its hello was counted: then that hello counts, as what the client sent (see HelloAt).
func (c *connActor) onAttached(ctx actor.Context, r *actorpb.AttachReply) {
	at := c.spec.HelloAt
	resume, counts := c.spec.Resume != "" && at > 0, at != helloRestart
	hello := func(result string) {
		if counts {
			c.d.Metrics.Hello(resume, result)
		}
		c.counted = true // a restart from here on attaches without counting again
	}
	if !r.GetOk() {
		hello(r.GetErrorCode())
		c.failed = true
		c.spec.Socket.Close(int(r.GetCloseCode()), r.GetErrorCode(), r.GetErrorMsg())
		c.finish(ctx)
		return
	}
	c.attached, c.window, c.token = true, r.GetWindow(), r.GetResumeToken()
	c.watchUser(ctx)
	if c.closed {
		c.finish(ctx)
		return
	}
	c.send(wire.Welcome{ID: c.spec.Login, Resume: r.GetResumeToken(), Resumed: r.GetResumed()})
	if err := c.sync(); err != nil {
		hello(wire.ErrInternal)
		c.logger().Error("sync failed; closing so the client resumes", zap.Error(err))
		c.spec.Socket.Close(wire.CloseInternal, wire.ErrInternal, "could not load your network; reconnect and resume")
		return
	}
	hello(metrics.ResultOK)
	if counts {
		c.d.Metrics.HelloToSync(time.Unix(0, max(at, -at)))
	}
	pending := c.pending
	c.pending = nil
	for _, f := range pending {
		c.onInbound(ctx, f)
	}
}

// watchUser watches the user actor that just answered, to learn when it stops (see watchPeer).
func (c *connActor) watchUser(ctx actor.Context) {
	if s := ctx.Sender(); s != nil {
		c.userPID = s
		c.d.watchPeer(ctx, s)
	}
}

// reattach asks for this window's user actor again, with this connection's token, and retries
// until it answers.
func (c *connActor) reattach() {
	c.reattaching++
	c.d.Placement.Send(c.spec.User, envelope(&actorpb.Attach{User: c.spec.User, Window: c.window, ResumeToken: c.token,
		Conn: connRef(c.self), Reattach: true, Login: c.spec.Login, GraphVersion: c.spec.GraphVersion}), c.self)
	root, self, gen := c.d.System.Root, c.self, c.reattaching
	time.AfterFunc(reattachEvery, func() { root.Send(self, reattachRetry{gen}) })
}

func (c *connActor) onReattached(ctx actor.Context, r *actorpb.AttachReply) {
	c.reattaching = 0
	if !r.GetOk() {
		c.logger().Info("user actor moved and lost this window; closing so the client says hello again")
		c.spec.Socket.Close(int(r.GetCloseCode()), r.GetErrorCode(), r.GetErrorMsg())
		return
	}
	c.watchUser(ctx)
}

// sync subscribes first and reads the store second, so a change published in between reaches
// the view as an update newer than the snapshot.
func (c *connActor) sync() error {
	ctx, cancel := context.WithTimeout(context.Background(), c.d.ioTimeout())
	defer cancel()
	if err := c.d.Fanout.Subscribe(ctx, c.view.Following(), c.self); err != nil {
		return err
	}
	c.subscribed = true
	recs, err := c.load(ctx)
	if err != nil {
		return err
	}
	c.send(c.view.Sync(recs, c.visible))
	return nil
}

// onFollowingChanged moves the view to the user's new follow list: subscriptions follow it,
// and the client gets a whole new sync (the only frame that can remove a user from its view).
// Before the welcome only the list changes: the coming sync uses it.
func (c *connActor) onFollowingChanged(m FollowingChanged) {
	if m.Version <= c.spec.GraphVersion || c.closed || c.kicked {
		return
	}
	c.spec.GraphVersion = m.Version
	following := Follow(m.Following, c.spec.User)
	if !c.subscribed {
		c.spec.Following = following
		c.view = NewView(following)
		return
	}
	added, removed := c.view.SetFollowing(following)
	ctx, cancel := context.WithTimeout(context.Background(), c.d.ioTimeout())
	defer cancel()
	c.d.Fanout.Unsubscribe(ctx, removed, c.self)
	err := c.d.Fanout.Subscribe(ctx, added, c.self)
	var recs []*actorpb.PresenceUpdate
	if err == nil {
		recs, err = c.load(ctx)
	}
	if err != nil {
		c.logger().Error("following the new follow list failed; closing so the client resumes", zap.Error(err))
		c.spec.Socket.Close(wire.CloseInternal, wire.ErrInternal, "could not load your network; reconnect and resume")
		return
	}
	c.send(c.view.Sync(recs, c.visible))
}

// visible decides whether this view's user may see a published presence: always, unless its
// user shows itself to mutual followers only; then only if that user follows this one back,
// per their cached list at the version the publish names (asked once per version).
func (c *connActor) visible(up *actorpb.PresenceUpdate) bool {
	if !up.GetMutual() {
		return true
	}
	if fb, ok := c.followsMe[up.GetUser()]; ok && fb.version == up.GetGraphVersion() {
		return fb.ok
	}
	c.askFollowsMe([]*actorpb.PresenceUpdate{up})
	return c.followsMe[up.GetUser()].ok
}

// askFollowsMe reads, in one call, whether the mutual-only users among recs follow this user
// back. A failure hides them (fail closed) until their next publish asks again.
func (c *connActor) askFollowsMe(recs []*actorpb.PresenceUpdate) {
	var users []string
	var versions []uint64
	for _, r := range recs {
		if r == nil || !r.GetMutual() {
			continue
		}
		if fb, ok := c.followsMe[r.GetUser()]; ok && fb.version == r.GetGraphVersion() {
			continue
		}
		users, versions = append(users, r.GetUser()), append(versions, r.GetGraphVersion())
	}
	if len(users) == 0 {
		return
	}
	if c.followsMe == nil {
		c.followsMe = map[string]followsBack{}
	}
	ctx, cancel := context.WithTimeout(context.Background(), c.d.ioTimeout())
	defer cancel()
	back, err := c.d.Follows.FollowedBy(ctx, c.spec.User, users)
	if err != nil {
		c.logger().Warn("could not read who follows this user back; hiding mutual-only users for now", zap.Error(err))
		for _, u := range users {
			delete(c.followsMe, u)
		}
		return
	}
	for i, u := range users {
		c.followsMe[u] = followsBack{version: versions[i], ok: back[i]}
	}
}

// resync applies the stored presences as updates: only what is newer than the view is sent.
func (c *connActor) resync() error {
	ctx, cancel := context.WithTimeout(context.Background(), c.d.ioTimeout())
	defer cancel()
	recs, err := c.load(ctx)
	if err != nil {
		return err
	}
	for _, r := range recs {
		if r == nil {
			continue
		}
		if f, ok := c.view.Apply(r, c.visible); ok {
			c.send(f)
		}
	}
	return nil
}

// load reads the stored presences of the followed users in one call (nil where unknown).
func (c *connActor) load(ctx context.Context) ([]*actorpb.PresenceUpdate, error) {
	ids := c.view.Following()
	raw, err := c.d.Store.Presences(ctx, ids)
	if err != nil {
		return nil, err
	}
	// Every hello and resume reads these (a login storm, thousands a second), so the records
	// share one array, and one envelope is decoded into again and again: merging into an update
	// body already in place takes 3 allocations a record (its strings) instead of 6.
	recs := make([]*actorpb.PresenceUpdate, len(raw))
	updates := make([]actorpb.PresenceUpdate, len(raw))
	env, body := &actorpb.Envelope{}, &actorpb.Envelope_Update{}
	merge := proto.UnmarshalOptions{Merge: true}
	for i, b := range raw {
		if b == nil {
			continue
		}
		proto.Reset(env)
		body.Update = &updates[i]
		env.Body = body
		if err := merge.Unmarshal(b, env); err != nil {
			c.logger().Warn("stored presence does not decode; showing the user offline", zap.String("followed", ids[i]), zap.Error(err))
			continue
		}
		recs[i] = env.GetUpdate() // nil for another body: offline, as for none
	}
	c.askFollowsMe(recs)
	return recs, nil
}

// finish ends the actor once the socket is gone and the hello is settled. A close without bye
// is a drop: the window waits for a resume.
func (c *connActor) finish(ctx actor.Context) {
	if !c.closed || (!c.attached && !c.failed) {
		return // the socket is still open, or the user actor has not answered the hello yet
	}
	ctx.Stop(c.self) // Stopping releases the window and the subscriptions
}

// release lets go of what the actor holds as it stops, however it was stopped (its socket
// ended, the server gave up waiting for it, the node shuts down): the window is detached, so it
// waits for a resume as after any drop, and the fanout forgets this follower. A kicked socket was
// replaced or its user actor was fenced: the window is someone else's business now, and a
// Detach would only wake a stale activation.
func (c *connActor) release() {
	if c.attached && !c.detached && !c.kicked {
		c.detached = true
		heard := fromEpoch(c.lastHeard, time.Nanosecond)
		if heard.IsZero() {
			heard = time.Now() // stopped from outside: its SocketClosed, if sent, is queued behind the stop
		}
		c.d.Placement.Send(c.spec.User, envelope(&actorpb.Detach{
			Window: c.window, Conn: connRef(c.self), LastHeardMs: heard.UnixMilli(),
		}), nil)
	}
	if c.subscribed {
		c.subscribed = false
		ctx, cancel := context.WithTimeout(context.Background(), c.d.ioTimeout())
		c.d.Fanout.Unsubscribe(ctx, c.view.Following(), c.self)
		cancel()
	}
}

// send encodes f and queues it for the client.
func (c *connActor) send(f wire.Frame) { c.write(metrics.FrameType(f), wire.Encode(f)) }

// write queues an encoded frame of type t (its "t" on the wire) for the client, counted.
func (c *connActor) write(t string, b []byte) {
	c.d.Metrics.FrameOut(t)
	c.spec.Socket.Write(b)
}

// logger names the user and the connection. The fields are added per line, not kept: zap's
// With clones the encoder (a 1 KiB buffer), which would cost more than an idle connection.
func (c *connActor) logger() *zap.Logger {
	return c.d.Log.With(zap.String("user", c.spec.User), zap.String("window", c.window), zap.String("conn", c.self.GetId()))
}
