package main

import (
	"slices"
	"testing"
	"time"

	"github.com/presenced/presenced/wire"
)

func TestRenderTable(t *testing.T) {
	now := time.Date(2025, 1, 2, 15, 4, 5, 0, time.UTC)
	view := map[string]wire.Presence{
		"alice": {State: wire.StateOnline, Activity: wire.Coding, Project: "X", Language: "Go"},
		"bob":   {State: wire.StateAway, Activity: wire.Idle},
		"carol": {State: wire.StateOffline, TS: now.Add(-5*time.Minute - 10*time.Second).UnixMilli()},
		"dave":  {State: wire.StateOffline},
		"eve":   {State: wire.StateOnline, Activity: wire.Debugging, Project: "tab\there", Language: "C\x1b[2J"},
	}
	got := renderTable([]string{"carol", "alice", "bob", "dave", "eve"}, view, now)
	want := "" +
		"USER   STATE    ACTIVITY   PROJECT   LANGUAGE  LAST SEEN\n" +
		"carol  Offline  -          -         -         5m ago\n" +
		"alice  Online   Coding     X         Go        now\n" +
		"bob    Away     Idle       -         -         now\n" +
		"dave   Offline  -          -         -         never\n" +
		"eve    Online   Debugging  tab here  C [2J     now\n"
	if got != want {
		t.Errorf("renderTable:\n%s\nwant:\n%s", got, want)
	}
}

func TestRenderTableEmpty(t *testing.T) {
	got := renderTable(nil, map[string]wire.Presence{}, time.Now())
	want := "USER  STATE  ACTIVITY  PROJECT  LANGUAGE  LAST SEEN\n(you follow no one)\n"
	if got != want {
		t.Errorf("renderTable:\n%q\nwant:\n%q", got, want)
	}
}

func TestLastSeen(t *testing.T) {
	now := time.UnixMilli(1_700_000_000_000)
	for _, c := range []struct {
		ago  time.Duration
		want string
	}{
		{-3 * time.Second, "just now"}, // our clock behind the server's
		{500 * time.Millisecond, "just now"},
		{59 * time.Second, "59s ago"},
		{time.Minute, "1m ago"},
		{59*time.Minute + 59*time.Second, "59m ago"},
		{47 * time.Hour, "47h ago"},
		{72 * time.Hour, "3d ago"},
	} {
		if got := lastSeen(now.Add(-c.ago).UnixMilli(), now); got != c.want {
			t.Errorf("lastSeen(%v ago) = %q, want %q", c.ago, got, c.want)
		}
	}
	if got := lastSeen(0, now); got != "never" {
		t.Errorf("lastSeen(0) = %q, want never", got)
	}
}

// TestNetworkOrder: the sync's order is kept; names first seen later go after it, sorted; a
// new sync starts over.
func TestNetworkOrder(t *testing.T) {
	n := newNetwork()
	online := wire.Presence{State: wire.StateOnline}
	steps := []struct {
		f    wire.Frame
		want []string
	}{
		{wire.Sync{Users: []wire.SyncUser{{Username: "carol"}, {Username: "alice"}}}, []string{"carol", "alice"}},
		{wire.Online{ID: "zed", Presence: online}, []string{"carol", "alice", "zed"}},
		{wire.Update{ID: "bob", Has: wire.FieldActivity, Activity: wire.Coding}, []string{"carol", "alice", "bob", "zed"}},
		{wire.Offline{ID: "alice", TS: 5}, []string{"carol", "alice", "bob", "zed"}},
		{wire.Sync{Users: []wire.SyncUser{{Username: "zed"}}}, []string{"zed"}},
	}
	for i, s := range steps {
		if !n.apply(s.f) {
			t.Fatalf("step %d: apply(%#v) = false", i, s.f)
		}
		if !slices.Equal(n.order, s.want) || len(n.view) != len(s.want) {
			t.Fatalf("step %d: order %v (view %v), want %v", i, n.order, n.view, s.want)
		}
	}
	if n.apply(wire.Pong{}) {
		t.Fatal("apply(pong) = true")
	}
	if p := n.view["zed"]; p.State != wire.StateOffline {
		t.Fatalf("zed after the second sync = %+v, want the sync's (offline)", p)
	}
}
