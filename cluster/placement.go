package cluster

import "github.com/asynkron/protoactor-go/actor"

// Placement says where a user's actor lives and gets messages to it. Locally it is a registry of
// actors spawned on demand; in a cluster it becomes a grain lookup.
type Placement interface {
	// Send delivers msg to user's actor, activating it when needed. Replies go to sender, which
	// may be nil. It never blocks on the actor.
	Send(user string, msg any, sender *actor.PID)
	// Retire removes pid as user's activation if it still is one and reports whether it did.
	// The caller then stops pid and forwards whatever it still receives with Send.
	Retire(user string, pid *actor.PID) bool
}
