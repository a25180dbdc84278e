// Package auth says who a hello token belongs to and whom that user follows.
package auth

import (
	"context"
	"errors"
)

// ErrUnauthorized: the token names no one. Callers close with wire.CloseUnauthorized.
var ErrUnauthorized = errors.New("auth: token not accepted")

// Identity is a verified user: ID keys it internally, Login is what the wire shows.
type Identity struct {
	ID    string
	Login string
}

// Authenticator verifies hello tokens. It may do I/O; it is called from the connection's reader
// goroutine, never from an actor.
type Authenticator interface {
	Authenticate(ctx context.Context, token string) (Identity, error)
}

// Graph answers whom a user follows (one way: following someone does not make you visible to
// them).
type Graph interface {
	Following(ctx context.Context, id string) ([]string, error)
}
