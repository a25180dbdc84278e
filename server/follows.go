package server

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"slices"
	"sync"
	"time"

	"github.com/asynkron/protoactor-go/actor"
	"go.uber.org/zap"

	"github.com/presenced/presenced/actors"
	"github.com/presenced/presenced/auth"
	"github.com/presenced/presenced/cluster"
)

// follows gives each hello its user's follow list and keeps the list fresh while the user has
// sockets on this node.
//
// Lists are cached in the store (Redis when configured), so a hello on any node starts from the
// last good list (a warm login makes no GitHub request before its sync). Each hello and every
// RefreshInterval while connected, the list is revalidated with the source (GitHub: one
// conditional request per page, which costs no rate limit when nothing changed; decision 12).
// A change reaches the user's local connections as FollowingChanged (they send a new sync) and
// the user actor as GraphChanged (a mutual-only user republishes its audience). Source errors,
// timeouts and rate limits never empty a list: the last good one stays.
type follows struct {
	graph   auth.Graph
	store   cluster.Follows
	revoker auth.Revoker // nil when the authenticator cannot learn of revoked tokens
	root    *actor.RootContext
	timers  *actors.Deadlines        // the node's: each user's refresh is a Deadline on them
	place   func() cluster.Placement // the node's placement (set after the follows)
	log     *zap.Logger
	every   time.Duration // refresh interval while connected
	fresh   time.Duration // a list checked this recently is not revalidated again
	retry   time.Duration // after a failed refresh, try again this soon
	timeout time.Duration // one fetch (all pages)

	mu     sync.Mutex
	users  map[string]*localUser
	closed bool
	wg     sync.WaitGroup // running refreshes
}

// localUser is a user with sockets on this node.
type localUser struct {
	who     auth.Identity
	token   string          // the latest hello's token: refreshes read the list with it (memory only, never logged)
	conns   []*actor.PID    // its connection actors on this node: one or a few, so a slice, not a map's buckets
	version uint64          // the list version the local connections have
	timer   actors.Deadline // the next refresh, when armed
	armed   bool            // timer is set (guarded by follows.mu, as the rest)
	running bool            // a refresh is in flight: refreshes of one user are serial
	again   bool            // another refresh was asked for while one ran
	force   bool            // the next refresh asks the source even if another node checked lately (a hello)
}

// followRecord is what the store keeps per user (JSON: it is read by every node version).
type followRecord struct {
	Users      []auth.Followee `json:"users"`
	Validators []byte          `json:"validators,omitempty"`
	Version    uint64          `json:"version"`
	CheckedMs  int64           `json:"checked_ms"`
}

// ticket is what a hello gets: the list to sync, and what to do after the connection exists.
type ticket struct {
	list       []auth.Followee
	version    uint64
	revalidate bool // warm list: revalidate it now, in the background
	retryAt    time.Time
}

func newFollows(cfg *Config, store cluster.Follows, root *actor.RootContext, timers *actors.Deadlines, log *zap.Logger) *follows {
	f := &follows{graph: cfg.Graph, store: store, root: root, timers: timers, log: log.Named("follows"), every: cfg.RefreshInterval,
		fresh: cfg.RevalidateAfter, retry: min(time.Minute, cfg.RefreshInterval), timeout: cfg.AuthTimeout, users: map[string]*localUser{}}
	if r, ok := cfg.Auth.(auth.Revoker); ok {
		f.revoker = r
	}
	return f
}

// get returns the list for a hello: the cached one when there is one (revalidated after the
// connection starts), else a fetch from the source. A cold fetch that fails for any reason but a
// bad token still lets the user in with an empty list and retries soon: followers see the user
// even while GitHub is down, and the user's own view fills in when the fetch works.
func (f *follows) get(ctx context.Context, who auth.Identity, token string) (ticket, error) {
	rec, err := f.load(ctx, who.ID)
	if err == nil {
		return ticket{list: rec.Users, version: rec.Version, revalidate: time.Since(time.UnixMilli(rec.CheckedMs)) >= f.fresh}, nil
	}
	if !errors.Is(err, cluster.ErrNotFound) {
		f.log.Warn("reading the cached follow list failed; fetching it", zap.String("user", who.ID), zap.Error(err))
	}
	rec, err = f.fetch(ctx, who, token, nil)
	if err != nil {
		if errors.Is(err, auth.ErrUnauthorized) {
			return ticket{}, err
		}
		f.log.Warn("fetching the follow list failed; the user starts with an empty one and it is retried",
			zap.String("user", who.ID), zap.Error(err))
		return ticket{retryAt: f.retryAt(err)}, nil
	}
	return ticket{list: rec.Users, version: rec.Version}, nil
}

// fetch asks the source, revalidating prev, and stores the result. The version grows with every
// change, and is at least the time in µs so that two nodes that both see a change do not both
// write the same version for different lists.
func (f *follows) fetch(ctx context.Context, who auth.Identity, token string, prev *followRecord) (*followRecord, error) {
	ctx, cancel := context.WithTimeout(ctx, f.timeout)
	defer cancel()
	var prevList *auth.FollowList
	if prev != nil {
		prevList = &auth.FollowList{Users: prev.Users, Validators: prev.Validators}
	}
	list, changed, err := f.graph.Fetch(ctx, who, token, prevList)
	if err != nil {
		if errors.Is(err, auth.ErrUnauthorized) && f.revoker != nil {
			f.revoker.Revoke(token)
		}
		return nil, fmt.Errorf("follows: fetch %s: %w", who.ID, err)
	}
	now := time.Now()
	rec := &followRecord{Users: list.Users, Validators: list.Validators, CheckedMs: now.UnixMilli()}
	if rec.Users == nil {
		rec.Users = []auth.Followee{}
	}
	if prev != nil && !changed {
		rec.Version = prev.Version
		return rec, f.save(ctx, who.ID, rec, false)
	}
	rec.Version = uint64(now.UnixMicro())
	if prev != nil && prev.Version >= rec.Version {
		rec.Version = prev.Version + 1
	}
	return rec, f.save(ctx, who.ID, rec, true)
}

func (f *follows) load(ctx context.Context, user string) (*followRecord, error) {
	b, err := f.store.LoadFollowing(ctx, user)
	if err != nil {
		return nil, err
	}
	rec := &followRecord{}
	if err := json.Unmarshal(b, rec); err != nil {
		return nil, fmt.Errorf("follows: cached list of %s does not decode: %w", user, cluster.ErrNotFound)
	}
	return rec, nil
}

func (f *follows) save(ctx context.Context, user string, rec *followRecord, changed bool) error {
	b, err := json.Marshal(rec)
	if err != nil {
		return fmt.Errorf("follows: encode: %w", err)
	}
	if !changed {
		return f.store.TouchFollowing(ctx, user, b)
	}
	ids := make([]string, len(rec.Users))
	for i, u := range rec.Users {
		ids[i] = u.ID
	}
	return f.store.SaveFollowing(ctx, user, b, ids)
}

// retryAt is when to try a failed fetch again: when the source says, else after f.retry.
func (f *follows) retryAt(err error) time.Time {
	var rl auth.RetryLater
	if errors.As(err, &rl) && rl.RetryAt().After(time.Now()) {
		return rl.RetryAt()
	}
	return time.Now().Add(f.retry)
}

// register adds a connection of who (after its hello) and arranges the next refresh. The
// latest hello's token is the one refreshes use.
func (f *follows) register(who auth.Identity, token string, pid *actor.PID, t ticket) {
	f.mu.Lock()
	defer f.mu.Unlock()
	if f.closed {
		return
	}
	u := f.users[who.ID]
	if u == nil {
		u = &localUser{version: t.version}
		f.timers.Init(&u.timer, func() { f.due(u) })
		f.users[who.ID] = u
	}
	u.who, u.token = who, token
	if !slices.ContainsFunc(u.conns, func(p *actor.PID) bool { return p.Equal(pid) }) {
		u.conns = append(u.conns, pid)
	}
	switch {
	case t.revalidate:
		u.force = true
		f.startLocked(who.ID, u)
	case !t.retryAt.IsZero():
		f.armLocked(who.ID, u, time.Until(t.retryAt))
	case !u.armed && !u.running:
		f.armLocked(who.ID, u, f.every)
	}
}

// unregister forgets a connection; the user's last one stops the refreshes and drops the token.
func (f *follows) unregister(user string, pid *actor.PID) {
	f.mu.Lock()
	defer f.mu.Unlock()
	u := f.users[user]
	if u == nil {
		return
	}
	u.conns = slices.DeleteFunc(u.conns, func(p *actor.PID) bool { return p.Equal(pid) })
	if len(u.conns) == 0 {
		u.disarm()
		delete(f.users, user)
	}
}

// armLocked schedules user's next refresh d from now.
func (f *follows) armLocked(user string, u *localUser, d time.Duration) {
	u.armed = true
	u.timer.Reset(time.Now().Add(d))
}

// due runs when u's refresh timer fires. A fire that lost to a Stop finds armed false (or the
// user gone) and does nothing.
func (f *follows) due(u *localUser) {
	f.mu.Lock()
	defer f.mu.Unlock()
	user := u.who.ID // set under f.mu by the register that made u, before any arm
	if cur := f.users[user]; cur == u && !f.closed && u.armed {
		u.armed = false
		f.startLocked(user, u)
	}
}

// disarm cancels the next refresh. The caller holds follows.mu.
func (u *localUser) disarm() {
	u.armed = false
	u.timer.Stop()
}

// startLocked runs one refresh of user in the background, or asks the running one to go again.
func (f *follows) startLocked(user string, u *localUser) {
	if u.running {
		u.again = true
		return
	}
	if u.token == "" {
		return // the token was revoked: wait for a hello with a new one
	}
	u.running = true
	u.disarm()
	f.wg.Add(1)
	go f.refresh(user, u, u.who, u.token, u.force)
	u.force = false
}

// refresh revalidates user's list. Unless a hello forces it, a list another node checked within
// half an interval is taken from the store without asking the source, so a user with windows on
// several nodes costs one revalidation per interval, not one per node.
func (f *follows) refresh(user string, u *localUser, who auth.Identity, token string, force bool) {
	defer f.wg.Done()
	ctx := context.Background()
	next := f.every
	rec, err := f.load(ctx, user)
	if err != nil && !errors.Is(err, cluster.ErrNotFound) {
		f.log.Warn("reading the cached follow list failed; keeping the current one", zap.String("user", user), zap.Error(err))
		rec, next = nil, f.retry
	} else if err != nil || force || time.Since(time.UnixMilli(rec.CheckedMs)) >= f.every/2 {
		var fetched *followRecord
		fetched, err = f.fetch(ctx, who, token, rec)
		switch {
		case errors.Is(err, auth.ErrUnauthorized):
			f.log.Info("the user's token was revoked: no more refreshes until a hello with a new token", zap.String("user", user))
			f.mu.Lock()
			if u.token == token {
				u.token = ""
			}
			f.mu.Unlock()
		case err != nil:
			f.log.Warn("refreshing the follow list failed; keeping the last good one", zap.String("user", user), zap.Error(err))
			next = time.Until(f.retryAt(err))
		default:
			rec = fetched
		}
	}
	f.mu.Lock()
	defer f.mu.Unlock()
	u.running = false
	var conns []*actor.PID
	if rec != nil && rec.Version > u.version {
		u.version = rec.Version
		conns = slices.Clone(u.conns)
	}
	if len(conns) > 0 {
		for _, pid := range conns {
			f.root.Send(pid, actors.FollowingChanged{Following: rec.Users, Version: rec.Version})
		}
		f.place().Send(user, actors.GraphChangedEnvelope(rec.Version), nil)
	}
	if f.users[user] != u || f.closed {
		return
	}
	if u.again {
		u.again = false
		f.startLocked(user, u)
		return
	}
	f.armLocked(user, u, next)
}

// close stops every timer and waits for running refreshes.
func (f *follows) close() {
	f.mu.Lock()
	f.closed = true
	for _, u := range f.users {
		u.disarm()
	}
	f.mu.Unlock()
	f.wg.Wait()
}
