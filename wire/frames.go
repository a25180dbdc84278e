// Package wire is the presenced protocol: the frames, their limits, strict decoding, encoding and
// the delta rules. It imports only the standard library and does no I/O.
//
// The flow of one WebSocket (JSON text frames, one object per frame):
//
//	client                                   server
//	hello {token, window?, resume?}   ──►
//	                                  ◄──    welcome {id, resume, resumed}
//	                                  ◄──    sync {users: [...]}          every followed user
//	status {a?, p?, l?}               ──►                                 activity; resets away
//	invisible {on}                    ──►
//	                                  ◄──    u {id, s?, a?, p?, l?}       only changed fields ("" clears)
//	                                  ◄──    o {id, s, a?, p?, l?}        came online
//	                                  ◄──    x {id, ts?}                  went offline; ts = last seen
//	ping                              ──►
//	                                  ◄──    pong                         after every frame queued before it
//	bye                               ──►                                 window ends on purpose
//	                                  ◄──    close 1000
//
// Any close the server starts for a reason is preceded by error {code, msg}; codes.go is the table.
package wire

// Limits on client input. Each one is documented in docs/protocol.md.
const (
	MaxFrameBytes    = 4096 // a larger frame closes with 1009
	MaxTokenBytes    = 256
	MaxWindowBytes   = 64
	MaxResumeBytes   = 128
	MaxProjectBytes  = 128
	MaxLanguageBytes = 32
)

// Frame is one decoded frame. The set is sealed: a type switch over the types in this file covers
// every case.
type Frame interface{ isFrame() }

// Client → server frames.
type (
	// Hello must be the first frame.
	Hello struct {
		Token  string
		Window string // optional: the server makes one when empty
		Resume string // optional resume token from an earlier welcome
	}
	// Status reports what one editor window does. Has says which fields were present.
	Status struct {
		Has      Fields
		Activity Activity
		Project  string
		Language string
	}
	// Invisible turns user-wide invisibility on or off.
	Invisible struct{ On bool }
	// Privacy changes who may see the user and which fields they see. Has says which of the
	// three settings the frame carries; the others keep their value.
	Privacy struct {
		Has           PrivacyFields
		VisibleTo     Audience
		ShareProject  bool
		ShareLanguage bool
	}
	// Ping asks for a pong; it is not activity.
	Ping struct{}
	// Bye ends this window on purpose: no resume window.
	Bye struct{}
)

// Server → client frames.
type (
	Welcome struct {
		ID      string
		Resume  string
		Resumed bool
	}
	Sync struct{ Users []SyncUser }
	// SyncUser is one followed user in a sync; offline users carry TS (last seen, ms) when known.
	SyncUser struct {
		Username string
		Presence Presence
	}
	// Update carries only the fields in Has; an empty string clears a field.
	Update struct {
		ID       string
		Has      Fields
		State    State
		Activity Activity
		Project  string
		Language string
		FT       FlushTime
	}
	// Online says a user came online with its whole state.
	Online struct {
		ID       string
		Presence Presence
		FT       FlushTime
	}
	// Offline says a user went offline; TS (ms) is last seen, 0 when not shown.
	Offline struct {
		ID string
		TS int64
		FT FlushTime
	}
	Pong       struct{}
	ErrorFrame struct {
		Code string
		Msg  string
	}
)

func (Hello) isFrame()      {}
func (Status) isFrame()     {}
func (Invisible) isFrame()  {}
func (Privacy) isFrame()    {}
func (Ping) isFrame()       {}
func (Bye) isFrame()        {}
func (Welcome) isFrame()    {}
func (Sync) isFrame()       {}
func (Update) isFrame()     {}
func (Online) isFrame()     {}
func (Offline) isFrame()    {}
func (Pong) isFrame()       {}
func (ErrorFrame) isFrame() {}

// FlushTime is the test-only "ft" field of u, o and x: when the user's node flushed the change
// (its debounce ended and it published), in unix µs. Only a node started with --stamp-flush
// sends it, so that a load test on the same clock can measure flush to receipt; 0: absent.
// Clients ignore it like any unknown field.
type FlushTime int64

// Fields is a set of presence fields.
type Fields uint8

const (
	FieldState Fields = 1 << iota
	FieldActivity
	FieldProject
	FieldLanguage
)

// State is what followers see of a user as a whole.
type State uint8

const (
	StateOffline State = iota
	StateOnline
	StateAway
)

var stateNames = [...]string{"Offline", "Online", "Away"}

func (s State) String() string {
	if int(s) < len(stateNames) {
		return stateNames[s]
	}
	return "Offline"
}

// ParseState is the inverse of State.String.
func ParseState(s string) (State, bool) {
	for i, n := range stateNames {
		if n == s {
			return State(i), true
		}
	}
	return StateOffline, false
}

// Activity is what one window does, ordered by priority: the highest wins across windows.
type Activity uint8

const (
	Idle Activity = iota
	Coding
	Debugging
)

var activityNames = [...]string{"Idle", "Coding", "Debugging"}

func (a Activity) String() string {
	if int(a) < len(activityNames) {
		return activityNames[a]
	}
	return "Idle"
}

// ParseActivity is the inverse of Activity.String; the names are case-sensitive.
func ParseActivity(s string) (Activity, bool) {
	for i, n := range activityNames {
		if n == s {
			return Activity(i), true
		}
	}
	return Idle, false
}

// PrivacyFields says which settings a privacy frame carries.
type PrivacyFields uint8

const (
	PrivacyVisibleTo PrivacyFields = 1 << iota
	PrivacyShareProject
	PrivacyShareLanguage
)

// Audience is who may see a user: every follower (the default) or only the followers the user
// follows back. GitHub follows are one way, so a stranger can follow anyone.
type Audience uint8

const (
	AudienceFollowers Audience = iota
	AudienceMutual
)

func (a Audience) String() string {
	if a == AudienceMutual {
		return "mutual"
	}
	return "followers"
}

// ParseAudience reads "followers" or "mutual".
func ParseAudience(s string) (Audience, bool) {
	switch s {
	case "followers":
		return AudienceFollowers, true
	case "mutual":
		return AudienceMutual, true
	}
	return 0, false
}
