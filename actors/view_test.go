package actors

import (
	"reflect"
	"slices"
	"strings"
	"testing"

	"github.com/presenced/presenced/actors/actorpb"
	"github.com/presenced/presenced/auth"
	"github.com/presenced/presenced/wire"
)

func upd(id string, v uint64, login string, mutual bool, a wire.Activity) *actorpb.PresenceUpdate {
	return &actorpb.PresenceUpdate{User: id, Version: v, Login: login, Mutual: mutual, State: int32(wire.StateOnline), Activity: int32(a)}
}

// TestViewShowsLoginsKeyedByID: the wire shows logins; ids key the view; a rename is a whole new
// sync, with the user under the new name.
func TestViewShowsLoginsKeyedByID(t *testing.T) {
	v := NewView(Follow([]auth.Followee{{ID: "1", Login: "alice"}, {ID: "2", Login: "carol"}}, ""))
	s := v.Sync([]*actorpb.PresenceUpdate{upd("1", 1, "", false, wire.Coding), nil}, nil)
	want := wire.Sync{Users: []wire.SyncUser{{Username: "alice", Presence: on(wire.Coding, "", "")},
		{Username: "carol", Presence: wire.Presence{State: wire.StateOffline}}}}
	if !reflect.DeepEqual(s, want) {
		t.Fatalf("sync = %+v", s)
	}
	f, ok := v.Apply(upd("1", 2, "alice", false, wire.Debugging), nil)
	if !ok || !reflect.DeepEqual(f, wire.Update{ID: "alice", Has: wire.FieldActivity, State: wire.StateOnline, Activity: wire.Debugging}) {
		t.Fatalf("update = %+v", f)
	}
	f, ok = v.Apply(upd("1", 3, "alice2", false, wire.Debugging), nil)
	want.Users[0] = wire.SyncUser{Username: "alice2", Presence: on(wire.Debugging, "", "")}
	if !ok || !reflect.DeepEqual(f, want) {
		t.Fatalf("rename = %+v, want %+v", f, want)
	}
}

// TestViewHidesMutualOnlyUsers: a user who does not follow back is offline with no last seen;
// gaining sight gives o, losing it gives x without ts (decision 15).
func TestViewHidesMutualOnlyUsers(t *testing.T) {
	back := false
	visible := func(up *actorpb.PresenceUpdate) bool { return !up.GetMutual() || back }
	v := NewView(Follow([]auth.Followee{{ID: "1", Login: "alice"}}, ""))
	rec := upd("1", 1, "alice", true, wire.Coding)
	rec.LastSeenMs = 99
	s := v.Sync([]*actorpb.PresenceUpdate{rec}, visible)
	if s.Users[0].Presence != (wire.Presence{State: wire.StateOffline}) {
		t.Fatalf("hidden user shows %+v", s.Users[0].Presence)
	}
	back = true
	f, ok := v.Apply(upd("1", 2, "alice", true, wire.Coding), visible)
	if !ok || !reflect.DeepEqual(f, wire.Online{ID: "alice", Presence: on(wire.Coding, "", "")}) {
		t.Fatalf("gaining sight = %+v", f)
	}
	back = false
	f, ok = v.Apply(upd("1", 3, "alice", true, wire.Coding), visible)
	if !ok || !reflect.DeepEqual(f, wire.Offline{ID: "alice"}) {
		t.Fatalf("losing sight = %+v", f)
	}
}

// TestViewSetFollowing reports what to subscribe and unsubscribe.
func TestViewSetFollowing(t *testing.T) {
	v := NewView(Follow([]auth.Followee{{ID: "1", Login: "a"}, {ID: "2", Login: "b"}}, ""))
	added, removed := v.SetFollowing(Follow([]auth.Followee{{ID: "2", Login: "b"}, {ID: "3", Login: "c"}}, ""))
	if !slices.Equal(added, []string{"3"}) || !slices.Equal(removed, []string{"1"}) || !slices.Equal(v.Following(), []string{"2", "3"}) {
		t.Fatalf("added %v removed %v following %v", added, removed, v.Following())
	}
	if _, ok := v.Apply(upd("1", 5, "a", false, wire.Coding), nil); ok {
		t.Fatal("an unfollowed user still reaches the client")
	}
}

// TestViewTellsApartIDsWithOneHash: a view finds a user through the hash of their id; ids whose
// hashes collide (forced here: every id gets one hash) still reach only their own entries, and a
// list that names a user twice keeps both entries true.
func TestViewTellsApartIDsWithOneHash(t *testing.T) {
	v := NewView(Follow([]auth.Followee{{ID: "1", Login: "alice"}, {ID: "2", Login: "bob"}, {ID: "1", Login: "alice"}, {ID: "3", Login: "carol"}}, ""))
	for k := range v.index {
		v.index[k].hash = 7
	}
	slices.SortFunc(v.index, func(a, b viewKey) int { return int(a.pos - b.pos) })
	v.Sync(nil, nil)
	bob := upd("2", 1, "", false, wire.Coding)
	_, ok := v.advance(bob, Followed{}, 7, shownToAll(bob), nil)
	if !ok || v.seen[1].presence.Value() != on(wire.Coding, "", "") || v.seen[0].version != 0 || v.seen[3].version != 0 {
		t.Fatalf("bob's update landed elsewhere: %+v", v.seen)
	}
	dan := upd("4", 1, "", false, wire.Coding)
	if _, ok := v.advance(dan, Followed{}, 7, shownToAll(dan), nil); ok {
		t.Fatal("a user the view does not follow, with a colliding hash, was applied")
	}
	d := NewDelivery(upd("1", 1, "", false, wire.Debugging))
	d.key = 7
	f, _, ok := v.Deliver(d, nil)
	if !ok || string(f) != string(wire.Encode(wire.Online{ID: "alice", Presence: on(wire.Debugging, "", "")})) {
		t.Fatalf("alice's frame = %q, %v", f, ok)
	}
	if v.seen[0] != v.seen[2] || v.seen[0].version != 1 {
		t.Fatalf("the two entries of alice differ: %+v / %+v", v.seen[0], v.seen[2])
	}
	// With her login, the delivery's user is the list's very handle: found without the id,
	// and still only at her entries.
	d = NewDelivery(upd("1", 2, "alice", false, wire.Idle))
	d.key = 7
	if d.who != v.following[0] {
		t.Fatal("the delivery's user is not the list's handle")
	}
	want, _ := wire.Diff("alice", on(wire.Debugging, "", ""), true, on(wire.Idle, "", ""))
	f, _, ok = v.Deliver(d, nil)
	if !ok || string(f) != string(wire.Encode(want)) || !strings.Contains(string(f), `"t":"u"`) {
		t.Fatalf("alice's second frame = %q, %v", f, ok)
	}
	if v.seen[0].version != 2 || v.seen[2].version != 2 || v.seen[1].version != 1 || v.seen[3].version != 0 {
		t.Fatalf("alice's second update landed elsewhere: %+v", v.seen)
	}
}

// TestViewRenameThenBack: a rename is kept beside the list only while the login differs from
// the list's; renaming back to the listed login leaves nothing kept.
func TestViewRenameThenBack(t *testing.T) {
	v := NewView(Follow([]auth.Followee{{ID: "1", Login: "alice"}}, ""))
	v.Sync(nil, nil)
	if f, ok := v.Apply(upd("1", 1, "alice2", false, wire.Coding), nil); !ok || f.(wire.Sync).Users[0].Username != "alice2" {
		t.Fatalf("rename = %+v", f)
	}
	if f, ok := v.Apply(upd("1", 2, "alice", false, wire.Coding), nil); !ok || f.(wire.Sync).Users[0].Username != "alice" {
		t.Fatalf("rename back = %+v", f)
	}
	if len(v.renamed) != 0 {
		t.Fatalf("renames kept after renaming back: %v", v.renamed)
	}
}

// TestFollowInterns: two lists decoded apart (their strings are separate copies) give the same
// handles, so a node keeps one copy of each followed user; the user themself is left out.
func TestFollowInterns(t *testing.T) {
	decoded := func() []auth.Followee {
		var l []auth.Followee
		for _, s := range []string{"1:alice", "2:bob", "3:carol"} {
			b := []byte(s) // a fresh copy each time, as a JSON decode makes
			l = append(l, auth.Followee{ID: string(b[:1]), Login: string(b[2:])})
		}
		return l
	}
	a, b := Follow(decoded(), "2"), Follow(decoded(), "")
	if len(a) != 2 || a[0].Value() != (auth.Followee{ID: "1", Login: "alice"}) || a[1].Value() != (auth.Followee{ID: "3", Login: "carol"}) {
		t.Fatalf("Follow(list, self 2) = %v", a)
	}
	if a[0] != b[0] || a[1] != b[2] {
		t.Fatal("equal users from two lists are not one interned value")
	}
}

// TestViewAppliesNothingBeforeItsSync: until a view's sync is built (first, and again after
// its follow list changes) an update has nothing to move from, so none is applied: the sync
// covers it.
func TestViewAppliesNothingBeforeItsSync(t *testing.T) {
	v := NewView(Follow([]auth.Followee{{ID: "1", Login: "alice"}}, ""))
	if f, ok := v.Apply(upd("1", 1, "", false, wire.Coding), nil); ok {
		t.Fatalf("applied before the sync: %+v", f)
	}
	v.Sync(nil, nil)
	if _, ok := v.Apply(upd("1", 1, "", false, wire.Coding), nil); !ok {
		t.Fatal("not applied after the sync")
	}
	v.SetFollowing(Follow([]auth.Followee{{ID: "1", Login: "alice"}, {ID: "2", Login: "bob"}}, ""))
	if f, _, ok := v.Deliver(NewDelivery(upd("2", 1, "", false, wire.Coding)), nil); ok {
		t.Fatalf("applied after a new list, before its sync: %q", f)
	}
}
