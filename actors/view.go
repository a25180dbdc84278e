package actors

import (
	"github.com/presenced/presenced/actors/actorpb"
	"github.com/presenced/presenced/auth"
	"github.com/presenced/presenced/wire"
)

// View is one connection's picture of the users it follows: what it last sent the client about
// each one, under which name, and that state's version. It turns published presences into the
// frames that move the client from what it has to what is true. Owned by one connection actor.
//
// Users are keyed by id (GitHub's numeric id); the wire shows their login. A followed user who
// does not let this user see them (visible_to mutual, not followed back) is shown offline with
// no last seen: nothing about them leaks.
type View struct {
	following []auth.Followee
	ids       []string
	seen      map[string]viewEntry
}

type viewEntry struct {
	presence wire.Presence
	version  uint64
	login    string
}

// Visible decides whether a published presence may be shown to this view's user.
type Visible func(*actorpb.PresenceUpdate) bool

// NewView makes an empty view of following (no duplicates expected).
func NewView(following []auth.Followee) *View {
	v := &View{}
	v.setFollowing(following)
	return v
}

func (v *View) setFollowing(following []auth.Followee) {
	v.following = following
	v.ids = make([]string, len(following))
	for i, f := range following {
		v.ids[i] = f.ID
	}
	v.seen = nil // reads of a nil map find nothing; someone who follows nobody holds no map
	if len(following) > 0 {
		v.seen = make(map[string]viewEntry, len(following))
	}
}

// Following returns the ids of the users this view covers.
func (v *View) Following() []string { return v.ids }

// SetFollowing replaces whom the view covers (a refresh of the follow graph found changes) and
// reports which ids were added and removed. The caller sends a new Sync: it is the only frame
// that can make a user disappear from a client's view.
func (v *View) SetFollowing(following []auth.Followee) (added, removed []string) {
	old := make(map[string]bool, len(v.ids))
	for _, id := range v.ids {
		old[id] = true
	}
	v.setFollowing(following)
	for _, id := range v.ids {
		if !old[id] {
			added = append(added, id)
		}
		delete(old, id)
	}
	for id := range old {
		removed = append(removed, id)
	}
	return added, removed
}

// shown is what this view may show of a published presence: hidden users read as offline with
// no last seen, and online users carry no ts.
func shown(rec *actorpb.PresenceUpdate, visible Visible) wire.Presence {
	if rec != nil && visible != nil && !visible(rec) {
		return wire.Presence{State: wire.StateOffline}
	}
	p := PresenceFromPB(rec)
	if p.State != wire.StateOffline {
		p.TS = 0
	}
	return p
}

// Sync builds the full sync from the stored presences (records[i] is Following()[i]'s, nil when
// never seen) and makes it the view.
func (v *View) Sync(records []*actorpb.PresenceUpdate, visible Visible) wire.Sync {
	for i, f := range v.following {
		var rec *actorpb.PresenceUpdate
		if i < len(records) {
			rec = records[i]
		}
		login := f.Login
		if l := rec.GetLogin(); l != "" {
			login = l // the user's own latest hello knows a rename before our copy of the list does
		}
		v.seen[f.ID] = viewEntry{presence: shown(rec, visible), version: rec.GetVersion(), login: login}
	}
	return v.snapshot()
}

// snapshot is the whole view as a sync frame, in following order.
func (v *View) snapshot() wire.Sync {
	s := wire.Sync{Users: make([]wire.SyncUser, len(v.following))}
	for i, f := range v.following {
		e := v.seen[f.ID]
		s.Users[i] = wire.SyncUser{Username: e.login, Presence: e.presence}
	}
	return s
}

// Deliver is Apply for a change published to many followers at once: the frame comes encoded,
// shared with the other followers who saw the same previous state (see Delivery), with its
// type ("u", "o", "x"). A rename still answers with a whole new sync, encoded for this view alone.
func (v *View) Deliver(d *Delivery, visible Visible) (frame []byte, typ string, ok bool) {
	up := d.Update
	cur, next, ok := v.advance(up, visible)
	if !ok {
		return nil, "", false
	}
	if next.login != cur.login {
		return wire.Encode(v.snapshot()), "sync", true
	}
	return d.frame(next.login, cur.presence, next.presence)
}

// advance records a published presence newer than what the view holds and returns the entries
// before and after; false when the view does not follow the user or already has that version.
func (v *View) advance(up *actorpb.PresenceUpdate, visible Visible) (cur, next viewEntry, ok bool) {
	cur, ok = v.seen[up.GetUser()]
	if !ok || up.GetVersion() <= cur.version {
		return cur, cur, false
	}
	next = viewEntry{presence: shown(up, visible), version: up.GetVersion(), login: cur.login}
	if l := up.GetLogin(); l != "" {
		next.login = l
	}
	v.seen[up.GetUser()] = next
	return cur, next, true
}

// Apply takes a published presence and returns the frame for the client, if any. Versions not
// newer than what the view holds (already covered by the sync or a later update) are dropped,
// and so is anything about a user the view does not follow. A new login (a rename) changes the
// key the client knows the user by, so it is answered with a whole new sync.
func (v *View) Apply(up *actorpb.PresenceUpdate, visible Visible) (wire.Frame, bool) {
	cur, next, ok := v.advance(up, visible)
	if !ok {
		return nil, false
	}
	if next.login != cur.login {
		return v.snapshot(), true
	}
	return wire.Diff(next.login, cur.presence, true, next.presence)
}
