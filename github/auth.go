package github

import (
	"context"
	"crypto/sha256"
	"encoding/hex"
	"errors"
	"fmt"
	"strconv"
	"sync"
	"sync/atomic"
	"time"

	lru "github.com/hashicorp/golang-lru/v2"

	"github.com/presenced/presenced/auth"
)

var (
	_ auth.Authenticator = (*Authenticator)(nil)
	_ auth.Revoker       = (*Authenticator)(nil)
)

// TokenKey is the hex SHA-256 of a token: the only form in which a token is kept.
func TokenKey(token string) string {
	sum := sha256.Sum256([]byte(token))
	return hex.EncodeToString(sum[:])
}

// AuthConfig configures an Authenticator. The zero value is usable.
type AuthConfig struct {
	// TTL is how long a verified token is trusted without asking GitHub again, and how long a
	// token GitHub refused is refused without asking. Default 5 minutes.
	TTL time.Duration
	// MaxEntries bounds each of the two caches (verified, refused); the least recently used
	// entry goes first. Default 100,000.
	MaxEntries int
}

const (
	defaultTTL        = 5 * time.Minute
	defaultMaxEntries = 100_000
)

// Authenticator verifies hello tokens with GET /user and caches the answer by TokenKey. It is
// safe for concurrent use; Authenticate is called from connection reader goroutines.
type Authenticator struct {
	c   *Client
	ttl time.Duration

	// Entries carry their own expiry read from the client's clock, so tests drive the TTL;
	// the caches only bound memory. (expirable.LRU reads time.Now and, in v2.0.7, starts a
	// cleanup goroutine that can never be stopped.)
	good    *lru.Cache[string, verified]  // by TokenKey
	refused *lru.Cache[string, time.Time] // by TokenKey → refused until

	mu       sync.Mutex
	inflight map[string]*verification // by TokenKey; guarded by mu
	onJoin   func()                   // tests: called when a caller joins a verification

	hits, misses, revoked atomic.Int64
}

type verified struct {
	id      auth.Identity
	expires time.Time
}

// verification is one GET /user that concurrent Authenticate calls for a token share.
type verification struct {
	done chan struct{} // closed when the fields below are set
	id   auth.Identity
	err  error
	// gaveUp: the asking caller's ctx ended, so err says nothing about the token.
	gaveUp bool
}

// AuthStats counts Authenticate outcomes since start.
type AuthStats struct {
	Hits     int64 // answered from the cache of verified tokens
	Misses   int64 // asked GitHub
	Revoked  int64 // refused at once: GitHub refused the token within TTL
	Verified int   // tokens in the verified cache now (expired ones included until evicted)
	Refused  int   // tokens in the refused cache now
}

// NewAuthenticator returns an authenticator asking GitHub through c, whose clock it shares.
func NewAuthenticator(c *Client, cfg AuthConfig) *Authenticator {
	if cfg.TTL <= 0 {
		cfg.TTL = defaultTTL
	}
	if cfg.MaxEntries <= 0 {
		cfg.MaxEntries = defaultMaxEntries
	}
	good, _ := lru.New[string, verified](cfg.MaxEntries) // errors only for a size <= 0
	refused, _ := lru.New[string, time.Time](cfg.MaxEntries)
	return &Authenticator{
		c:        c,
		ttl:      cfg.TTL,
		good:     good,
		refused:  refused,
		inflight: make(map[string]*verification),
	}
}

// Authenticate returns who the token belongs to: ID is the decimal GitHub user id, Login the
// login. A token GitHub refused (here or through Revoke) within TTL is refused at once with an
// error wrapping auth.ErrUnauthorized. A rate limit (*RateLimitError), a 5xx (*StatusError) or
// a network error is returned as is: the token may be fine, the caller should say "try again".
// Concurrent calls for the same token share one request.
func (a *Authenticator) Authenticate(ctx context.Context, token string) (auth.Identity, error) {
	if !validToken(token) {
		return auth.Identity{}, fmt.Errorf("github: malformed token: %w", ErrUnauthorized)
	}
	key := TokenKey(token)
	for {
		now := a.c.now()
		if until, ok := a.refused.Get(key); ok && now.Before(until) {
			a.revoked.Add(1)
			return auth.Identity{}, fmt.Errorf("github: token refused earlier: %w", ErrUnauthorized)
		}
		if v, ok := a.good.Get(key); ok && now.Before(v.expires) {
			a.hits.Add(1)
			return v.id, nil
		}
		a.mu.Lock()
		if v := a.inflight[key]; v != nil {
			onJoin := a.onJoin
			a.mu.Unlock()
			if onJoin != nil {
				onJoin()
			}
			select {
			case <-v.done:
			case <-ctx.Done():
				return auth.Identity{}, fmt.Errorf("github: waiting for token verification: %w", ctx.Err())
			}
			// The caller that asked may have given up (its ctx, not ours): then ask again.
			if v.gaveUp && ctx.Err() == nil {
				continue
			}
			return v.id, v.err
		}
		v := &verification{done: make(chan struct{})}
		a.inflight[key] = v
		a.mu.Unlock()

		a.misses.Add(1)
		v.id, v.err = a.verify(ctx, token, key)
		v.gaveUp = v.err != nil && ctx.Err() != nil
		a.mu.Lock()
		delete(a.inflight, key)
		a.mu.Unlock()
		close(v.done)
		return v.id, v.err
	}
}

// verify asks GitHub and caches the answer: a success as verified, a 401 as refused.
func (a *Authenticator) verify(ctx context.Context, token, key string) (auth.Identity, error) {
	u, err := a.c.User(ctx, token)
	if errors.Is(err, auth.ErrUnauthorized) {
		a.refuse(key)
		return auth.Identity{}, err
	}
	if err != nil {
		return auth.Identity{}, err
	}
	id := auth.Identity{ID: strconv.FormatInt(u.ID, 10), Login: u.Login}
	a.good.Add(key, verified{id: id, expires: a.c.now().Add(a.ttl)})
	return id, nil
}

// Revoke refuses the token for TTL and forgets it was verified. Callers use it when any
// GitHub call with the token got 401.
func (a *Authenticator) Revoke(token string) {
	a.refuse(TokenKey(token))
}

func (a *Authenticator) refuse(key string) {
	a.refused.Add(key, a.c.now().Add(a.ttl))
	a.good.Remove(key)
}

// Stats returns counts since start.
func (a *Authenticator) Stats() AuthStats {
	return AuthStats{
		Hits:     a.hits.Load(),
		Misses:   a.misses.Load(),
		Revoked:  a.revoked.Load(),
		Verified: a.good.Len(),
		Refused:  a.refused.Len(),
	}
}
