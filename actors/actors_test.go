package actors

import (
	"context"
	"log/slog"
	"reflect"
	"sync/atomic"
	"testing"
	"testing/synctest"
	"time"

	"github.com/asynkron/protoactor-go/actor"
	"github.com/prometheus/client_golang/prometheus"
	"go.uber.org/goleak"
	"go.uber.org/zap"
	"google.golang.org/protobuf/proto"

	"github.com/presenced/presenced/actors/actorpb"
	"github.com/presenced/presenced/auth"
	"github.com/presenced/presenced/cluster"
	"github.com/presenced/presenced/metrics"
	"github.com/presenced/presenced/testkit/leak"
	"github.com/presenced/presenced/wire"
)

func TestMain(m *testing.M) {
	goleak.VerifyTestMain(m, leak.Options()...)
}

// socket records what a connection actor writes; it stands where the server's WebSocket would.
type socket struct {
	frames chan wire.Frame
	closes chan int
}

func newSocket() *socket {
	return &socket{frames: make(chan wire.Frame, 64), closes: make(chan int, 4)}
}

func (s *socket) Write(b []byte) {
	f, err := wire.DecodeServer(b)
	if err != nil {
		panic(err) // the server must never write a frame its own decoder rejects
	}
	s.frames <- f
}

func (s *socket) Close(code int, _, _ string) { s.closes <- code }

func (s *socket) next(t *testing.T) wire.Frame {
	t.Helper()
	select {
	case f := <-s.frames:
		return f
	case <-time.After(time.Hour):
		t.Fatal("no frame")
		return nil
	}
}

// wantNone fails if s holds a frame: call it once the bubble is idle (synctest.Wait). msg
// says what a frame would mean, with a %#v for it.
func (s *socket) wantNone(t *testing.T, msg string) {
	t.Helper()
	if len(s.frames) != 0 {
		t.Fatalf(msg, <-s.frames)
	}
}

type world struct {
	system    *actor.ActorSystem
	deps      *Deps
	placement *cluster.LocalPlacement
}

func newWorld() *world { return newWorldWith(cluster.NewMemoryStore()) }

// newMeteredWorld is newWorld with its metrics in a registry of their own.
func newMeteredWorld() (*world, *prometheus.Registry) {
	w, reg := newWorld(), prometheus.NewRegistry()
	w.deps.Metrics = metrics.New(reg)
	return w, reg
}

func newWorldWith(store cluster.Store) *world {
	system := actor.NewActorSystem(actor.WithLoggerFactory(func(*actor.ActorSystem) *slog.Logger { return slog.New(slog.DiscardHandler) }))
	d, p := NewLocalDeps(system, store, func(d cluster.Deliver) cluster.Bus { return cluster.NewMemoryBus(d) },
		DefaultUserConfig(), zap.NewNop())
	return &world{system: system, deps: d, placement: p}
}

// connect spawns a connection actor and returns its socket after welcome and sync.
func (w *world) connect(t *testing.T, user string, following ...string) (*actor.PID, *socket, wire.Welcome) {
	t.Helper()
	s := newSocket()
	pid := SpawnConn(w.deps, ConnSpec{User: user, Login: user, Following: followees(following...), Socket: s})
	wel, ok := s.next(t).(wire.Welcome)
	if !ok {
		t.Fatal("want welcome")
	}
	if _, ok := s.next(t).(wire.Sync); !ok {
		t.Fatal("want sync")
	}
	return pid, s, wel
}

// followees makes a dev-style follow list: ids are the logins.
func followees(names ...string) []Followed {
	out := make([]auth.Followee, len(names))
	for i, n := range names {
		out[i] = auth.Followee{ID: n, Login: n}
	}
	return Follow(out, "")
}

func (w *world) stop(t *testing.T, pids ...*actor.PID) {
	for _, p := range pids {
		_ = w.system.Root.StopFuture(p).Wait()
	}
	w.placement.Close()
	// Messages to stopped actors start Proto.Actor's dead-letter log throttle, a goroutine that
	// waits out one 1 s period: let it pass (virtual time) so the bubble ends empty.
	time.Sleep(2 * time.Second)
}

// TestConnActorRestartKeepsItsWindow: a connection actor restarted after a panic resumes the
// window it held, with its current token, instead of opening a second one beside it. The client
// gets a welcome that says resumed, with a new token, and a sync; its subscriptions are not
// doubled; and when it says bye its follower sees it offline at once, since no window is left
// held by the same connection.
func TestConnActorRestartKeepsItsWindow(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		w, reg := newMeteredWorld()
		alice, as, _ := w.connect(t, "alice", "bob")
		s := &panicky{socket: newSocket()}
		bob := SpawnConn(w.deps, ConnSpec{User: "bob", Login: "bob", Following: followees("carol"), Socket: s})
		first, ok := s.next(t).(wire.Welcome)
		if !ok {
			t.Fatal("want welcome")
		}
		if _, ok := s.next(t).(wire.Sync); !ok {
			t.Fatal("want sync")
		}
		if f := as.next(t); f != (wire.Online{ID: "bob", Presence: wire.Presence{State: wire.StateOnline}}) {
			t.Fatalf("alice got %#v, want bob online", f)
		}
		s.armed.Store(true) // carol's online frame panics in bob's actor
		carol, cs, _ := w.connect(t, "carol")
		again, ok := s.next(t).(wire.Welcome)
		if !ok || again.ID != "bob" || !again.Resumed || again.Resume == "" || again.Resume == first.Resume {
			t.Fatalf("after the restart bob got %#v, want a resumed welcome with a new token (the first: %q)", again, first.Resume)
		}
		if sy, ok := s.next(t).(wire.Sync); !ok || len(sy.Users) != 1 || sy.Users[0].Username != "carol" || sy.Users[0].Presence.State != wire.StateOnline {
			t.Fatalf("after the restart bob got %#v, want a sync with carol online", sy)
		}
		w.system.Root.Send(carol, Inbound{Frame: wire.Bye{}})
		if code := <-cs.closes; code != wire.CloseNormal {
			t.Fatalf("carol's close %d", code)
		}
		if x, ok := s.next(t).(wire.Offline); !ok || x.ID != "carol" {
			t.Fatalf("bob got %#v, want carol offline", x)
		}
		synctest.Wait()
		s.wantNone(t, "bob got %#v after carol's x: subscribed twice")
		as.wantNone(t, "alice got %#v: bob's restart showed")
		w.system.Root.Send(bob, Inbound{Frame: wire.Bye{}})
		if code := <-s.closes; code != wire.CloseNormal {
			t.Fatalf("bob's close %d", code)
		}
		if x, ok := as.next(t).(wire.Offline); !ok || x.ID != "bob" || x.TS == 0 {
			t.Fatalf("alice got %#v after bob's bye, want bob offline with last seen", x)
		}
		// Three hellos (alice, bob, carol), none of them a resume: the restart's attach is not one.
		wantSamples(t, reg, map[string]float64{`presenced_hellos_total{result="ok"}`: 3, `presenced_resumes_total{result="ok"}`: 0, "presenced_hello_to_sync_seconds_count": 3})
		w.stop(t, alice, bob, carol)
	})
}

// TestConnActorRestartAtItsWelcome: a connection actor that panics writing its first welcome
// (attached, its hello not yet answered) comes back holding the same window: the client gets a
// resumed welcome and a sync, its follower sees it come online once, it is subscribed once,
// and its hello counts once, as a hello, not a resume. A resume that panics the same way counts
// once, as a resume.
func TestConnActorRestartAtItsWelcome(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		w, reg := newMeteredWorld()
		carol, cs, _ := w.connect(t, "carol", "bob")
		s := &panicky{socket: newSocket()}
		s.armed.Store(true) // the welcome's write panics
		bob := SpawnConn(w.deps, ConnSpec{User: "bob", Login: "bob", Following: followees("alice"), Socket: s})
		wel, ok := s.next(t).(wire.Welcome)
		if !ok || wel.ID != "bob" || !wel.Resumed || wel.Resume == "" {
			t.Fatalf("bob got %#v, want a resumed welcome with a token", wel)
		}
		if sy, ok := s.next(t).(wire.Sync); !ok || len(sy.Users) != 1 || sy.Users[0] != (wire.SyncUser{Username: "alice"}) {
			t.Fatalf("bob got %#v, want a sync with alice offline", sy)
		}
		if f := cs.next(t); f != (wire.Online{ID: "bob", Presence: wire.Presence{State: wire.StateOnline}}) {
			t.Fatalf("carol got %#v, want bob online", f)
		}
		alice, _, _ := w.connect(t, "alice")
		if f := s.next(t); f != (wire.Online{ID: "alice", Presence: wire.Presence{State: wire.StateOnline}}) {
			t.Fatalf("bob got %#v, want alice online", f)
		}
		synctest.Wait()
		s.wantNone(t, "bob got %#v after alice's o: subscribed twice")
		cs.wantNone(t, "carol got %#v: bob's restart showed")
		// Three hellos (carol, bob, alice), none of them a resume.
		wantSamples(t, reg, map[string]float64{`presenced_hellos_total{result="ok"}`: 3, `presenced_resumes_total{result="ok"}`: 0, "presenced_hello_to_sync_seconds_count": 3})
		// The same for a resume: bob's socket drops, and the actor of the one resuming panics at
		// its welcome too. It counts once, as a resume.
		w.system.Root.Send(bob, SocketClosed{LastHeard: time.Now()})
		s = &panicky{socket: newSocket()}
		s.armed.Store(true)
		bob2 := SpawnConn(w.deps, ConnSpec{User: "bob", Login: "bob", Following: followees("alice"), Resume: wel.Resume, Socket: s})
		again, ok := s.next(t).(wire.Welcome)
		if !ok || !again.Resumed || again.Resume == "" || again.Resume == wel.Resume {
			t.Fatalf("bob got %#v, want a resumed welcome with a new token", again)
		}
		if sy, ok := s.next(t).(wire.Sync); !ok || len(sy.Users) != 1 || sy.Users[0].Username != "alice" || sy.Users[0].Presence.State != wire.StateOnline {
			t.Fatalf("bob got %#v, want a sync with alice online", sy)
		}
		synctest.Wait()
		cs.wantNone(t, "carol got %#v: bob's drop and resume showed")
		wantSamples(t, reg, map[string]float64{`presenced_hellos_total{result="ok"}`: 4, `presenced_resumes_total{result="ok"}`: 1, "presenced_hello_to_sync_seconds_count": 4})
		w.system.Root.Send(bob2, Inbound{Frame: wire.Bye{}})
		if code := <-s.closes; code != wire.CloseNormal {
			t.Fatalf("bob's close %d", code)
		}
		if x, ok := cs.next(t).(wire.Offline); !ok || x.ID != "bob" || x.TS == 0 {
			t.Fatalf("carol got %#v after bob's bye, want bob offline with last seen", x)
		}
		w.stop(t, carol, bob, bob2, alice)
	})
}

// TestSyncReadsStoredPresences: a sync decodes each stored presence on its own, however the
// one before it went: a record that does not decode, and an envelope with another body, show
// their users offline; each valid one shows exactly its own fields (the decoding reuses one
// envelope), with the login its user published.
func TestSyncReadsStoredPresences(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		store := cluster.NewMemoryStore()
		ctx := context.Background()
		stored := map[string][]byte{"alice": []byte("not a protobuf \xff\xff")}
		for user, body := range map[string]isBody{
			"carol": &actorpb.PresenceUpdate{User: "carol", Login: "Carol", Version: 7, State: int32(wire.StateOnline), Activity: int32(wire.Debugging), Project: "api", Language: "Go"},
			"dave":  &actorpb.Detach{Window: "w"},
			"erin":  &actorpb.PresenceUpdate{User: "erin", Login: "erin", Version: 2, State: int32(wire.StateOffline), LastSeenMs: 1703789400000},
		} {
			b, err := proto.Marshal(envelope(body))
			if err != nil {
				t.Fatal(err)
			}
			stored[user] = b
		}
		for user, b := range stored {
			epoch, err := store.Acquire(ctx, user)
			if err != nil {
				t.Fatal(err)
			}
			if err := store.SaveUser(ctx, user, epoch, nil, b); err != nil {
				t.Fatal(err)
			}
		}
		w := newWorldWith(store)
		s := newSocket()
		bob := SpawnConn(w.deps, ConnSpec{User: "bob", Login: "bob", Following: followees("alice", "carol", "dave", "erin"), Socket: s})
		if _, ok := s.next(t).(wire.Welcome); !ok {
			t.Fatal("want welcome")
		}
		want := wire.Sync{Users: []wire.SyncUser{
			{Username: "alice"},
			{Username: "Carol", Presence: wire.Presence{State: wire.StateOnline, Activity: wire.Debugging, Project: "api", Language: "Go"}},
			{Username: "dave"},
			{Username: "erin", Presence: wire.Presence{State: wire.StateOffline, TS: 1703789400000}},
		}}
		if sy, ok := s.next(t).(wire.Sync); !ok || !reflect.DeepEqual(sy, want) {
			t.Fatalf("bob got %#v\nwant %#v", sy, want)
		}
		w.stop(t, bob)
	})
}

// wantSamples checks samples of reg by name (see sample).
func wantSamples(t *testing.T, reg *prometheus.Registry, want map[string]float64) {
	t.Helper()
	for name, v := range want {
		if got := sample(t, reg, name); got != v {
			t.Errorf("%s = %v, want %v", name, got, v)
		}
	}
}

// sample reads one sample of reg, named as the exposition format names it (a counter with one
// label, or a histogram's _count); 0 when there is none.
func sample(t *testing.T, reg *prometheus.Registry, name string) float64 {
	t.Helper()
	mfs, err := reg.Gather()
	if err != nil {
		t.Fatal(err)
	}
	for _, mf := range mfs {
		for _, m := range mf.GetMetric() {
			id := mf.GetName()
			if h := m.GetHistogram(); h != nil && name == id+"_count" {
				return float64(h.GetSampleCount())
			}
			for _, l := range m.GetLabel() {
				id += "{" + l.GetName() + "=\"" + l.GetValue() + "\"}"
			}
			if id == name && m.GetCounter() != nil {
				return m.GetCounter().GetValue()
			}
		}
	}
	return 0
}

// TestUserActorRetiresAndComesBack: a user with no windows and nothing pending passivates;
// the next hello activates a new one that rebuilds last seen from the store. Hellos that race
// with the retirement are forwarded, never lost.
func TestUserActorRetiresAndComesBack(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		w := newWorld()
		bob, bs, _ := w.connect(t, "bob", "alice")
		for i := range 50 {
			a, as, _ := w.connect(t, "alice")
			if i == 0 {
				if f := bs.next(t); f != (wire.Online{ID: "alice", Presence: wire.Presence{State: wire.StateOnline}}) {
					t.Fatalf("bob got %#v", f)
				}
			}
			w.system.Root.Send(a, Inbound{Frame: wire.Bye{}})
			if code := <-as.closes; code != wire.CloseNormal {
				t.Fatalf("close %d", code)
			}
			w.system.Root.Send(a, SocketClosed{LastHeard: time.Now()})
			// Land the next hello at, before or after the moment the actor retires.
			time.Sleep(2*time.Second - time.Duration(i%3-1)*time.Nanosecond)
		}
		time.Sleep(time.Minute)
		if got := w.placement.Active(); got != 1 {
			t.Fatalf("%d user actors active, want 1 (bob's)", got)
		}
		// bob saw alice once online and finally offline, whatever happened in between.
		var last wire.Frame
		for len(bs.frames) > 0 {
			last = <-bs.frames
		}
		if x, ok := last.(wire.Offline); !ok || x.TS == 0 {
			t.Fatalf("bob's last frame about alice = %#v, want x with ts", last)
		}
		w.stop(t, bob)
	})
}

// TestRetiringActorForwards: a message that reaches a user actor after it retired goes on to the
// new activation. A failed resume retires the actor at once (it has no windows); the fresh
// hello queued right behind it, on the old actor's mailbox, must still be answered.
func TestRetiringActorForwards(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		// The store holds the new actor in its Started until both messages are queued.
		gate := make(chan struct{})
		w := newWorldWith(&gatedStore{Store: cluster.NewMemoryStore(), gate: gate})
		replies := make(chan *actorpb.AttachReply, 2)
		probe := w.system.Root.Spawn(actor.PropsFromFunc(func(c actor.Context) {
			if e, ok := c.Message().(*actorpb.Envelope); ok {
				replies <- e.GetAttachReply()
			}
		}))
		w.placement.Send("alice", envelope(&actorpb.Attach{User: "alice", ResumeToken: "forged", Conn: connRef(probe)}), probe)
		old := w.placement.Lookup("alice")
		w.system.Root.RequestWithCustomSender(old, envelope(&actorpb.Attach{User: "alice", Window: "w1", Conn: connRef(probe)}), probe)
		close(gate)
		if r := <-replies; r.GetOk() || r.GetErrorCode() != wire.ErrResumeFailed {
			t.Fatalf("first reply = %v", r)
		}
		if r := <-replies; !r.GetOk() || r.GetWindow() != "w1" {
			t.Fatalf("second reply = %v", r)
		}
		if now := w.placement.Lookup("alice"); now == nil || now.Equal(old) {
			t.Fatalf("activation = %v, want a new one (old %v)", now, old)
		}
		w.stop(t, probe)
	})
}

// gatedStore makes LoadUser wait for gate (closed by the test).
type gatedStore struct {
	cluster.Store
	gate chan struct{}
}

func (s *gatedStore) LoadUser(ctx context.Context, user string) ([]byte, error) {
	<-s.gate
	return s.Store.LoadUser(ctx, user)
}

// TestUnknownMessagesAreDropped: an envelope from a newer version, an empty envelope and a
// foreign message reach a user actor; it logs, drops them, and keeps serving.
func TestUnknownMessagesAreDropped(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		w := newWorld()
		replies := make(chan *actorpb.AttachReply, 4)
		probe := w.system.Root.Spawn(actor.PropsFromFunc(func(c actor.Context) {
			if e, ok := c.Message().(*actorpb.Envelope); ok {
				replies <- e.GetAttachReply()
			}
		}))
		newer := envelope(&actorpb.Attach{User: "alice", Window: "w0", Conn: connRef(probe)})
		newer.Version = actorpb.EnvelopeVersion + 1
		w.placement.Send("alice", newer, probe)
		w.placement.Send("alice", &actorpb.Envelope{Version: actorpb.EnvelopeVersion}, probe)
		w.placement.Send("alice", &actorpb.Kick{}, probe)
		w.placement.Send("alice", envelope(&actorpb.Attach{User: "alice", Window: "w1", Conn: connRef(probe)}), probe)
		if r := <-replies; !r.GetOk() || r.GetWindow() != "w1" {
			t.Fatalf("reply = %v, want w1 attached (and nothing for the dropped messages)", r)
		}
		synctest.Wait()
		if len(replies) != 0 {
			t.Fatalf("unexpected reply %v", <-replies)
		}
		w.stop(t, probe)
	})
}

// TestStoppedConnectionDetaches: on a single node the user actor does not watch its
// connections, so a connection actor stopped from outside (the server gave up waiting for it)
// must detach its window itself. Followers see nothing for the resume window, then offline.
func TestStoppedConnectionDetaches(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		w := newWorld()
		bob, bs, _ := w.connect(t, "bob", "alice")
		alice, _, _ := w.connect(t, "alice", "bob")
		if f := bs.next(t); f != (wire.Online{ID: "alice", Presence: wire.Presence{State: wire.StateOnline}}) {
			t.Fatalf("bob got %#v, want alice online", f)
		}
		if n := w.deps.Fanout.Followed(); n != 2 {
			t.Fatalf("fanout follows %d users, want 2", n)
		}
		start := time.Now()
		_ = w.system.Root.StopFuture(alice).Wait()
		time.Sleep(DefaultUserConfig().ResumeWindow - time.Millisecond)
		synctest.Wait()
		bs.wantNone(t, "bob got %#v within the resume window")
		time.Sleep(time.Millisecond)
		synctest.Wait()
		want := wire.Offline{ID: "alice", TS: start.UnixMilli()}
		if f := bs.next(t); f != want {
			t.Fatalf("bob got %#v, want %#v", f, want)
		}
		if n := w.deps.Fanout.Followed(); n != 1 {
			t.Fatalf("fanout follows %d users, want 1 (alice, for bob): the stopped connection unsubscribed", n)
		}
		w.stop(t, bob)
	})
}

// TestConnIDsNeverRepeat: a node that starts again (same address) names its connections anew,
// so a window a user record kept from before cannot be taken for a live connection of today.
func TestConnIDsNeverRepeat(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		before, after := newWorld(), newWorld()
		a, _, _ := before.connect(t, "alice")
		b, _, _ := after.connect(t, "alice")
		if a.GetAddress() != b.GetAddress() {
			t.Fatalf("addresses %q and %q: the test wants the same one", a.GetAddress(), b.GetAddress())
		}
		if a.GetId() == b.GetId() {
			t.Errorf("both nodes named their first connection %q", a.GetId())
		}
		before.stop(t, a)
		after.stop(t, b)
	})
}

// panicky is a socket whose next write panics once armed, as a bug in the actor's path would.
type panicky struct {
	*socket
	armed atomic.Bool
}

func (p *panicky) Write(b []byte) {
	if p.armed.CompareAndSwap(true, false) {
		panic("a bug on the write path")
	}
	p.socket.Write(b)
}

func specsHeld(d *Deps) int {
	d.specsMu.Lock()
	defer d.specsMu.Unlock()
	return len(d.specs)
}

// TestConnActorRestartTakesItsSpec: the node's map of specs holds none once the connection
// actors have started; one that panics hands its spec back as it restarts, and the new instance
// takes it and answers its client again: welcome, then a sync with what it follows.
func TestConnActorRestartTakesItsSpec(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		w := newWorld()
		s := &panicky{socket: newSocket()}
		bob := SpawnConn(w.deps, ConnSpec{User: "bob", Login: "bob", Following: followees("alice"), Socket: s})
		if _, ok := s.next(t).(wire.Welcome); !ok {
			t.Fatal("want welcome")
		}
		if _, ok := s.next(t).(wire.Sync); !ok {
			t.Fatal("want sync")
		}
		if n := specsHeld(w.deps); n != 0 {
			t.Fatalf("the map holds %d specs once the actor started, want 0", n)
		}
		s.armed.Store(true) // alice's online frame panics in bob's actor
		alice, _, _ := w.connect(t, "alice")
		if f, ok := s.next(t).(wire.Welcome); !ok || f.ID != "bob" {
			t.Fatalf("after the restart bob got %#v, want a welcome", f)
		}
		sy, ok := s.next(t).(wire.Sync)
		if !ok || len(sy.Users) != 1 || sy.Users[0] != (wire.SyncUser{Username: "alice", Presence: wire.Presence{State: wire.StateOnline}}) {
			t.Fatalf("after the restart bob got %#v, want a sync with alice online", sy)
		}
		if n := specsHeld(w.deps); n != 0 {
			t.Fatalf("the map holds %d specs after the restart, want 0", n)
		}
		w.stop(t, bob, alice)
	})
}
