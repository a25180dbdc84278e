package actors

import (
	"time"

	"github.com/asynkron/protoactor-go/actor"
	"github.com/presenced/presenced/actors/actorpb"
	"github.com/presenced/presenced/wire"
	"google.golang.org/protobuf/reflect/protoreflect"
)

// envelope wraps a body in the current envelope version.
func envelope(body isBody) *actorpb.Envelope {
	e := &actorpb.Envelope{Version: actorpb.EnvelopeVersion}
	switch b := body.(type) {
	case *actorpb.Attach:
		e.Body = &actorpb.Envelope_Attach{Attach: b}
	case *actorpb.AttachReply:
		e.Body = &actorpb.Envelope_AttachReply{AttachReply: b}
	case *actorpb.StatusReport:
		e.Body = &actorpb.Envelope_Status{Status: b}
	case *actorpb.SetInvisible:
		e.Body = &actorpb.Envelope_Invisible{Invisible: b}
	case *actorpb.Detach:
		e.Body = &actorpb.Envelope_Detach{Detach: b}
	case *actorpb.Kick:
		e.Body = &actorpb.Envelope_Kick{Kick: b}
	case *actorpb.PresenceUpdate:
		e.Body = &actorpb.Envelope_Update{Update: b}
	case *actorpb.Wake:
		e.Body = &actorpb.Envelope_Wake{Wake: b}
	case *actorpb.SetPrivacy:
		e.Body = &actorpb.Envelope_Privacy{Privacy: b}
	case *actorpb.GraphChanged:
		e.Body = &actorpb.Envelope_GraphChanged{GraphChanged: b}
	}
	return e
}

// isBody is implemented by every message that may travel in an envelope.
type isBody interface{ ProtoReflect() protoreflect.Message }

func connRef(pid *actor.PID) *actorpb.ConnRef {
	return &actorpb.ConnRef{Address: pid.GetAddress(), Id: pid.GetId()}
}

func connID(r *actorpb.ConnRef) ConnID { return ConnID{Address: r.GetAddress(), ID: r.GetId()} }

func (c ConnID) pid() *actor.PID { return actor.NewPID(c.Address, c.ID) }

// WakeEnvelope is the message that activates a user actor to rebuild it.
func WakeEnvelope() *actorpb.Envelope { return envelope(&actorpb.Wake{}) }

// GraphChangedEnvelope tells a user actor its following list has a new version.
func GraphChangedEnvelope(version uint64) *actorpb.Envelope {
	return envelope(&actorpb.GraphChanged{Version: version})
}

// PresenceFromPB reads a published presence; nil reads as offline with no last seen.
func PresenceFromPB(p *actorpb.PresenceUpdate) wire.Presence {
	if p == nil {
		return wire.Presence{State: wire.StateOffline}
	}
	return wire.Presence{
		State:    wire.State(p.GetState()),
		Activity: wire.Activity(p.GetActivity()),
		Project:  p.GetProject(),
		Language: p.GetLanguage(),
		TS:       p.GetLastSeenMs(),
	}
}

func presenceToPB(user string, pub Published) *actorpb.PresenceUpdate {
	p := pub.Presence
	return &actorpb.PresenceUpdate{
		User:         user,
		Version:      pub.Version,
		State:        int32(p.State),
		Activity:     int32(p.Activity),
		Project:      p.Project,
		Language:     p.Language,
		LastSeenMs:   p.TS,
		Login:        pub.Audience.Login,
		Mutual:       pub.Audience.Mutual,
		GraphVersion: pub.Audience.GraphVersion,
	}
}

func typeName(env *actorpb.Envelope) string {
	if env.GetBody() == nil {
		return "empty"
	}
	return string(env.ProtoReflect().WhichOneof(env.ProtoReflect().Descriptor().Oneofs().ByName("body")).Name())
}

func stateToPB(user string, st UserState) *actorpb.UserRecord {
	r := &actorpb.UserRecord{Published: presenceToPB(user, st.Published), Invisible: st.Invisible, LastSeenMs: st.LastSeen,
		LastActivityMs: msOrZero(st.LastActivity), Away: st.Away, Login: st.Login, Mutual: st.Privacy.Mutual,
		HideProject: st.Privacy.HideProject, HideLanguage: st.Privacy.HideLanguage, GraphVersion: st.GraphVersion}
	for _, w := range st.Windows {
		r.Windows = append(r.Windows, &actorpb.WindowRecord{Id: w.ID, Conn: &actorpb.ConnRef{Address: w.Conn.Address, Id: w.Conn.ID},
			Activity: int32(w.Activity), Project: w.Project, Language: w.Language, StatusAtMs: msOrZero(w.StatusAt),
			Dropped: w.Dropped, DropAtMs: msOrZero(w.DropAt), ExpiresMs: msOrZero(w.Expires), TokenHash: w.TokenHash[:]})
	}
	return r
}

func stateFromPB(r *actorpb.UserRecord) UserState {
	pub := r.GetPublished()
	st := UserState{Published: Published{Presence: PresenceFromPB(pub), Version: pub.GetVersion(),
		Audience: Audience{Login: pub.GetLogin(), Mutual: pub.GetMutual(), GraphVersion: pub.GetGraphVersion()}},
		Invisible: r.GetInvisible(), LastSeen: r.GetLastSeenMs(), LastActivity: timeOrZero(r.GetLastActivityMs()), Away: r.GetAway(),
		Login: r.GetLogin(), Privacy: Privacy{Mutual: r.GetMutual(), HideProject: r.GetHideProject(), HideLanguage: r.GetHideLanguage()},
		GraphVersion: r.GetGraphVersion()}
	if r.GetPublished() == nil {
		st.Published.Presence.TS = r.GetLastSeenMs()
	}
	for _, w := range r.GetWindows() {
		ws := WindowState{ID: w.GetId(), Conn: connID(w.GetConn()), Activity: wire.Activity(w.GetActivity()), Project: w.GetProject(),
			Language: w.GetLanguage(), StatusAt: timeOrZero(w.GetStatusAtMs()), Dropped: w.GetDropped(),
			DropAt: timeOrZero(w.GetDropAtMs()), Expires: timeOrZero(w.GetExpiresMs())}
		copy(ws.TokenHash[:], w.GetTokenHash())
		st.Windows = append(st.Windows, ws)
	}
	return st
}

// sinceEpoch is t counted in unit since the Unix epoch, keeping the zero time as 0 (UnixMilli
// of the zero time is a large negative number); fromEpoch is its inverse. Exact from 1970 to
// 2262, the range of UnixNano that presence times live in.
func sinceEpoch(t time.Time, unit time.Duration) int64 {
	if t.IsZero() {
		return 0
	}
	return t.UnixNano() / int64(unit)
}

func fromEpoch(n int64, unit time.Duration) time.Time {
	if n == 0 {
		return time.Time{}
	}
	return time.Unix(0, n*int64(unit))
}

// msOrZero and timeOrZero are the record's unit.
func msOrZero(t time.Time) int64 { return sinceEpoch(t, time.Millisecond) }

func timeOrZero(ms int64) time.Time { return fromEpoch(ms, time.Millisecond) }
