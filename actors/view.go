package actors

import (
	"github.com/presenced/presenced/actors/actorpb"
	"github.com/presenced/presenced/wire"
)

// View is one connection's picture of the users it follows: what it last sent the client about
// each one, and that state's version. It turns published presences into the frames that move the
// client from what it has to what is true. Owned by one connection actor.
type View struct {
	following []string
	seen      map[string]viewEntry
}

type viewEntry struct {
	presence wire.Presence
	version  uint64
}

// NewView makes an empty view of following (no duplicates expected).
func NewView(following []string) *View {
	return &View{following: following, seen: make(map[string]viewEntry, len(following))}
}

// Following returns the users this view covers.
func (v *View) Following() []string { return v.following }

// Sync builds the full sync from the stored presences (records[i] is following[i]'s, nil when
// never seen) and makes it the view.
func (v *View) Sync(records []*actorpb.PresenceUpdate) wire.Sync {
	s := wire.Sync{Users: make([]wire.SyncUser, len(v.following))}
	for i, u := range v.following {
		var rec *actorpb.PresenceUpdate
		if i < len(records) {
			rec = records[i]
		}
		p := PresenceFromPB(rec)
		if p.State != wire.StateOffline {
			p.TS = 0
		}
		v.seen[u] = viewEntry{presence: p, version: rec.GetVersion()}
		s.Users[i] = wire.SyncUser{Username: u, Presence: p}
	}
	return s
}

// Apply takes a published presence and returns the frame for the client, if any. Versions not
// newer than what the view holds (already covered by the sync or a later update) are dropped,
// and so is anything about a user the view does not follow.
func (v *View) Apply(up *actorpb.PresenceUpdate) (wire.Frame, bool) {
	cur, ok := v.seen[up.GetUser()]
	if !ok || up.GetVersion() <= cur.version {
		return nil, false
	}
	next := PresenceFromPB(up)
	if next.State != wire.StateOffline {
		next.TS = 0
	}
	v.seen[up.GetUser()] = viewEntry{presence: next, version: up.GetVersion()}
	return wire.Diff(up.GetUser(), cur.presence, true, next)
}
