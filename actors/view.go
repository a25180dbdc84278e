package actors

import (
	"cmp"
	"hash/maphash"
	"slices"
	"unique"

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
//
// A view is the largest thing a connection holds once it follows people (one entry per followed
// user, and a node holds a view per socket), so it keeps no map: the entries sit in a slice in
// follow-list order, found through a sorted slice of (hash of the id, position), 8 bytes per
// user. A map of entries cost six times as much at K = 500 (BenchmarkDeliverWideViews: 213
// bytes per followed user, against 33 for this view with its interned list).
type View struct {
	following []Followed
	seen      []viewEntry    // seen[i] is what the client was last sent about following[i]
	index     []viewKey      // one per user, sorted by hash
	renamed   map[int]string // position → login the client knows, where not following[i].Login; nil until a rename
	synced    bool           // Sync ran for this list: until then no update applies (the sync covers them)
}

type viewEntry struct {
	presence shownPresence
	version  uint64
}

// shownPresence is a presence as views show it, interned node-wide: at any moment a followed user
// is shown in one or two ways (as they are, or hidden) to all their followers on the node, so a
// view keeps 8 bytes per user instead of a 48-byte wire.Presence with its two strings.
type shownPresence = unique.Handle[wire.Presence]

// offlineNoTS is how a view shows a user it has never seen, or one it may not see.
var offlineNoTS = unique.Make(wire.Presence{State: wire.StateOffline})

// viewKey finds a followed user's entry: the low 32 bits of the hash of their id, and their
// position in following. Two ids with one hash are told apart by the id itself.
type viewKey struct {
	hash uint32
	pos  int32
}

// Followed is a user in a follow list, interned node-wide: one copy of each user's id and login
// however many sockets follow them, and 8 bytes per entry of a list (an auth.Followee is 32, and
// a list decoded from the store or GitHub brings two strings of its own per entry).
type Followed = unique.Handle[auth.Followee]

// Follow turns a user's follow list into the form connection actors keep: self left out
// (following yourself shows nothing), every user interned.
func Follow(list []auth.Followee, self string) []Followed {
	out := make([]Followed, 0, len(list))
	for _, f := range list {
		if f.ID != self {
			out = append(out, unique.Make(f))
		}
	}
	return out
}

// viewSeed is the node's seed for the hash of user ids: a Delivery hashes its user's id once and
// every view on the node uses that hash.
var viewSeed = maphash.MakeSeed()

func userKey(id string) uint32 { return uint32(maphash.String(viewSeed, id)) }

// Visible decides whether a published presence may be shown to this view's user.
type Visible func(*actorpb.PresenceUpdate) bool

// NewView makes an empty view of following (no duplicates expected).
func NewView(following []Followed) *View {
	v := &View{}
	v.setFollowing(following)
	return v
}

func (v *View) setFollowing(following []Followed) {
	v.following, v.renamed, v.synced = following, nil, false
	v.seen, v.index = nil, nil // someone who follows nobody holds no slices
	if len(following) == 0 {
		return
	}
	v.seen = make([]viewEntry, len(following))
	for i := range v.seen {
		v.seen[i].presence = offlineNoTS // a zero handle has no value to read
	}
	v.index = make([]viewKey, len(following))
	for i, f := range following {
		v.index[i] = viewKey{hash: userKey(f.Value().ID), pos: int32(i)}
	}
	slices.SortFunc(v.index, func(a, b viewKey) int {
		return cmp.Or(cmp.Compare(a.hash, b.hash), cmp.Compare(a.pos, b.pos))
	})
}

// search returns where the entries with this hash begin in the index (they are adjacent, so
// two ids with one hash, or a list with a duplicate, are all found from there).
func (v *View) search(hash uint32) int {
	k, _ := slices.BinarySearchFunc(v.index, hash, func(k viewKey, h uint32) int { return cmp.Compare(k.hash, h) })
	return k
}

// login is how the client knows the user at position i.
func (v *View) login(i int) string {
	if l, ok := v.renamed[i]; ok {
		return l
	}
	return v.following[i].Value().Login
}

// setLogin records that the client knows the user at position i as login.
func (v *View) setLogin(i int, login string) {
	if login == v.following[i].Value().Login {
		delete(v.renamed, i)
		return
	}
	if v.renamed == nil {
		v.renamed = map[int]string{}
	}
	v.renamed[i] = login
}

// Following returns the ids of the users this view covers, in a slice of the caller's own.
func (v *View) Following() []string {
	ids := make([]string, len(v.following))
	for i, f := range v.following {
		ids[i] = f.Value().ID
	}
	return ids
}

// SetFollowing replaces whom the view covers (a refresh of the follow graph found changes) and
// reports which ids were added and removed. The caller sends a new Sync: it is the only frame
// that can make a user disappear from a client's view.
func (v *View) SetFollowing(following []Followed) (added, removed []string) {
	old := make(map[string]bool, len(v.following))
	for _, f := range v.following {
		old[f.Value().ID] = true
	}
	v.setFollowing(following)
	for _, f := range v.following {
		id := f.Value().ID
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

// hidden reports whether a view whose user may see what visible allows must show up as offline
// with no last seen: nothing about that user leaks.
func hidden(up *actorpb.PresenceUpdate, visible Visible) bool {
	return up != nil && visible != nil && !visible(up)
}

// shownToAll is a published presence as shown to the views that may see it, interned: online
// users carry no ts.
func shownToAll(up *actorpb.PresenceUpdate) shownPresence {
	p := PresenceFromPB(up)
	if p.State != wire.StateOffline {
		p.TS = 0
	}
	return unique.Make(p)
}

// Sync builds the full sync from the stored presences (records[i] is Following()[i]'s, nil when
// never seen) and makes it the view.
func (v *View) Sync(records []*actorpb.PresenceUpdate, visible Visible) wire.Sync {
	for i, f := range v.following {
		var rec *actorpb.PresenceUpdate
		if i < len(records) {
			rec = records[i]
		}
		login := f.Value().Login
		if l := rec.GetLogin(); l != "" {
			login = l // the user's own latest hello knows a rename before our copy of the list does
		}
		v.setLogin(i, login)
		p := offlineNoTS
		if !hidden(rec, visible) {
			p = shownToAll(rec)
		}
		v.seen[i] = viewEntry{presence: p, version: rec.GetVersion()}
	}
	v.synced = true
	return v.snapshot()
}

// snapshot is the whole view as a sync frame, in following order.
func (v *View) snapshot() wire.Sync {
	s := wire.Sync{Users: make([]wire.SyncUser, len(v.following))}
	for i := range v.following {
		s.Users[i] = wire.SyncUser{Username: v.login(i), Presence: v.seen[i].presence.Value()}
	}
	return s
}

// Deliver is Apply for a change published to many followers at once: the frame comes encoded,
// shared with the other followers who saw the same previous state (see Delivery), with its
// type ("u", "o", "x"). A rename still answers with a whole new sync, encoded for this view alone.
func (v *View) Deliver(d *Delivery, visible Visible) (frame []byte, typ string, ok bool) {
	step, ok := v.advance(d.Update, d.who, d.key, d.shown, visible)
	if !ok {
		return nil, "", false
	}
	if step.renamed {
		return wire.Encode(v.snapshot()), "sync", true
	}
	return d.frame(step.login, step.prev, step.next)
}

// viewStep is what advance changed: the user's presence before and after (interned: a
// Delivery tells its few distinct steps apart by pointer), the login the client knows them by,
// and whether that login just changed.
type viewStep struct {
	prev, next shownPresence
	login      string
	renamed    bool
}

// advance records a published presence newer than what the view holds; false when the view does
// not follow the user, already has that version, or has had no sync yet. hash is
// userKey(up.GetUser()), all is the update as shown to those who may see it (shownToAll), and
// who, when not zero, is the user as the follow lists usually hold them: an entry that is that
// very handle is the user without reading the id.
func (v *View) advance(up *actorpb.PresenceUpdate, who Followed, hash uint32, all shownPresence, visible Visible) (viewStep, bool) {
	var step viewStep
	found := false
	if !v.synced {
		return step, false
	}
	id := up.GetUser()
	for k := v.search(hash); k < len(v.index) && v.index[k].hash == hash; k++ {
		i := int(v.index[k].pos)
		if f := v.following[i]; (f != who && f.Value().ID != id) || up.GetVersion() <= v.seen[i].version {
			continue
		}
		next := all
		if hidden(up, visible) {
			next = offlineNoTS
		}
		step = viewStep{prev: v.seen[i].presence, next: next, login: v.login(i)}
		if l := up.GetLogin(); l != "" && l != step.login {
			v.setLogin(i, l)
			step.login, step.renamed = l, true
		}
		v.seen[i] = viewEntry{presence: next, version: up.GetVersion()}
		found = true
	}
	return step, found
}

// Apply takes a published presence and returns the frame for the client, if any. Versions not
// newer than what the view holds (already covered by the sync or a later update) are dropped,
// and so is anything about a user the view does not follow. A new login (a rename) changes the
// key the client knows the user by, so it is answered with a whole new sync.
func (v *View) Apply(up *actorpb.PresenceUpdate, visible Visible) (wire.Frame, bool) {
	step, ok := v.advance(up, Followed{}, userKey(up.GetUser()), shownToAll(up), visible)
	if !ok {
		return nil, false
	}
	if step.renamed {
		return v.snapshot(), true
	}
	return wire.Diff(step.login, step.prev.Value(), true, step.next.Value())
}
