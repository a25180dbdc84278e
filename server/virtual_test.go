package server_test

import (
	"context"
	"errors"
	"fmt"
	"reflect"
	"testing"
	"testing/synctest"
	"time"

	"github.com/presenced/presenced/client"
	"github.com/presenced/presenced/server"
	"github.com/presenced/presenced/testkit"
	"github.com/presenced/presenced/wire"
)

// These tests run a whole node, WebSockets included, on in-memory pipes inside a synctest
// bubble: the default timing (2 s debounce, 5 min away, 60 s resume window) runs in virtual time,
// and time.Sleep only moves the virtual clock.

// vnode starts a pipe node with the product's default timing.
func vnode(t *testing.T, graph map[string][]string) *testkit.Node {
	return vnodeWith(t, testkit.DevConfig(graph))
}

// vnodeWith starts a pipe node. Frames are written at once (no write delay) so that the times
// asserted are the product's rules alone; TestWriteDelayBatches covers the delay.
func vnodeWith(t *testing.T, cfg server.Config) *testkit.Node {
	if cfg.WriteDelay == 0 {
		cfg.WriteDelay = -1
	}
	return testkit.StartPipeNode(t, cfg)
}

// vconnect connects with expectations that may wait hours of virtual time.
func vconnect(t *testing.T, n *testkit.Node, h wire.Hello) *testkit.Client {
	c := n.Connect(t, h)
	c.Timeout = 24 * time.Hour
	return c
}

// since asserts that exactly d of virtual time passed since start.
func since(t *testing.T, start time.Time, d time.Duration) {
	t.Helper()
	if got := time.Since(start); got != d {
		t.Fatalf("after %v, want exactly %v", got, d)
	}
}

// TestAway: no status frame for --away-after → followers get s:Away; the next status brings
// s:Online back.
func TestAway(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		n := vnode(t, map[string][]string{"bob": {"alice"}})
		b := vconnect(t, n, wire.Hello{Token: "bob"})
		a := vconnect(t, n, wire.Hello{Token: "alice"})
		b.Expect(wire.Online{ID: "alice", Presence: online(wire.Idle, "", "")})
		time.Sleep(time.Minute)
		a.Send(coding())
		start := time.Now()
		b.Expect(wire.Update{ID: "alice", Has: wire.FieldActivity, Activity: wire.Coding})
		since(t, start, 2*time.Second)
		// A ping is not activity: it does not hold off away.
		time.Sleep(4 * time.Minute)
		a.Quiet()
		b.ExpectRaw(`{"t":"u","id":"alice","s":"Away"}`)
		since(t, start, 5*time.Minute+2*time.Second)
		a.Send(wire.Status{})
		b.ExpectRaw(`{"t":"u","id":"alice","s":"Online"}`)
	})
}

// TestDebounceCoalescing: 5 changes within 100 ms reach a follower as exactly one u with the
// final values, one debounce after the first change.
func TestDebounceCoalescing(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		n := vnode(t, map[string][]string{"bob": {"alice"}})
		b := vconnect(t, n, wire.Hello{Token: "bob"})
		a := vconnect(t, n, wire.Hello{Token: "alice"})
		b.Expect(wire.Online{ID: "alice", Presence: online(wire.Idle, "", "")})
		start := time.Now()
		a.Send(status(wire.Coding, "p1", "Go"))
		for i, s := range []wire.Status{status(wire.Debugging, "p2", "Go"), status(wire.Coding, "p3", "Rust"),
			status(wire.Idle, "p4", "Rust"), status(wire.Debugging, "final", "Zig")} {
			time.Sleep(25 * time.Millisecond)
			_ = i
			a.Send(s)
		}
		b.Expect(wire.Update{ID: "alice", Has: wire.FieldActivity | wire.FieldProject | wire.FieldLanguage,
			Activity: wire.Debugging, Project: "final", Language: "Zig"})
		since(t, start, 2*time.Second)
		time.Sleep(10 * time.Second)
		b.Quiet()
	})
}

// TestStampFlush: with --stamp-flush every u, o and x a follower gets ends with "ft", the moment
// the user's debounce flushed it in unix µs (one debounce after the change, exactly, in virtual
// time); sync frames carry none. Without the flag no frame has it (every ExpectRaw here shows so).
func TestStampFlush(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		cfg := testkit.DevConfig(map[string][]string{"bob": {"alice"}})
		cfg.StampFlush = true
		n := vnodeWith(t, cfg)
		b := vconnect(t, n, wire.Hello{Token: "bob"})
		hello := time.Now()
		a := vconnect(t, n, wire.Hello{Token: "alice"})
		// Coming online is a change like any other: flushed one debounce after the hello.
		b.ExpectRaw(fmt.Sprintf(`{"t":"o","id":"alice","s":"Online","a":"Idle","ft":%d}`, hello.Add(2*time.Second).UnixMicro()))
		time.Sleep(time.Minute)
		start := time.Now()
		a.Send(coding())
		b.ExpectRaw(fmt.Sprintf(`{"t":"u","id":"alice","a":"Coding","ft":%d}`, start.Add(2*time.Second).UnixMicro()))
		since(t, start, 2*time.Second)
		time.Sleep(time.Minute)
		bye := time.Now()
		a.Send(wire.Bye{})
		b.ExpectRaw(fmt.Sprintf(`{"t":"x","id":"alice","ts":%d,"ft":%d}`, bye.UnixMilli(), bye.Add(2*time.Second).UnixMicro()))
		// A new follower's sync is a snapshot, not a change: no flush time.
		c := n.Dial(t)
		c.Timeout = 24 * time.Hour
		c.Send(wire.Hello{Token: "bob", Window: "w2"})
		if f, ok := c.Next().(wire.Welcome); !ok {
			t.Fatalf("want welcome, got %#v", f)
		}
		c.ExpectRaw(fmt.Sprintf(`{"t":"sync","users":[{"username":"alice","s":"Offline","ts":%d}]}`, bye.UnixMilli()))
		b.Quiet()
	})
}

// TestDebounceNetsToZero: changes that cancel out within one window send nothing.
func TestDebounceNetsToZero(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		n := vnode(t, map[string][]string{"bob": {"alice"}})
		b := vconnect(t, n, wire.Hello{Token: "bob"})
		a := vconnect(t, n, wire.Hello{Token: "alice"})
		b.Expect(wire.Online{ID: "alice", Presence: online(wire.Idle, "", "")})
		a.Send(coding())
		a.Send(wire.Status{Has: wire.FieldActivity, Activity: wire.Idle})
		time.Sleep(10 * time.Second)
		b.Quiet()
	})
}

// TestByeVersusDrop: bye on the last window sends x one debounce later with the bye's time; a
// drop sends nothing for the resume window, then x with the time the client was last heard.
func TestByeVersusDrop(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		n := vnode(t, map[string][]string{"bob": {"alice", "carol"}})
		b := vconnect(t, n, wire.Hello{Token: "bob"})
		a := vconnect(t, n, wire.Hello{Token: "alice"})
		b.Expect(wire.Online{ID: "alice", Presence: online(wire.Idle, "", "")})
		c := vconnect(t, n, wire.Hello{Token: "carol"})
		b.Expect(wire.Online{ID: "carol", Presence: online(wire.Idle, "", "")})
		time.Sleep(time.Minute)

		bye := time.Now()
		a.Send(wire.Bye{})
		a.ExpectClose("", wire.CloseNormal)
		b.Expect(wire.Offline{ID: "alice", TS: bye.UnixMilli()})
		since(t, bye, 2*time.Second)

		c.Send(coding()) // carol is last heard now
		b.Expect(wire.Update{ID: "carol", Has: wire.FieldActivity, Activity: wire.Coding})
		heard := time.Now().Add(-2 * time.Second)
		time.Sleep(3 * time.Second)
		drop := time.Now()
		c.Drop()
		time.Sleep(59 * time.Second)
		b.Quiet() // within the resume window: nothing
		b.Expect(wire.Offline{ID: "carol", TS: heard.UnixMilli()})
		since(t, drop, 62*time.Second) // resume window, then one debounce
	})
}

// TestResumeExpiry: after the resume window the token no longer works.
func TestResumeExpiry(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		n := vnode(t, map[string][]string{"bob": {"alice"}})
		b := vconnect(t, n, wire.Hello{Token: "bob"})
		heard := time.Now() // alice's hello is the last frame heard from her
		a := vconnect(t, n, wire.Hello{Token: "alice"})
		b.Expect(wire.Online{ID: "alice", Presence: online(wire.Idle, "", "")})
		a.Drop()
		b.Expect(wire.Offline{ID: "alice", TS: heard.UnixMilli()})
		late := n.Dial(t)
		late.Send(wire.Hello{Token: "alice", Resume: a.Welcome.Resume})
		late.ExpectClose(wire.ErrResumeFailed, wire.CloseResumeFailed)
		b.Quiet()
	})
}

// TestResumeWithinWindowIsSilent: a drop and a resume 30 s later show nothing to followers at
// any time, and the resumed window keeps its status.
func TestResumeWithinWindowIsSilent(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		n := vnode(t, map[string][]string{"bob": {"alice"}})
		b := vconnect(t, n, wire.Hello{Token: "bob"})
		a := vconnect(t, n, wire.Hello{Token: "alice", Window: "w1"})
		b.Expect(wire.Online{ID: "alice", Presence: online(wire.Idle, "", "")})
		a.Send(status(wire.Coding, "MyApp", "Go"))
		b.Expect(wire.Update{ID: "alice", Has: wire.FieldActivity | wire.FieldProject | wire.FieldLanguage, Activity: wire.Coding, Project: "MyApp", Language: "Go"})
		a.Drop()
		time.Sleep(30 * time.Second)
		a2 := vconnect(t, n, wire.Hello{Token: "alice", Resume: a.Welcome.Resume})
		if !a2.Welcome.Resumed {
			t.Fatalf("welcome = %+v, want resumed", a2.Welcome)
		}
		time.Sleep(10 * time.Minute) // long past every timer (away included)
		b.ExpectRaw(`{"t":"u","id":"alice","s":"Away"}`)
		b.Quiet()
	})
}

// TestResumeTakesOverLiveSocket: a valid resume while the old socket still looks alive closes
// the old one with 4003; followers see nothing.
func TestResumeTakesOverLiveSocket(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		n := vnode(t, map[string][]string{"bob": {"alice"}})
		b := vconnect(t, n, wire.Hello{Token: "bob"})
		a := vconnect(t, n, wire.Hello{Token: "alice"})
		b.Expect(wire.Online{ID: "alice", Presence: online(wire.Idle, "", "")})
		a2 := vconnect(t, n, wire.Hello{Token: "alice", Resume: a.Welcome.Resume})
		a.ExpectClose(wire.ErrReplaced, wire.CloseReplaced)
		if !a2.Welcome.Resumed {
			t.Fatalf("welcome = %+v", a2.Welcome)
		}
		time.Sleep(2 * time.Minute)
		b.Quiet()
		a2.Send(coding())
		b.Expect(wire.Update{ID: "alice", Has: wire.FieldActivity, Activity: wire.Coding})
	})
}

// TestFreshHelloReplacesWaitingWindow: a hello without resume that names a window waiting for
// resume replaces it silently: no x, no o.
func TestFreshHelloReplacesWaitingWindow(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		n := vnode(t, map[string][]string{"bob": {"alice"}})
		b := vconnect(t, n, wire.Hello{Token: "bob"})
		a := vconnect(t, n, wire.Hello{Token: "alice", Window: "w1"})
		b.Expect(wire.Online{ID: "alice", Presence: online(wire.Idle, "", "")})
		a.Drop()
		time.Sleep(5 * time.Second)
		a2 := vconnect(t, n, wire.Hello{Token: "alice", Window: "w1"})
		if a2.Welcome.Resumed {
			t.Fatal("a fresh hello must not report resumed")
		}
		time.Sleep(2 * time.Minute) // past the old window's resume deadline
		b.Quiet()
		// The old token died with the replaced window.
		late := n.Dial(t)
		late.Send(wire.Hello{Token: "alice", Resume: a.Welcome.Resume})
		late.ExpectClose(wire.ErrResumeFailed, wire.CloseResumeFailed)
	})
}

// TestResumeTokenIsBoundToItsUser: bob cannot use alice's token, and trying does not spend it.
func TestResumeTokenIsBoundToItsUser(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		n := vnode(t, map[string][]string{"bob": {"alice"}})
		a := vconnect(t, n, wire.Hello{Token: "alice"})
		a.Drop()
		thief := n.Dial(t)
		thief.Send(wire.Hello{Token: "bob", Resume: a.Welcome.Resume})
		thief.ExpectClose(wire.ErrResumeFailed, wire.CloseResumeFailed)
		a2 := vconnect(t, n, wire.Hello{Token: "alice", Resume: a.Welcome.Resume})
		if !a2.Welcome.Resumed {
			t.Fatalf("welcome = %+v, want resumed", a2.Welcome)
		}
	})
}

// TestInvisible: going invisible sends x at once with the moment it began; nothing about alice
// is published while invisible; she still receives her own network; visible again → o with the
// current state. Invisibility survives her reconnects.
func TestInvisible(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		n := vnode(t, map[string][]string{"bob": {"alice"}, "alice": {"carol"}})
		b := vconnect(t, n, wire.Hello{Token: "bob"})
		a := vconnect(t, n, wire.Hello{Token: "alice"})
		c := vconnect(t, n, wire.Hello{Token: "carol"})
		b.Expect(wire.Online{ID: "alice", Presence: online(wire.Idle, "", "")})
		a.Expect(wire.Online{ID: "carol", Presence: online(wire.Idle, "", "")})
		a.Send(coding())
		b.Expect(wire.Update{ID: "alice", Has: wire.FieldActivity, Activity: wire.Coding})

		went := time.Now()
		a.Send(wire.Invisible{On: true})
		b.Expect(wire.Offline{ID: "alice", TS: went.UnixMilli()})
		since(t, went, 0)

		a.Send(wire.Status{Has: wire.FieldActivity, Activity: wire.Debugging})
		a2 := vconnect(t, n, wire.Hello{Token: "alice", Window: "w2"})
		c.Send(coding())
		a.Expect(wire.Update{ID: "carol", Has: wire.FieldActivity, Activity: wire.Coding})
		// A newcomer sees alice offline since she went invisible.
		d := vconnect(t, n, wire.Hello{Token: "bob", Window: "other"})
		if d.Sync.Users[0] != (wire.SyncUser{Username: "alice", Presence: offline(went.UnixMilli())}) {
			t.Fatalf("sync = %+v", d.Sync)
		}
		// Leaving while invisible sends nothing; last seen stays frozen.
		a.Send(wire.Bye{})
		a2.Send(wire.Bye{})
		time.Sleep(10 * time.Minute)
		b.Quiet()

		// Back later: still invisible until she says otherwise.
		a3 := vconnect(t, n, wire.Hello{Token: "alice"})
		time.Sleep(time.Minute)
		b.Quiet()
		back := time.Now()
		a3.Send(wire.Invisible{On: false})
		b.Expect(wire.Online{ID: "alice", Presence: online(wire.Idle, "", "")})
		since(t, back, 0)
	})
}

// TestLastSeenInSync: last seen survives the user actor going away and shows in later syncs;
// a later visit moves it, and a follower who saw the old one gets x again (decision 4).
func TestLastSeenInSync(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		n := vnode(t, map[string][]string{"bob": {"alice"}})
		a := vconnect(t, n, wire.Hello{Token: "alice"})
		time.Sleep(time.Minute)
		left := time.Now()
		a.Send(wire.Bye{})
		time.Sleep(time.Hour)
		if s := n.Stats(); s.UserActors != 0 {
			t.Fatalf("stats = %+v, want no user actor left after alice left", s)
		}
		b := vconnect(t, n, wire.Hello{Token: "bob"})
		if b.Sync.Users[0] != (wire.SyncUser{Username: "alice", Presence: offline(left.UnixMilli())}) {
			t.Fatalf("sync = %+v, want alice offline since %d", b.Sync, left.UnixMilli())
		}
		// A visit shorter than one debounce: bob never sees her online, only the new last seen.
		a2 := vconnect(t, n, wire.Hello{Token: "alice"})
		time.Sleep(time.Second)
		left2 := time.Now()
		a2.Send(wire.Bye{})
		b.Expect(wire.Offline{ID: "alice", TS: left2.UnixMilli()})
		b2 := vconnect(t, n, wire.Hello{Token: "bob", Window: "w2"})
		if b2.Sync.Users[0] != (wire.SyncUser{Username: "alice", Presence: offline(left2.UnixMilli())}) {
			t.Fatalf("sync = %+v", b2.Sync)
		}
	})
}

// TestHelloTimeout: no hello within 10 s → error hello_timeout, close 1008.
func TestHelloTimeout(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		n := vnode(t, nil)
		start := time.Now()
		c := n.Dial(t)
		c.Timeout = time.Minute
		c.ExpectClose(wire.ErrHelloTimeout, wire.ClosePolicy)
		since(t, start, 10*time.Second)
	})
}

// TestDeadPeer: a client that stops answering is dropped 45 s after it was last heard; its last
// seen is that moment, and followers see x only after the resume window.
func TestDeadPeer(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		n := vnode(t, map[string][]string{"bob": {"alice"}})
		b := vconnect(t, n, wire.Hello{Token: "bob"})
		mute := n.WithOptions(func(o *client.Options) { o.IgnorePings = true })
		a := vconnect(t, mute, wire.Hello{Token: "alice"})
		b.Expect(wire.Online{ID: "alice", Presence: online(wire.Idle, "", "")})
		heard := time.Now()
		a.Send(coding())
		b.Expect(wire.Update{ID: "alice", Has: wire.FieldActivity, Activity: wire.Coding})
		b.Expect(wire.Offline{ID: "alice", TS: heard.UnixMilli()})
		since(t, heard, 45*time.Second+60*time.Second+2*time.Second)
	})
}

// TestSlowConsumer: a follower that stops reading fills its outbound queue (512 bytes here); its
// socket is closed with error slow_consumer and 4008 once it reads again, and meanwhile
// everyone else is served on time. (It pauses under 45 s: longer silence is a dead peer.)
func TestSlowConsumer(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		cfg := testkit.DevConfig(map[string][]string{"bob": {"alice"}, "carol": {"alice"}})
		cfg.MaxQueueBytes = 512
		cfg.WriteTimeout = time.Hour // the reader pauses, it is not dead
		n := vnodeWith(t, cfg)
		carol := vconnect(t, n, wire.Hello{Token: "carol"})
		bob := n.DialRaw(t)
		if _, _, err := bob.Hello(wire.Hello{Token: "bob"}); err != nil {
			t.Fatal(err)
		}
		a := vconnect(t, n, wire.Hello{Token: "alice"})
		carol.Expect(wire.Online{ID: "alice", Presence: online(wire.Idle, "", "")})
		for i := range 15 { // bob reads none of these
			a.Send(status(wire.Activity(1+i%2), fmt.Sprintf("project-%02d", i), "Go"))
			start := time.Now()
			f, ok := carol.Next().(wire.Update)
			if !ok || f.Project != fmt.Sprintf("project-%02d", i) {
				t.Fatalf("carol got %#v", f)
			}
			since(t, start, 2*time.Second) // on time, whatever bob does
		}
		for {
			f, _, err := bob.Read()
			if e, ok := f.(wire.ErrorFrame); ok {
				if e.Code != wire.ErrSlowConsumer {
					t.Fatalf("bob got error %+v", e)
				}
				break
			}
			if err != nil {
				t.Fatalf("bob: %v before the slow_consumer error", err)
			}
		}
		_, _, err := bob.Read()
		var ce *client.CloseError
		if !errors.As(err, &ce) || ce.Code != wire.CloseSlowConsumer {
			t.Fatalf("bob: want close 4008, got %v", err)
		}
	})
}

// TestWriteDelayBatches: frames for one follower that are queued within the write delay wait
// for it and leave together: with a 5 ms delay, two flushes 3 ms apart both arrive 5 ms after
// the first.
func TestWriteDelayBatches(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		const delay = 5 * time.Millisecond
		cfg := testkit.DevConfig(map[string][]string{"bob": {"alice", "carol"}})
		cfg.WriteDelay = delay
		n := vnodeWith(t, cfg)
		b := vconnect(t, n, wire.Hello{Token: "bob"})
		a := vconnect(t, n, wire.Hello{Token: "alice"})
		c := vconnect(t, n, wire.Hello{Token: "carol"})
		b.Expect(wire.Online{ID: "alice", Presence: online(wire.Idle, "", "")})
		b.Expect(wire.Online{ID: "carol", Presence: online(wire.Idle, "", "")})
		time.Sleep(time.Minute)

		start := time.Now()
		a.Send(coding())
		time.Sleep(3 * time.Millisecond)
		c.Send(coding())
		b.Expect(wire.Update{ID: "alice", Has: wire.FieldActivity, Activity: wire.Coding})
		since(t, start, 2*time.Second+delay)
		b.Expect(wire.Update{ID: "carol", Has: wire.FieldActivity, Activity: wire.Coding})
		since(t, start, 2*time.Second+delay)
	})
}

// TestDrainInBatches: a shutdown tells sockets to resume elsewhere at DrainRate per second, in
// batches every 50 ms: with 1,000 per second, 120 sockets hear server_restart in batches of
// 50, 50 and 20, 50 ms apart.
func TestDrainInBatches(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		graph := map[string][]string{}
		for i := range 120 {
			graph[fmt.Sprintf("u%d", i)] = nil
		}
		cfg := testkit.DevConfig(graph)
		cfg.DrainRate = 1000
		n := vnodeWith(t, cfg)
		clients := make([]*testkit.Client, 120)
		for i := range clients {
			clients[i] = vconnect(t, n, wire.Hello{Token: fmt.Sprintf("u%d", i)})
		}
		time.Sleep(time.Minute) // every online publish is out
		start := time.Now()
		heard := make(chan time.Duration, len(clients))
		for _, c := range clients {
			go func() {
				r := c.NextReceived()
				if e, ok := r.Frame.(wire.ErrorFrame); !ok || e.Code != wire.ErrServerRestart {
					t.Errorf("%v: want error server_restart, got %#v (%v)", c, r.Frame, r.Err)
				}
				heard <- time.Since(start)
			}()
		}
		go func() { _ = n.Shutdown(context.Background()) }()
		at := map[time.Duration]int{}
		for range clients {
			at[<-heard]++
		}
		want := map[time.Duration]int{0: 50, 50 * time.Millisecond: 50, 100 * time.Millisecond: 20}
		if !reflect.DeepEqual(at, want) {
			t.Fatalf("server_restart heard at %v, want %v", at, want)
		}
	})
}
