package cluster

import (
	"time"

	"github.com/asynkron/protoactor-go/actor"
	pcluster "github.com/asynkron/protoactor-go/cluster"
	"go.uber.org/zap"
)

var _ Placement = (*GrainPlacement)(nil)

// UserKind is the Proto.Actor cluster kind of user actors; a user's grain identity is its id
// (so its full name is user/<id>).
const UserKind = "user"

// GrainPlacement places user actors as Proto.Actor cluster grains: the cluster picks the member,
// and every node reaches a user's one activation by identity.
type GrainPlacement struct {
	c    *pcluster.Cluster
	root *actor.RootContext
	log  *zap.Logger
}

// NewGrainPlacement uses the started cluster c.
func NewGrainPlacement(c *pcluster.Cluster, log *zap.Logger) *GrainPlacement {
	return &GrainPlacement{c: c, root: c.ActorSystem.Root, log: log}
}

// Send looks the grain up (cached after the first time; the first lookup of a user may wait for
// the cluster to place it) and sends msg with sender as the reply address.
func (p *GrainPlacement) Send(user string, msg any, sender *actor.PID) {
	var pid *actor.PID
	for try, wait := 0, 20*time.Millisecond; try < 5; try, wait = try+1, 2*wait {
		if pid = p.c.Get(user, UserKind); pid != nil {
			break
		}
		time.Sleep(wait) // the member list is settling: nothing to wait on but time
	}
	if pid == nil {
		p.log.Error("no member can host this user now; message dropped", zap.String("user", user))
		return
	}
	if sender != nil {
		p.root.RequestWithCustomSender(pid, msg, sender)
		return
	}
	p.root.Send(pid, msg)
}

// Retire refuses: grains are not passivated yet (a message racing the passivation could reach
// a stopped grain through the cluster's PID cache). Idle grains cost one small actor each.
func (p *GrainPlacement) Retire(string, *actor.PID) bool { return false }
