package cluster

import (
	"context"
	"errors"
	"fmt"
	"strconv"
	"time"

	"github.com/redis/go-redis/v9"
)

var (
	_ Store           = (*RedisStore)(nil)
	_ AtomicPublisher = (*RedisStore)(nil)
	_ GrainTracker    = (*RedisStore)(nil)
)

func hostedKey(member string) string { return "presenced:hosted:" + member }

func (s *RedisStore) Track(ctx context.Context, member, user string) error {
	if err := s.rdb.SAdd(ctx, hostedKey(member), user).Err(); err != nil {
		return fmt.Errorf("store: track %s on %s: %w", user, member, err)
	}
	return nil
}

func (s *RedisStore) Untrack(ctx context.Context, member, user string) error {
	if err := s.rdb.SRem(ctx, hostedKey(member), user).Err(); err != nil {
		return fmt.Errorf("store: untrack %s on %s: %w", user, member, err)
	}
	return nil
}

// TakeOrphans reads and deletes the member's set in one transaction, so only one survivor gets
// each orphan.
func (s *RedisStore) TakeOrphans(ctx context.Context, member string) ([]string, error) {
	var users *redis.StringSliceCmd
	_, err := s.rdb.TxPipelined(ctx, func(p redis.Pipeliner) error {
		users = p.SMembers(ctx, hostedKey(member))
		p.Del(ctx, hostedKey(member))
		return nil
	})
	if err != nil {
		return nil, fmt.Errorf("store: orphans of %s: %w", member, err)
	}
	return users.Val(), nil
}

// RedisStore keeps user records and public presences in Redis:
//
//	presenced:user:<id>      the user actor's record
//	presenced:presence:<id>  the public presence sync reads (MGET for many users)
//	presenced:epoch:<id>     the fencing epoch of the user's current activation (INCR)
//	presenced:hosted:<addr>  the users whose actors a cluster member hosts (a set)
type RedisStore struct {
	rdb *redis.Client
}

// NewRedisStore uses rdb; the caller closes it.
func NewRedisStore(rdb *redis.Client) *RedisStore { return &RedisStore{rdb: rdb} }

func recordKey(user string) string   { return "presenced:user:" + user }
func presenceKey(user string) string { return "presenced:presence:" + user }
func epochKey(user string) string    { return "presenced:epoch:" + user }

// saveScript writes record and presence, and publishes presence when ARGV[4] is "1", only if
// the caller's epoch is the user's current one. Returns 1, or 0 when fenced. A missing epoch
// (Redis lost its data) is claimed by the first writer.
var saveScript = redis.NewScript(`
local cur = redis.call('GET', KEYS[3])
if cur == false then redis.call('SET', KEYS[3], ARGV[1])
elseif cur ~= ARGV[1] then return 0 end
redis.call('SET', KEYS[1], ARGV[2])
redis.call('SET', KEYS[2], ARGV[3])
if ARGV[4] == '1' then redis.call('PUBLISH', ARGV[5], ARGV[3]) end
return 1`)

// acquireScript increments the epoch but never below ARGV[1] (the time in µs), so epochs keep
// growing even after Redis lost the key: a new activation never reuses an older one's epoch.
var acquireScript = redis.NewScript(`
local e = redis.call('INCR', KEYS[1])
local floor = tonumber(ARGV[1])
if e < floor then redis.call('SET', KEYS[1], ARGV[1]); e = floor end
return e`)

func (s *RedisStore) Acquire(ctx context.Context, user string) (uint64, error) {
	n, err := acquireScript.Run(ctx, s.rdb, []string{epochKey(user)}, time.Now().UnixMicro()).Uint64()
	if err != nil {
		return 0, fmt.Errorf("store: acquire %s: %w", user, err)
	}
	return n, nil
}

func (s *RedisStore) save(ctx context.Context, user string, epoch uint64, record, presence []byte, publish bool) error {
	pub := "0"
	if publish {
		pub = "1"
	}
	ok, err := saveScript.Run(ctx, s.rdb, []string{recordKey(user), presenceKey(user), epochKey(user)},
		strconv.FormatUint(epoch, 10), record, presence, pub, Channel(user)).Int()
	if err != nil {
		return fmt.Errorf("store: save %s: %w", user, err)
	}
	if ok == 0 {
		return ErrFenced
	}
	return nil
}

// SaveAndPublish saves and publishes on presence:<user> in one fenced script.
func (s *RedisStore) SaveAndPublish(ctx context.Context, user string, epoch uint64, record, presence []byte) error {
	return s.save(ctx, user, epoch, record, presence, true)
}

func (s *RedisStore) LoadUser(ctx context.Context, user string) ([]byte, error) {
	b, err := s.rdb.Get(ctx, recordKey(user)).Bytes()
	if errors.Is(err, redis.Nil) {
		return nil, ErrNotFound
	}
	if err != nil {
		return nil, fmt.Errorf("store: load %s: %w", user, err)
	}
	return b, nil
}

func (s *RedisStore) SaveUser(ctx context.Context, user string, epoch uint64, record, presence []byte) error {
	return s.save(ctx, user, epoch, record, presence, false)
}

// Presences is one MGET, however many users.
func (s *RedisStore) Presences(ctx context.Context, users []string) ([][]byte, error) {
	out := make([][]byte, len(users))
	if len(users) == 0 {
		return out, nil
	}
	keys := make([]string, len(users))
	for i, u := range users {
		keys[i] = presenceKey(u)
	}
	vals, err := s.rdb.MGet(ctx, keys...).Result()
	if err != nil {
		return nil, fmt.Errorf("store: presences of %d users: %w", len(users), err)
	}
	for i, v := range vals {
		if s, ok := v.(string); ok {
			out[i] = []byte(s)
		}
	}
	return out, nil
}

// Ready pings Redis: the node's readiness check.
func (s *RedisStore) Ready(ctx context.Context) error {
	if err := s.rdb.Ping(ctx).Err(); err != nil {
		return fmt.Errorf("store: redis ping: %w", err)
	}
	return nil
}
