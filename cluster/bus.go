// Package cluster holds the seams between one node and the rest of the system: where a user
// actor lives (Placement), how a user's changes reach other nodes (Bus) and where user state is
// kept (Store). Each seam has an in-memory implementation for the embedded single node.
package cluster

import "context"

// Bus carries each user's published changes on the per-user channel presence:<user>.
// A node subscribes to a user's channel only while some local connection follows that user;
// reference counting is the caller's job (actors.Fanout), a Bus sees one Subscribe per channel.
//
// Deliveries go to the Deliver func given to the constructor. Deliver is called from the bus's
// own goroutine (or, for the memory bus, from the publisher's) and must not block.
type Bus interface {
	Publish(ctx context.Context, user string, payload []byte) error
	Subscribe(ctx context.Context, user string) error
	Unsubscribe(ctx context.Context, user string) error
}

// Deliver receives one payload published on user's channel.
type Deliver func(user string, payload []byte)

// Channel is the name of a user's channel.
func Channel(user string) string { return "presence:" + user }
