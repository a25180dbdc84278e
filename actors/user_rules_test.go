package actors

import (
	"fmt"
	"reflect"
	"testing"
	"time"

	"github.com/presenced/presenced/wire"
)

var t0 = time.Date(2026, 11, 28, 12, 0, 0, 0, time.UTC)

func testUser() *User {
	n := 0
	return NewUser(&UserEnv{DefaultUserConfig(), func() string {
		n++
		return fmt.Sprintf("token-%02d-abcdefghijklmnopqrstuvwxyz", n)
	}}, Published{Presence: wire.Presence{State: wire.StateOffline}}, false, 0)
}

var (
	c1 = ConnID{"node", "c1"}
	c2 = ConnID{"node", "c2"}
)

func on(a wire.Activity, p, l string) wire.Presence {
	return wire.Presence{State: wire.StateOnline, Activity: a, Project: p, Language: l}
}

func st(a wire.Activity, p, l string) wire.Status {
	return wire.Status{Has: wire.FieldActivity | wire.FieldProject | wire.FieldLanguage, Activity: a, Project: p, Language: l}
}

// flush fires the debounce timer in eff (which must hold one) and returns what it published.
func flush(t *testing.T, u *User, eff Effects) (Effects, *Published) {
	t.Helper()
	for _, tm := range eff.Timers {
		if tm.Kind == TimerDebounce {
			out := u.Fire(tm.At, tm)
			return out, out.Publish
		}
	}
	t.Fatalf("no debounce timer in %+v", eff)
	return Effects{}, nil
}

func TestAggregationPicksHighestActivityThenMostRecent(t *testing.T) {
	cases := []struct {
		name string
		w1   wire.Status
		w2   wire.Status
		want wire.Presence
	}{
		{"coding beats idle", st(wire.Idle, "A", "Go"), st(wire.Coding, "B", "Rust"), on(wire.Coding, "B", "Rust")},
		{"debugging beats coding", st(wire.Debugging, "A", "Go"), st(wire.Coding, "B", "Rust"), on(wire.Debugging, "A", "Go")},
		{"tie: most recent status wins", st(wire.Coding, "A", "Go"), st(wire.Coding, "B", "Rust"), on(wire.Coding, "B", "Rust")},
		{"no status yet counts as idle", wire.Status{}, st(wire.Idle, "B", ""), on(wire.Idle, "B", "")},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			u := testUser()
			u.Attach(t0, "w1", "", c1)
			u.Attach(t0, "w2", "", c2)
			u.Status(t0.Add(time.Second), "w1", c1, tc.w1)
			u.Status(t0.Add(2*time.Second), "w2", c2, tc.w2)
			if got := u.Current(); got != tc.want {
				t.Fatalf("current = %+v, want %+v", got, tc.want)
			}
		})
	}
}

func TestDebounceOpensOnFirstChangeAndPublishesNetState(t *testing.T) {
	u := testUser()
	_, eff := u.Attach(t0, "w1", "", c1)
	if len(eff.Timers) != 2 || eff.Timers[1] != (Timer{Kind: TimerDebounce, Gen: 1, At: t0.Add(2 * time.Second)}) {
		t.Fatalf("timers = %+v, want away then debounce at +2s", eff.Timers)
	}
	// Changes inside the window arm nothing new.
	for i := range 4 {
		if e := u.Status(t0.Add(time.Duration(i)*100*time.Millisecond), "w1", c1, st(wire.Coding, fmt.Sprint(i), "Go")); len(e.Timers) != 0 || e.Publish != nil {
			t.Fatalf("change %d inside the window: %+v", i, e)
		}
	}
	_, pub := flush(t, u, eff)
	if want := (Published{Presence: on(wire.Coding, "3", "Go"), Version: 1}); pub == nil || *pub != want {
		t.Fatalf("published %+v, want %+v", pub, want)
	}
	// A change that nets to zero opens a window but publishes nothing.
	e := u.Status(t0.Add(5*time.Second), "w1", c1, st(wire.Idle, "3", "Go"))
	u.Status(t0.Add(5*time.Second), "w1", c1, st(wire.Coding, "3", "Go"))
	if _, pub := flush(t, u, e); pub != nil {
		t.Fatalf("net-zero window published %+v", pub)
	}
	// An unchanged status opens no window at all.
	if e := u.Status(t0.Add(9*time.Second), "w1", c1, st(wire.Coding, "3", "Go")); len(e.Timers) != 0 {
		t.Fatalf("unchanged status armed %+v", e.Timers)
	}
}

func TestAwayIsCheckedWhenTheTimerFires(t *testing.T) {
	u := testUser()
	_, eff := u.Attach(t0, "w1", "", c1)
	flush(t, u, eff)
	away := eff.Timers[0]
	if away.Kind != TimerAway || !away.At.Equal(t0.Add(5*time.Minute)) {
		t.Fatalf("away timer = %+v", away)
	}
	// Activity at +3 min: the timer fires at +5 min and re-arms for +8 min instead.
	u.Status(t0.Add(3*time.Minute), "w1", c1, wire.Status{})
	e := u.Fire(away.At, away)
	if len(e.Timers) != 1 || e.Timers[0].Kind != TimerAway || !e.Timers[0].At.Equal(t0.Add(8*time.Minute)) {
		t.Fatalf("re-armed %+v, want away at +8 min", e.Timers)
	}
	e = u.Fire(e.Timers[0].At, e.Timers[0])
	_, pub := flush(t, u, e)
	if pub == nil || pub.Presence.State != wire.StateAway {
		t.Fatalf("published %+v, want Away", pub)
	}
	// The next status frame brings Online back.
	e = u.Status(t0.Add(9*time.Minute), "w1", c1, wire.Status{})
	if _, pub := flush(t, u, e); pub == nil || pub.Presence.State != wire.StateOnline {
		t.Fatalf("published %+v, want Online", pub)
	}
}

func TestResumeRules(t *testing.T) {
	u := testUser()
	r, eff := u.Attach(t0, "w1", "", c1)
	flush(t, u, eff)
	if r.Resume == "" || r.Window != "w1" || r.Resumed {
		t.Fatalf("attach = %+v", r)
	}
	drop := u.Detach(t0.Add(time.Minute), "w1", c1, false, t0.Add(50*time.Second))
	if drop.Publish != nil || len(drop.Timers) != 1 || drop.Timers[0].At != t0.Add(2*time.Minute) {
		t.Fatalf("drop = %+v, want only a resume timer at +60s", drop)
	}
	// A wrong token fails and spends nothing.
	if bad, _ := u.Attach(t0.Add(61*time.Second), "", "nope", c2); bad.Err == nil || bad.Err.Close != wire.CloseResumeFailed {
		t.Fatalf("bad resume = %+v", bad)
	}
	ok, eff := u.Attach(t0.Add(62*time.Second), "", r.Resume, c2)
	if !ok.Resumed || ok.Window != "w1" || ok.Resume == r.Resume || eff.Publish != nil || len(eff.Timers) != 0 {
		t.Fatalf("resume = %+v %+v", ok, eff)
	}
	// Single use: the old token is dead, and the stale resume timer does nothing.
	if again, _ := u.Attach(t0.Add(63*time.Second), "", r.Resume, c1); again.Err == nil {
		t.Fatal("a used token resumed again")
	}
	if e := u.Fire(drop.Timers[0].At, drop.Timers[0]); e.Publish != nil || u.Windows() != 1 {
		t.Fatalf("stale resume timer acted: %+v", e)
	}
	// Frames from the replaced connection are ignored.
	if e := u.Status(t0.Add(64*time.Second), "w1", c1, st(wire.Debugging, "", "")); len(e.Timers) != 0 || u.Current().Activity != wire.Idle {
		t.Fatalf("old connection changed state: %+v", e)
	}
	// Expiry: last seen is the drop's last-heard time.
	drop = u.Detach(t0.Add(2*time.Minute), "w1", c2, false, t0.Add(110*time.Second))
	e := u.Fire(drop.Timers[0].At, drop.Timers[0])
	_, pub := flush(t, u, e)
	if want := (wire.Presence{State: wire.StateOffline, TS: t0.Add(110 * time.Second).UnixMilli()}); pub == nil || pub.Presence != want {
		t.Fatalf("published %+v, want %+v", pub, want)
	}
}

func TestLiveTakeoverKicksOldSocket(t *testing.T) {
	u := testUser()
	r, _ := u.Attach(t0, "w1", "", c1)
	_, eff := u.Attach(t0, "", r.Resume, c2)
	want := []Kick{{Conn: c1, Close: wire.CloseReplaced, Code: wire.ErrReplaced, Msg: "another connection took this window over"}}
	if !reflect.DeepEqual(eff.Kicks, want) {
		t.Fatalf("kicks = %+v", eff.Kicks)
	}
}

// TestResumeBySameConnKicksNothing: the connection that holds a window resuming it (its actor
// restarted after a panic) gets it back with a new token, and is not closed as replaced.
func TestResumeBySameConnKicksNothing(t *testing.T) {
	u := testUser()
	r, _ := u.Attach(t0, "w1", "", c1)
	again, eff := u.Attach(t0, "", r.Resume, c1)
	if again.Err != nil || again.Window != "w1" || !again.Resumed || again.Resume == "" || again.Resume == r.Resume {
		t.Fatalf("resume by the same connection = %+v, want w1 resumed with a new token", again)
	}
	if len(eff.Kicks) != 0 {
		t.Fatalf("kicks = %+v, want none", eff.Kicks)
	}
	if n := u.windows.len(); n != 1 {
		t.Fatalf("%d windows, want 1", n)
	}
}

func TestInvisibleRules(t *testing.T) {
	u := testUser()
	_, eff := u.Attach(t0, "w1", "", c1)
	flush(t, u, eff)
	u.Status(t0.Add(time.Second), "w1", c1, st(wire.Coding, "X", "Go")) // debounce open
	e := u.SetInvisible(t0.Add(time.Second), "w1", c1, true)
	if want := (wire.Presence{State: wire.StateOffline, TS: t0.Add(time.Second).UnixMilli()}); e.Publish == nil || e.Publish.Presence != want {
		t.Fatalf("going invisible published %+v, want %+v at once", e.Publish, want)
	}
	// The debounce window it closed publishes nothing; changes while invisible open none.
	if e := u.Status(t0.Add(2*time.Second), "w1", c1, st(wire.Debugging, "Y", "Go")); len(e.Timers) != 0 {
		t.Fatalf("status while invisible armed %+v", e.Timers)
	}
	// Leaving while invisible changes nothing public and keeps last seen frozen.
	if e := u.Detach(t0.Add(time.Hour), "w1", c1, true, time.Time{}); e.Publish != nil || !e.Retire || u.LastSeen() != t0.Add(time.Second).UnixMilli() {
		t.Fatalf("bye while invisible: %+v last seen %d", e, u.LastSeen())
	}
}

func TestRetireOnlyWhenNothingPending(t *testing.T) {
	u := testUser()
	_, eff := u.Attach(t0, "w1", "", c1)
	if eff.Retire {
		t.Fatal("retire with a window")
	}
	flush(t, u, eff)
	bye := u.Detach(t0.Add(time.Second), "w1", c1, true, time.Time{})
	if bye.Retire {
		t.Fatal("retire with an offline publish pending")
	}
	if e, pub := flush(t, u, bye); pub == nil || !e.Retire {
		t.Fatalf("after the last publish: %+v", e)
	}
}

// Going invisible before coming online was published leaks nothing: no x, last seen unchanged.
func TestInvisibleBeforeOnlineIsPublishedLeaksNothing(t *testing.T) {
	u := NewUser(&UserEnv{DefaultUserConfig(), func() string { return "tok-abcdefghijklmnopqrstuvwxyz" }},
		Published{Presence: wire.Presence{State: wire.StateOffline, TS: 1000}, Version: 3}, false, 1000)
	_, eff := u.Attach(t0, "w1", "", c1)
	if e := u.SetInvisible(t0.Add(time.Second), "w1", c1, true); e.Publish != nil || u.LastSeen() != 1000 {
		t.Fatalf("invisible: %+v, last seen %d; want nothing published and last seen 1000", e, u.LastSeen())
	}
	if _, pub := flush(t, u, eff); pub != nil {
		t.Fatalf("the closed debounce window published %+v", pub)
	}
}

// A user rebuilt from its persisted state on another node keeps its windows, resume tokens and
// pending resume deadlines, and publishes nothing new.
func TestStateRoundTripAndRestore(t *testing.T) {
	u := testUser()
	r1, eff := u.Attach(t0, "w1", "", c1)
	flush(t, u, eff)
	r2, _ := u.Attach(t0, "w2", "", c2)
	e := u.Status(t0.Add(time.Second), "w2", c2, st(wire.Coding, "X", "Go"))
	u.Status(t0.Add(time.Second), "w1", c1, st(wire.Idle, "Y", ""))
	flush(t, u, e)
	u.Detach(t0.Add(2*time.Second), "w1", c1, false, t0.Add(2*time.Second))
	st0 := stateFromPB(stateToPB("alice", u.State())) // through the protobuf record

	v, eff := RestoreUser(u.env, st0, t0.Add(3*time.Second))
	if v.Current() != u.Current() || v.Published() != u.Published() || eff.Publish != nil {
		t.Fatalf("restored %+v / %+v, want %+v / %+v", v.Current(), v.Published(), u.Current(), u.Published())
	}
	var resume *Timer
	for i, tm := range eff.Timers {
		if tm.Kind == TimerResume {
			resume = &eff.Timers[i]
		}
	}
	if resume == nil || resume.Window != "w1" || !resume.At.Equal(t0.Add(62*time.Second)) {
		t.Fatalf("timers %+v, want w1's resume deadline at +62s", eff.Timers)
	}
	// The dropped window resumes with its token; the live one reattaches without a new token.
	if res, _ := v.Attach(t0.Add(4*time.Second), "", r1.Resume, c1); !res.Resumed || res.Window != "w1" {
		t.Fatalf("resume after restore = %+v", res)
	}
	if res, _ := v.Reattach(t0.Add(4*time.Second), r2.Resume, c2); !res.Resumed || res.Window != "w2" || res.Resume != "" {
		t.Fatalf("reattach = %+v", res)
	}
	if res, _ := v.Reattach(t0.Add(4*time.Second), r2.Resume, c1); res.Err == nil {
		t.Fatal("another connection reattached with w2's token")
	}
}
