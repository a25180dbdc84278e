package actors

import (
	"testing"
	"time"

	"github.com/presenced/presenced/wire"
)

func ptr(b bool) *bool { return &b }

// online brings a user online with one window, a status, and its first publish.
func online(t *testing.T, login string) *User {
	t.Helper()
	u := testUser()
	_, eff := u.Attach(t0, "w1", "", c1)
	eff = eff.then(u.Identify(t0, login, 7))
	u.Status(t0, "w1", c1, st(wire.Coding, "Secret", "Go"))
	if _, pub := flush(t, u, eff); pub == nil || pub.Audience != (Audience{Login: login, GraphVersion: 7}) {
		t.Fatalf("first publish = %+v", pub)
	}
	return u
}

// TestHiddenFieldsNeverLeaveTheUser: share_project false removes p from what is published, at
// once, and later project changes publish nothing at all.
func TestHiddenFieldsNeverLeaveTheUser(t *testing.T) {
	u := online(t, "alice")
	eff := u.SetPrivacy(t0.Add(time.Second), "w1", c1, PrivacyChange{ShareProject: ptr(false)})
	if eff.Publish == nil || eff.Publish.Presence != on(wire.Coding, "", "Go") || !eff.Persist {
		t.Fatalf("publish = %+v, want Coding/Go without project, at once", eff.Publish)
	}
	eff = u.Status(t0.Add(2*time.Second), "w1", c1, st(wire.Coding, "Other secret", "Go"))
	for _, tm := range eff.Timers {
		if tm.Kind == TimerDebounce {
			t.Fatalf("a hidden field change opened a debounce window: %+v", eff.Timers)
		}
	}
	if got := u.Current(); got.Project != "" {
		t.Fatalf("current shows project %q", got.Project)
	}
	if s := u.State(); s.Privacy != (Privacy{HideProject: true}) {
		t.Fatalf("persisted privacy = %+v", s.Privacy)
	}
	eff = u.SetPrivacy(t0.Add(3*time.Second), "w1", c1, PrivacyChange{ShareProject: ptr(true), ShareLanguage: ptr(false)})
	if eff.Publish == nil || eff.Publish.Presence != on(wire.Coding, "Other secret", "") {
		t.Fatalf("publish = %+v, want the project back and the language hidden", eff.Publish)
	}
}

// TestPrivacyClosesTheDebounceWindow: decision 5.
func TestPrivacyClosesTheDebounceWindow(t *testing.T) {
	u := online(t, "alice")
	eff := u.Status(t0.Add(time.Second), "w1", c1, st(wire.Debugging, "Secret", "Go"))
	gen := u.debounceGen
	eff2 := u.SetPrivacy(t0.Add(1500*time.Millisecond), "w1", c1, PrivacyChange{Mutual: ptr(true)})
	if eff2.Publish == nil || eff2.Publish.Presence != on(wire.Debugging, "Secret", "Go") || !eff2.Publish.Audience.Mutual {
		t.Fatalf("publish = %+v, want the pending change with the mutual audience, at once", eff2.Publish)
	}
	out, pub := flush(t, u, eff)
	if pub != nil || u.debounceGen == gen {
		t.Fatalf("the old debounce timer published %+v (%+v)", pub, out)
	}
}

// TestAudienceChanges: a rename publishes at once; a new graph version republishes only for a
// mutual-only user; repeating a setting publishes nothing.
func TestAudienceChanges(t *testing.T) {
	u := online(t, "alice")
	if eff := u.Identify(t0, "alice", 7); eff.Publish != nil || eff.Persist {
		t.Fatalf("same identity: %+v", eff)
	}
	if eff := u.GraphChanged(t0, 8); eff.Publish != nil || !eff.Persist {
		t.Fatalf("graph change of a followers-visible user published: %+v", eff.Publish)
	}
	eff := u.Identify(t0, "alice-renamed", 8)
	if eff.Publish == nil || eff.Publish.Audience.Login != "alice-renamed" {
		t.Fatalf("rename: %+v", eff.Publish)
	}
	u.SetPrivacy(t0, "w1", c1, PrivacyChange{Mutual: ptr(true)})
	if eff := u.SetPrivacy(t0, "w1", c1, PrivacyChange{Mutual: ptr(true)}); eff.Publish != nil || eff.Persist {
		t.Fatalf("repeated setting: %+v", eff)
	}
	eff = u.GraphChanged(t0, 9)
	if eff.Publish == nil || eff.Publish.Audience != (Audience{Login: "alice-renamed", Mutual: true, GraphVersion: 9}) {
		t.Fatalf("graph change of a mutual-only user: %+v", eff.Publish)
	}
	if eff := u.GraphChanged(t0, 9); eff.Publish != nil {
		t.Fatalf("an old graph version republished: %+v", eff.Publish)
	}
}

// TestPrivacyWhileInvisibleMovesNothing: the audience changes, the frozen offline stays.
func TestPrivacyWhileInvisibleMovesNothing(t *testing.T) {
	u := online(t, "alice")
	u.SetInvisible(t0.Add(time.Minute), "w1", c1, true)
	frozen := u.Published().Presence
	eff := u.SetPrivacy(t0.Add(2*time.Minute), "w1", c1, PrivacyChange{Mutual: ptr(true)})
	if eff.Publish == nil || eff.Publish.Presence != frozen || frozen.State != wire.StateOffline {
		t.Fatalf("publish = %+v, want the frozen %+v with the new audience", eff.Publish, frozen)
	}
}

// TestPrivacyFromAStrangerConnectionIsIgnored: only a connection holding a window may set it.
func TestPrivacyFromAStrangerConnectionIsIgnored(t *testing.T) {
	u := online(t, "alice")
	if eff := u.SetPrivacy(t0, "w1", c2, PrivacyChange{ShareProject: ptr(false)}); eff.Publish != nil || u.Privacy() != (Privacy{}) {
		t.Fatalf("stranger changed privacy: %+v", eff)
	}
}

// TestPrivacyRoundTrip: settings, login and graph version survive the store.
func TestPrivacyRoundTrip(t *testing.T) {
	u := online(t, "alice")
	u.SetPrivacy(t0, "w1", c1, PrivacyChange{Mutual: ptr(true), ShareLanguage: ptr(false)})
	st := stateFromPB(stateToPB("1", u.State()))
	if st.Privacy != (Privacy{Mutual: true, HideLanguage: true}) || st.Login != "alice" || st.GraphVersion != 7 ||
		st.Published.Audience != (Audience{Login: "alice", Mutual: true, GraphVersion: 7}) {
		t.Fatalf("restored %+v", st)
	}
}
