package actors

import (
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
		User:       user,
		Version:    pub.Version,
		State:      int32(p.State),
		Activity:   int32(p.Activity),
		Project:    p.Project,
		Language:   p.Language,
		LastSeenMs: p.TS,
	}
}

func typeName(env *actorpb.Envelope) string {
	if env.GetBody() == nil {
		return "empty"
	}
	return string(env.ProtoReflect().WhichOneof(env.ProtoReflect().Descriptor().Oneofs().ByName("body")).Name())
}
