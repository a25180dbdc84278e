// Package auth says who a hello token belongs to and whom that user follows.
package auth

import (
	"context"
	"errors"
	"time"
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

// Followee is one user someone follows: ID keys it, Login is the name the wire shows.
type Followee struct {
	ID    string `json:"id"`
	Login string `json:"login"`
}

// FollowList is whom a user follows, with what the source needs to revalidate it cheaply
// (GitHub: each page's ETag). Validators are opaque to everyone but the source.
type FollowList struct {
	Users      []Followee `json:"users"`
	Validators []byte     `json:"validators,omitempty"`
}

// Graph answers whom a user follows (one way: following someone does not make you visible to
// them). Nothing ever asks who follows a user: that is the inverse of the lists of the users
// who connect.
type Graph interface {
	// Fetch reads whom who follows. token is who's hello token (GitHub reads the list with it).
	// prev is the last good list (nil if none): when the source can tell nothing changed it
	// returns prev and changed=false. On error the caller keeps prev: a source never empties a
	// graph because it failed.
	Fetch(ctx context.Context, who Identity, token string, prev *FollowList) (list *FollowList, changed bool, err error)
}

// Revoker is implemented by authenticators that can learn from elsewhere that a token stopped
// working (a graph refresh got 401): the token is refused from then on.
type Revoker interface {
	Revoke(token string)
}

// RetryLater is implemented by errors that say when the source may be asked again (GitHub's
// rate limits): until then a refresh would only fail.
type RetryLater interface {
	error
	RetryAt() time.Time
}
