package cluster

import (
	"context"
	"time"
)

// Follows caches every user's following list for all nodes (Redis when configured), so a
// reconnect on any node starts from the last good list, and answers the one inverse question
// presenced needs: does X follow Y (the mutual audience). Nothing ever fetches follower lists:
// "who follows Y" is known only from the lists of users who connected.
type Follows interface {
	// LoadFollowing returns user's cached record (opaque to the store), or ErrNotFound.
	LoadFollowing(ctx context.Context, user string) ([]byte, error)
	// SaveFollowing stores user's record and replaces the set of ids user follows.
	SaveFollowing(ctx context.Context, user string, rec []byte, ids []string) error
	// TouchFollowing stores a record whose list did not change (a revalidation found nothing
	// new), leaving the set alone.
	TouchFollowing(ctx context.Context, user string, rec []byte) error
	// FollowedBy reports, for each candidate, whether the candidate's cached list contains user.
	// A candidate with no cached list does not follow anyone as far as presenced knows.
	FollowedBy(ctx context.Context, user string, candidates []string) ([]bool, error)
}

// FollowsTTL is how long a cached list is kept after its last save: users who stop connecting
// are forgotten, and come back with a cold fetch.
const FollowsTTL = 30 * 24 * time.Hour
