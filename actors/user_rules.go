package actors

import (
	"crypto/sha256"
	"crypto/subtle"
	"time"

	"github.com/presenced/presenced/wire"
)

// UserConfig holds the timing rules of a user. The zero value is not useful; DefaultUserConfig
// gives the product's numbers.
type UserConfig struct {
	Debounce     time.Duration // quiet period that collects changes before one publish (2 s)
	AwayAfter    time.Duration // no status frame for this long → Away (5 min)
	ResumeWindow time.Duration // a dropped window waits this long for a resume (60 s)
}

// DefaultUserConfig is the spec's timing.
func DefaultUserConfig() UserConfig {
	return UserConfig{Debounce: 2 * time.Second, AwayAfter: 5 * time.Minute, ResumeWindow: 60 * time.Second}
}

// UserEnv is what every user of a node shares: the timing and the token maker (random, ≥128
// bits, URL-safe). A user keeps a pointer to it: one user per connection, and a copy was 32
// bytes of each.
type UserEnv struct {
	Config   UserConfig
	NewToken func() string
}

// ConnID names the connection that holds a window (an actor PID as strings).
type ConnID struct{ Address, ID string }

// TimerKind says which rule a timer serves.
type TimerKind uint8

const (
	TimerDebounce TimerKind = iota + 1
	TimerAway
	TimerResume
)

// Timer asks the shell to call User.Fire(Kind, Window, Gen) at At. A timer whose Gen is no longer
// current is ignored, so the shell never has to cancel one.
type Timer struct {
	Kind   TimerKind
	Window string
	Gen    uint64
	At     time.Time
}

// Kick asks the shell to close a connection with an error frame and close code.
type Kick struct {
	Conn  ConnID
	Close int
	Code  string
	Msg   string
}

// AttachResult answers an attach (hello).
type AttachResult struct {
	Err     *wire.Error // non-nil: refuse the hello with this error and close code
	Window  string
	Resume  string
	Resumed bool
}

// Published is a user's public presence with its version and the audience it is for.
type Published struct {
	Presence wire.Presence
	Version  uint64
	Audience Audience
}

// Audience says under which name a publish is shown and who may see it. Followers' views apply
// it: the user actor does not know who follows it (that is the inverse of other users' lists).
type Audience struct {
	Login        string // the name followers are shown ("" before the first hello named it)
	Mutual       bool   // only followers the user follows back may see it
	GraphVersion uint64 // version of the user's following list that Mutual is decided on
}

// Privacy is a user's sharing settings; the zero value is the spec's default: every follower
// sees everything.
type Privacy struct {
	Mutual       bool // visible_to: mutual
	HideProject  bool // share_project: false
	HideLanguage bool // share_language: false
}

// PrivacyChange is a privacy frame: nil fields keep their setting.
type PrivacyChange struct {
	Mutual, ShareProject, ShareLanguage *bool
}

// Effects is what one rule call asks the shell to do, in this order: persist, publish, kick,
// arm timers, retire.
type Effects struct {
	Persist bool       // the user record changed: write it
	Publish *Published // publish this on presence:<user> (implies Persist)
	Kicks   []Kick
	Timers  []Timer
	Retire  bool // nothing left to do: the actor may passivate
}

// then returns e followed by next: both persists and kicks and timers, the later publish, and
// next's verdict on retiring.
func (e Effects) then(next Effects) Effects {
	e.Persist = e.Persist || next.Persist
	if next.Publish != nil {
		e.Publish = next.Publish
	}
	e.Kicks = append(e.Kicks, next.Kicks...)
	e.Timers = append(e.Timers, next.Timers...)
	e.Retire = next.Retire
	return e
}

// window is one editor window of the user, one per connection: 128 bytes with its times as
// int64s, one connection id and the small fields in one word (224 with time.Times and two ids).
// 0 stands for the zero time (sinceEpoch, fromEpoch). dropAt and expires are unix ms, as the
// record keeps them; statusAt is unix ns, because it orders two windows' status frames, which
// may come within one millisecond.
type window struct {
	conn     ConnID // the connection that holds it; while dropped, the one that held it last
	project  string
	language string
	statusAt int64 // unix ns of the last status frame; 0 before the first
	dropAt   int64 // unix ms last heard from before the drop: becomes last seen
	expires  int64 // unix ms, end of the resume window while dropped
	token    [sha256.Size]byte
	// 32 bits of generation: one user would need 4 billion drops within one resume window
	// for a stale timer to match.
	gen      uint32 // resume timer generation (User.resumeGen); 0: no timer
	activity wire.Activity
	dropped  bool
}

// User is the rules of one user: window aggregation, debounce, away, resume and invisible.
// It is a plain value owned by one goroutine (the user actor's); it reads no clock and starts
// nothing: every method takes now and returns Effects.
//
// The small fields are kept together at the end: one user per connection, and scattered
// among the words they padded the struct from the 240-byte size class to the 288 one.
type User struct {
	env *UserEnv // the node's: one pointer, not a copy per user

	windows      windowSet
	lastSeen     int64 // ms; frozen while invisible
	lastActivity int64 // unix ns of the last activity (0: none), not a time.Time: 16 bytes fewer a user
	published    Published
	login        string
	graphVersion uint64

	debounceGen uint64
	awayGen     uint64
	resumeGen   uint32

	invisible    bool
	away         bool
	debounceOpen bool
	awayArmed    bool
	privacy      Privacy
}

// NewUser makes a user with no windows from the public part of its record.
func NewUser(env *UserEnv, published Published, invisible bool, lastSeen int64) *User {
	u, _ := RestoreUser(env, UserState{Published: published, Invisible: invisible, LastSeen: lastSeen}, time.Time{})
	return u
}

// WindowState is one window as persisted.
type WindowState struct {
	ID        string
	Conn      ConnID // the connection holding it, or the last one before a drop
	Activity  wire.Activity
	Project   string
	Language  string
	StatusAt  time.Time
	Dropped   bool
	DropAt    time.Time
	Expires   time.Time
	TokenHash [sha256.Size]byte
}

// UserState is everything a user actor persists to be rebuilt on another node.
type UserState struct {
	Published    Published
	Invisible    bool
	LastSeen     int64
	LastActivity time.Time
	Away         bool
	Windows      []WindowState
	Login        string
	Privacy      Privacy
	GraphVersion uint64
}

// State returns what to persist.
func (u *User) State() UserState {
	st := UserState{Published: u.published, Invisible: u.invisible, LastSeen: u.lastSeen, LastActivity: fromEpoch(u.lastActivity, time.Nanosecond), Away: u.away,
		Login: u.login, Privacy: u.privacy, GraphVersion: u.graphVersion}
	for id, w := range u.windows.all() {
		ws := WindowState{ID: id, Conn: w.conn, Activity: w.activity, Project: w.project, Language: w.language,
			StatusAt: fromEpoch(w.statusAt, time.Nanosecond), Dropped: w.dropped, DropAt: timeOrZero(w.dropAt), Expires: timeOrZero(w.expires), TokenHash: w.token}
		st.Windows = append(st.Windows, ws)
	}
	return st
}

// RestoreUser rebuilds a user from its persisted state at now. Windows that were live stay
// attached to their connections (the shell watches them: a connection whose node died ends up
// dropped); windows that waited for a resume wait until their old deadline. The effects arm the
// timers the state needs.
func RestoreUser(env *UserEnv, st UserState, now time.Time) (*User, Effects) {
	u := &User{env: env, published: st.Published,
		invisible: st.Invisible, lastSeen: st.LastSeen, lastActivity: sinceEpoch(st.LastActivity, time.Nanosecond), away: st.Away,
		login: st.Login, privacy: st.Privacy, graphVersion: st.GraphVersion}
	var eff Effects
	for _, ws := range st.Windows {
		w := &window{conn: ws.Conn, activity: ws.Activity, project: ws.Project, language: ws.Language,
			statusAt: sinceEpoch(ws.StatusAt, time.Nanosecond), dropped: ws.Dropped, dropAt: msOrZero(ws.DropAt), expires: msOrZero(ws.Expires), token: ws.TokenHash}
		if w.dropped {
			u.resumeGen++
			w.gen = u.resumeGen
			eff.Timers = append(eff.Timers, Timer{Kind: TimerResume, Window: ws.ID, Gen: uint64(w.gen), At: maxTime(ws.Expires, now)})
		}
		u.windows.put(ws.ID, w)
	}
	if u.windows.len() > 0 {
		u.armAway(&eff)
		u.changed(now, &eff)
	}
	return u, u.finish(now, eff)
}

func maxTime(a, b time.Time) time.Time {
	if a.After(b) {
		return a
	}
	return b
}

// Published returns the presence last published.
func (u *User) Published() Published { return u.published }

// Invisible reports the user-wide invisible flag.
func (u *User) Invisible() bool { return u.invisible }

// LastSeen returns the last seen time (ms) that the record holds.
func (u *User) LastSeen() int64 { return u.lastSeen }

// Windows returns how many windows the user has, live or waiting for resume.
func (u *User) Windows() int { return u.windows.len() }

// Privacy returns the user's sharing settings.
func (u *User) Privacy() Privacy { return u.privacy }

// Current is the aggregate presence followers should see now, with hidden fields removed: a
// hidden project never leaves the user actor, and changing it publishes nothing.
func (u *User) Current() wire.Presence {
	if u.invisible || u.windows.len() == 0 {
		return wire.Presence{State: wire.StateOffline, TS: u.lastSeen}
	}
	var best *window
	for _, w := range u.windows.all() {
		if best == nil || w.activity > best.activity ||
			(w.activity == best.activity && w.statusAt > best.statusAt) {
			best = w
		}
	}
	p := wire.Presence{State: wire.StateOnline, Activity: best.activity, Project: best.project, Language: best.language}
	if u.privacy.HideProject {
		p.Project = ""
	}
	if u.privacy.HideLanguage {
		p.Language = ""
	}
	if u.away {
		p.State = wire.StateAway
	}
	return p
}

func hashToken(t string) [sha256.Size]byte { return sha256.Sum256([]byte(t)) }

// Attach handles a hello for this user: a fresh window, a window id reused by a fresh hello
// (replaced silently), or a resume by token.
func (u *User) Attach(now time.Time, windowID, resume string, conn ConnID) (AttachResult, Effects) {
	var eff Effects
	if resume != "" {
		h := hashToken(resume)
		var found string
		for id, w := range u.windows.all() {
			if subtle.ConstantTimeCompare(h[:], w.token[:]) == 1 {
				found = id
			}
		}
		if found == "" {
			return AttachResult{Err: &wire.Error{Code: wire.ErrResumeFailed, Msg: "resume token is unknown, used or expired: hello again without resume", Close: wire.CloseResumeFailed}}, u.finish(now, eff)
		}
		w := u.windows.get(found)
		u.takeOver(w, conn, &eff)
		w.conn, w.dropped = conn, false
		w.gen = 0
		tok := u.env.NewToken()
		w.token = hashToken(tok)
		eff.Persist = true
		return AttachResult{Window: found, Resume: tok, Resumed: true}, u.finish(now, eff)
	}
	if windowID == "" {
		windowID = "w-" + u.env.NewToken()[:16]
	}
	if u.windows.len() == 0 {
		// Coming online starts the away clock; a hello is otherwise not activity.
		u.lastActivity = now.UnixNano()
		u.away = false
	}
	w := u.windows.get(windowID)
	ok := w != nil
	if ok {
		u.takeOver(w, conn, &eff)
		*w = window{}
	} else {
		w = &window{}
		u.windows.put(windowID, w)
	}
	w.conn = conn
	tok := u.env.NewToken()
	w.token = hashToken(tok)
	u.armAway(&eff)
	u.changed(now, &eff)
	eff.Persist = true
	return AttachResult{Window: windowID, Resume: tok}, u.finish(now, eff)
}

// Reattach lets the connection that held a window find it again after the user actor moved
// (rebuilt on another node): the token is checked but not rotated, since the client was told
// nothing. Any other connection, or a token that matches no window, fails like a bad resume.
func (u *User) Reattach(now time.Time, resume string, conn ConnID) (AttachResult, Effects) {
	var eff Effects
	h := hashToken(resume)
	for id, w := range u.windows.all() {
		if subtle.ConstantTimeCompare(h[:], w.token[:]) == 1 && w.conn == conn {
			w.dropped, w.gen = false, 0
			eff.Persist = true
			return AttachResult{Window: id, Resumed: true}, u.finish(now, eff)
		}
	}
	return AttachResult{Err: &wire.Error{Code: wire.ErrResumeFailed, Msg: "your session could not be found again: hello again", Close: wire.CloseResumeFailed}}, u.finish(now, eff)
}

// takeOver closes the socket that still holds w, if any and if it is not conn, the one taking
// w now: a connection actor restarted after a panic asks again for the window it holds.
func (u *User) takeOver(w *window, conn ConnID, eff *Effects) {
	if !w.dropped && w.conn != (ConnID{}) && w.conn != conn {
		eff.Kicks = append(eff.Kicks, Kick{Conn: w.conn, Close: wire.CloseReplaced, Code: wire.ErrReplaced, Msg: "another connection took this window over"})
	}
}

// owned returns the window if conn holds it now; frames from a replaced socket are ignored.
func (u *User) owned(windowID string, conn ConnID) *window {
	w := u.windows.get(windowID)
	if w == nil || w.dropped || w.conn != conn {
		return nil
	}
	return w
}

// Status applies a status frame of one window. Any status frame is activity.
func (u *User) Status(now time.Time, windowID string, conn ConnID, s wire.Status) Effects {
	var eff Effects
	w := u.owned(windowID, conn)
	if w == nil {
		return u.finish(now, eff)
	}
	if s.Has&wire.FieldActivity != 0 {
		w.activity = s.Activity
	}
	if s.Has&wire.FieldProject != 0 {
		w.project = s.Project
	}
	if s.Has&wire.FieldLanguage != 0 {
		w.language = s.Language
	}
	w.statusAt = sinceEpoch(now, time.Nanosecond)
	u.lastActivity = now.UnixNano()
	u.away = false
	u.armAway(&eff)
	u.changed(now, &eff)
	return u.finish(now, eff)
}

// SetInvisible turns invisibility on or off. It is published at once and closes the current
// debounce window: going invisible sends x with the moment it began (unless followers still see
// the user offline: then nothing is sent), and last seen stays frozen there; going visible sends
// the current state.
func (u *User) SetInvisible(now time.Time, windowID string, conn ConnID, on bool) Effects {
	var eff Effects
	if u.owned(windowID, conn) == nil || on == u.invisible {
		return u.finish(now, eff)
	}
	u.invisible = on
	if on && u.published.Presence.State != wire.StateOffline {
		// Followers saw her online: last seen is now. If they still see her offline (she went
		// invisible before her coming online was published), nothing changes for them: no x, and
		// last seen stays where it was, so nobody learns she was here.
		u.lastSeen = now.UnixMilli()
	}
	eff.Persist = true
	u.debounceOpen = false
	u.debounceGen++
	if cur := u.Current(); cur != u.published.Presence {
		u.publish(cur, &eff)
	}
	return u.finish(now, eff)
}

// Conns returns the connections that hold live windows.
func (u *User) Conns() []ConnID {
	var out []ConnID
	for _, w := range u.windows.all() {
		if !w.dropped {
			out = append(out, w.conn)
		}
	}
	return out
}

// WindowOf returns the window conn holds, or "".
func (u *User) WindowOf(conn ConnID) string {
	for id, w := range u.windows.all() {
		if !w.dropped && w.conn == conn {
			return id
		}
	}
	return ""
}

// Detach ends the connection of a window: bye removes it now, a drop keeps it for the resume
// window. lastHeard is when the client was last heard from (the drop's last seen). A bye from
// the connection that held a window still counts after the window was dropped (a watch may
// report the connection's end before its bye arrives).
func (u *User) Detach(now time.Time, windowID string, conn ConnID, bye bool, lastHeard time.Time) Effects {
	var eff Effects
	w := u.owned(windowID, conn)
	if w == nil && bye {
		if lw := u.windows.get(windowID); lw != nil && lw.dropped && lw.conn == conn {
			w = lw
		}
	}
	if w == nil {
		return u.finish(now, eff)
	}
	eff.Persist = true
	if bye {
		u.windows.del(windowID)
		u.leftAt(now, &eff)
		u.changed(now, &eff)
		return u.finish(now, eff)
	}
	u.resumeGen++
	w.dropped, w.dropAt, w.gen = true, msOrZero(lastHeard), u.resumeGen
	w.expires = msOrZero(now.Add(u.env.Config.ResumeWindow))
	eff.Timers = append(eff.Timers, Timer{Kind: TimerResume, Window: windowID, Gen: uint64(w.gen), At: now.Add(u.env.Config.ResumeWindow)})
	return u.finish(now, eff)
}

// leftAt records last seen when the last window went away (frozen while invisible).
func (u *User) leftAt(t time.Time, eff *Effects) {
	if u.windows.len() == 0 && !u.invisible {
		u.lastSeen = t.UnixMilli()
		eff.Persist = true
	}
}

// Fire runs a timer the shell armed. Stale generations do nothing.
func (u *User) Fire(now time.Time, t Timer) Effects {
	var eff Effects
	switch t.Kind {
	case TimerDebounce:
		if u.debounceOpen && t.Gen == u.debounceGen {
			u.debounceOpen = false
			if cur := u.Current(); cur != u.published.Presence {
				u.publish(cur, &eff)
			}
		}
	case TimerAway:
		if t.Gen != u.awayGen || !u.awayArmed {
			break
		}
		u.awayArmed = false
		if u.windows.len() == 0 || u.away {
			break
		}
		if deadline := fromEpoch(u.lastActivity, time.Nanosecond).Add(u.env.Config.AwayAfter); now.Before(deadline) {
			u.armAway(&eff)
			break
		}
		u.away = true
		u.changed(now, &eff)
	case TimerResume:
		w := u.windows.get(t.Window)
		if w == nil || !w.dropped || uint64(w.gen) != t.Gen {
			break
		}
		u.windows.del(t.Window)
		eff.Persist = true
		u.leftAt(timeOrZero(w.dropAt), &eff)
		u.changed(now, &eff)
	}
	return u.finish(now, eff)
}

// armAway makes sure one away timer is pending while the user has windows. The timer checks the
// deadline when it fires, so activity never has to re-arm it.
func (u *User) armAway(eff *Effects) {
	if u.awayArmed || u.away || u.windows.len() == 0 {
		return
	}
	u.awayArmed = true
	u.awayGen++
	eff.Timers = append(eff.Timers, Timer{Kind: TimerAway, Gen: u.awayGen, At: fromEpoch(u.lastActivity, time.Nanosecond).Add(u.env.Config.AwayAfter)})
}

// changed opens a debounce window if what followers should see differs from what they saw.
func (u *User) changed(now time.Time, eff *Effects) {
	if u.debounceOpen || u.invisible || u.Current() == u.published.Presence {
		return
	}
	u.debounceOpen = true
	u.debounceGen++
	eff.Timers = append(eff.Timers, Timer{Kind: TimerDebounce, Gen: u.debounceGen, At: now.Add(u.env.Config.Debounce)})
}

func (u *User) audience() Audience {
	return Audience{Login: u.login, Mutual: u.privacy.Mutual, GraphVersion: u.graphVersion}
}

func (u *User) publish(p wire.Presence, eff *Effects) {
	u.published = Published{Presence: p, Version: u.published.Version + 1, Audience: u.audience()}
	pub := u.published
	eff.Publish = &pub
	eff.Persist = true
}

// Republish publishes the current public state again under a new version, for followers that
// may have missed messages while the bus or the store was down (a no-op frame for the others).
func (u *User) Republish() Effects {
	var eff Effects
	u.publish(u.published.Presence, &eff)
	return u.finish(time.Time{}, eff)
}

// publishNow closes the debounce window and publishes what followers should see now, with the
// current audience (decision 5: privacy changes are published at once).
func (u *User) publishNow(eff *Effects) {
	u.debounceOpen = false
	u.debounceGen++
	cur := u.Current()
	if u.invisible {
		// Nothing about an invisible user moves: followers keep the frozen x.
		cur = u.published.Presence
	}
	u.publish(cur, eff)
}

// Identify records the name and following-list version a verified hello brought. A new login
// (a GitHub rename) or, for a mutual-only user, a newer following list changes the audience of
// what followers were sent, so it is published at once. A user never published keeps it for
// the first publish.
func (u *User) Identify(now time.Time, login string, graphVersion uint64) Effects {
	var eff Effects
	before := u.audience()
	if login != "" && login != u.login {
		u.login = login
		eff.Persist = true
	}
	if graphVersion > u.graphVersion {
		u.graphVersion = graphVersion
		eff.Persist = true
	}
	if u.published.Version > 0 && u.visibleAudience(before) != u.visibleAudience(u.audience()) {
		u.publishNow(&eff)
	}
	return u.finish(now, eff)
}

// visibleAudience drops the graph version when it decides nothing (the user is not mutual-only).
func (u *User) visibleAudience(a Audience) Audience {
	if !a.Mutual {
		a.GraphVersion = 0
	}
	return a
}

// GraphChanged: the user's following list has a new version (a refresh found changes).
func (u *User) GraphChanged(now time.Time, version uint64) Effects {
	return u.Identify(now, "", version)
}

// SetPrivacy applies a privacy frame from one of the user's windows. It is user-wide, persisted
// and published at once, closing any open debounce window.
func (u *User) SetPrivacy(now time.Time, windowID string, conn ConnID, c PrivacyChange) Effects {
	var eff Effects
	if u.owned(windowID, conn) == nil {
		return u.finish(now, eff)
	}
	p := u.privacy
	if c.Mutual != nil {
		p.Mutual = *c.Mutual
	}
	if c.ShareProject != nil {
		p.HideProject = !*c.ShareProject
	}
	if c.ShareLanguage != nil {
		p.HideLanguage = !*c.ShareLanguage
	}
	if p == u.privacy {
		return u.finish(now, eff)
	}
	u.privacy = p
	eff.Persist = true
	if u.published.Version > 0 || u.Current() != u.published.Presence {
		u.publishNow(&eff)
	}
	return u.finish(now, eff)
}

// Idle reports that nothing is left to do: no windows and no change pending.
func (u *User) Idle() bool { return u.windows.len() == 0 && !u.debounceOpen }

func (u *User) finish(_ time.Time, eff Effects) Effects {
	eff.Retire = u.Idle()
	return eff
}
