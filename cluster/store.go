package cluster

import (
	"context"
	"errors"
)

// ErrNotFound: the store holds nothing for that user.
var ErrNotFound = errors.New("cluster: not found")

// ErrFenced: a newer activation of the user acquired it; this one may no longer write.
var ErrFenced = errors.New("cluster: fenced by a newer activation")

// Store keeps, per user, the record its user actor rebuilds from (last seen, invisible flag,
// last published presence and version) and the public presence that sync reads.
// Values are opaque bytes (protobuf, see actors/actorpb); the user actor is the only writer of
// a user's keys.
//
// Fencing: an activation of a user actor calls Acquire before its first write and passes the
// epoch to every SaveUser. Acquire always succeeds with an epoch larger than any before, so the
// newest activation wins and any older one (double activation after a cluster member rejoins)
// gets ErrFenced: it can never overwrite or publish again. A user with no epoch (never acquired,
// or the store lost its data) is claimed by the first writer.
type Store interface {
	// LoadUser returns the user's record, or ErrNotFound.
	LoadUser(ctx context.Context, user string) ([]byte, error)
	// Acquire makes the caller the one writer of user and returns its fencing epoch.
	Acquire(ctx context.Context, user string) (uint64, error)
	// SaveUser writes the record and the public presence together if epoch is still the
	// user's; ErrFenced otherwise.
	SaveUser(ctx context.Context, user string, epoch uint64, record, presence []byte) error
	// Presences reads the public presence of many users in one round trip; nil where unknown.
	Presences(ctx context.Context, users []string) ([][]byte, error)
}

// AtomicPublisher is a Store that can also publish on the user's channel in the same fenced,
// atomic step (Redis: one script). The user actor prefers it to SaveUser then Bus.Publish.
type AtomicPublisher interface {
	SaveAndPublish(ctx context.Context, user string, epoch uint64, record, presence []byte) error
}

// GrainTracker is a Store that records which cluster member hosts which user actors, so the
// survivors can wake the users of a member that died.
type GrainTracker interface {
	Track(ctx context.Context, member, user string) error
	Untrack(ctx context.Context, member, user string) error
	// TakeOrphans returns and forgets the users member hosted.
	TakeOrphans(ctx context.Context, member string) ([]string, error)
}
