package cluster

import (
	"context"
	"errors"
	"time"
)

// ErrNotFound: the store holds nothing for that user.
var ErrNotFound = errors.New("cluster: not found")

// LeaseTTL is how long a user's lease lasts without a write or a renewal. Each node renews the
// leases of its user actors every third of it (actors.Leases).
const LeaseTTL = 30 * time.Second

// ErrFenced: a newer activation of the user acquired it; this one may no longer write.
var ErrFenced = errors.New("cluster: fenced by a newer activation")

// Store keeps, per user, the record its user actor rebuilds from (last seen, invisible flag,
// last published presence and version) and the public presence that sync reads.
// Values are opaque bytes (protobuf, see actors/actorpb); the user actor is the only writer of
// a user's keys.
//
// Leases and fencing: an activation of a user actor calls Acquire before its first write. It
// gets the user's lease (for LeaseTTL, extended by every SaveUser and RenewMany) and an epoch larger
// than any before, which it passes to every write. The newest activation always gets the lease,
// and any older one (double activation after a cluster member rejoins) gets ErrFenced: it can
// never overwrite or publish again. A lapsed lease (its holder stopped renewing, or the store
// lost its data) is reclaimed by its holder's next write, unless another activation acquired
// the user since.
type Store interface {
	// LoadUser returns the user's record, or ErrNotFound.
	LoadUser(ctx context.Context, user string) ([]byte, error)
	// Acquire makes the caller the one writer of user and returns its fencing epoch.
	Acquire(ctx context.Context, user string) (uint64, error)
	// RenewMany extends many users' leases in one round trip: fenced[i] reports that
	// leases[i] is held by another activation (and was not renewed). After an error, any of
	// them may or may not have been renewed.
	RenewMany(ctx context.Context, leases []Lease) (fenced []bool, err error)
	// SaveUser writes the record and the public presence together while epoch holds the
	// lease (and extends it); ErrFenced otherwise.
	SaveUser(ctx context.Context, user string, epoch uint64, record, presence []byte) error
	// Presences reads the public presence of many users in one round trip; nil where unknown.
	Presences(ctx context.Context, users []string) ([][]byte, error)
}

// Lease names one activation's hold on a user: the epoch Acquire gave it.
type Lease struct {
	User  string
	Epoch uint64
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
