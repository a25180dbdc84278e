package cluster

import (
	"context"
	"errors"
)

// ErrNotFound: the store holds nothing for that user.
var ErrNotFound = errors.New("cluster: not found")

// Store keeps, per user, the record its user actor rebuilds from (last seen, invisible flag,
// last published presence and version) and the public presence that sync reads.
// Values are opaque bytes (protobuf, see actors/actorpb); the user actor is the only writer of
// a user's keys.
type Store interface {
	// LoadUser returns the user's record, or ErrNotFound.
	LoadUser(ctx context.Context, user string) ([]byte, error)
	// SaveUser writes the record and the public presence together.
	SaveUser(ctx context.Context, user string, record, presence []byte) error
	// Presences reads the public presence of many users in one round trip; nil where unknown.
	Presences(ctx context.Context, users []string) ([][]byte, error)
}
