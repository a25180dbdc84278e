package cluster

import (
	"context"
	"errors"
	"fmt"
	"slices"
	"strconv"
	"sync"
	"time"

	"github.com/redis/go-redis/v9"

	"github.com/presenced/presenced/metrics"
)

var (
	_ Store           = (*RedisStore)(nil)
	_ AtomicPublisher = (*RedisStore)(nil)
	_ GrainTracker    = (*RedisStore)(nil)
)

func hostedKey(member string) string { return "presenced:hosted:" + member }

func (s *RedisStore) Track(ctx context.Context, member, user string) error {
	if err := s.rdb.SAdd(ctx, hostedKey(member), user).Err(); err != nil {
		s.m.RedisError("track")
		return fmt.Errorf("store: track %s on %s: %w", user, member, err)
	}
	return nil
}

func (s *RedisStore) Untrack(ctx context.Context, member, user string) error {
	if err := s.rdb.SRem(ctx, hostedKey(member), user).Err(); err != nil {
		s.m.RedisError("untrack")
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
		s.m.RedisError("orphans")
		return nil, fmt.Errorf("store: orphans of %s: %w", member, err)
	}
	return users.Val(), nil
}

// RedisStore keeps user records and public presences in Redis:
//
//	presenced:user:<id>      the user actor's record
//	presenced:presence:<id>  the public presence sync reads (MGET for many users)
//	presenced:epoch:<id>     the newest fencing epoch handed out for the user (INCR)
//	presenced:lease:<id>     the epoch that holds the user's lease (expires after LeaseTTL)
//	presenced:hosted:<addr>  the users whose actors a cluster member hosts (a set)
type RedisStore struct {
	rdb *redis.Client
	ttl time.Duration
	m   *metrics.Metrics
}

// NewRedisStore uses rdb (the caller closes it); leases last LeaseTTL. m counts the PUBLISHes
// of the save script and failed calls; nil counts nothing.
func NewRedisStore(rdb *redis.Client, m *metrics.Metrics) *RedisStore {
	return &RedisStore{rdb: rdb, ttl: LeaseTTL, m: m}
}

func recordKey(user string) string   { return "presenced:user:" + user }
func presenceKey(user string) string { return "presenced:presence:" + user }
func epochKey(user string) string    { return epochPrefix + user }
func leaseKey(user string) string    { return leasePrefix + user }

const (
	epochPrefix = "presenced:epoch:"
	leasePrefix = "presenced:lease:"
)

// holdLease is the fencing rule, as a Lua function every fenced script starts with: the caller
// of epoch e must hold the lease lk, or reclaim it when it lapsed and nobody acquired the user
// since (the epoch counter ek still says e, or nothing). When it may, the lease is renewed for
// ttl ms and the function returns true.
const holdLease = `
local function holdLease(lk, ek, e, ttl)
  local cur = redis.call('GET', lk)
  if cur == false then
    local last = redis.call('GET', ek)
    if last == false then redis.call('SET', ek, e)
    elseif last ~= e then return false end
  elseif cur ~= e then return false end
  redis.call('SET', lk, e, 'PX', ttl)
  return true
end
`

// saveScript writes record (KEYS[3]) and presence (KEYS[4]), and publishes the presence on
// ARGV[6] when ARGV[5] is "1", only while the caller of epoch ARGV[1] holds the lease (KEYS[1]
// lease, KEYS[2] epoch counter, ARGV[2] the lease TTL in ms). Returns 1, or 0 when fenced.
var saveScript = redis.NewScript(holdLease + `
if not holdLease(KEYS[1], KEYS[2], ARGV[1], ARGV[2]) then return 0 end
redis.call('SET', KEYS[3], ARGV[3])
redis.call('SET', KEYS[4], ARGV[4])
if ARGV[5] == '1' then redis.call('PUBLISH', ARGV[6], ARGV[4]) end
return 1`)

// acquireScript hands out the next epoch, never below ARGV[1] (the time in µs, so epochs keep
// growing even after Redis lost the key), and gives it the lease (KEYS[2]) for ARGV[2] ms.
var acquireScript = redis.NewScript(`
local e = redis.call('INCR', KEYS[1])
local floor = tonumber(ARGV[1])
if e < floor then redis.call('SET', KEYS[1], ARGV[1]); e = floor end
redis.call('SET', KEYS[2], string.format('%d', e), 'PX', ARGV[2])
return e`)

func (s *RedisStore) Acquire(ctx context.Context, user string) (uint64, error) {
	n, err := acquireScript.Run(ctx, s.rdb, []string{epochKey(user), leaseKey(user)}, time.Now().UnixMicro(), s.ttl.Milliseconds()).Uint64()
	if err != nil {
		s.m.RedisError("acquire")
		return 0, fmt.Errorf("store: acquire %s: %w", user, err)
	}
	return n, nil
}

func (s *RedisStore) save(ctx context.Context, user string, epoch uint64, record, presence []byte, publish bool) error {
	pub := "0"
	if publish {
		pub = "1"
	}
	ok, err := saveScript.Run(ctx, s.rdb, []string{leaseKey(user), epochKey(user), recordKey(user), presenceKey(user)},
		strconv.FormatUint(epoch, 10), s.ttl.Milliseconds(), record, presence, pub, Channel(user)).Int()
	if err != nil {
		s.m.RedisError("save")
		return fmt.Errorf("store: save %s: %w", user, err)
	}
	if ok == 0 {
		return ErrFenced
	}
	if publish {
		s.m.RedisPublished()
	}
	return nil
}

// renewManySrc renews many users' leases: KEYS are lease and epoch keys in pairs, ARGV[1]
// the lease TTL in ms and ARGV[i+1] the epoch of pair i. Returns 1 (renewed) or 0 (fenced) per
// pair.
const renewManySrc = holdLease + `
local out = {}
for i = 1, #KEYS / 2 do
  out[i] = holdLease(KEYS[2*i-1], KEYS[2*i], ARGV[i+1], ARGV[1]) and 1 or 0
end
return out`

var renewManyScript = redis.NewScript(renewManySrc)

// RenewMany renews many leases in one script call: the node's lease round (actors.Leases)
// costs one round trip per batch instead of one per user.
//
// The call is built in a pooled renewCall rather than with Script.Run. The round renews every
// hosted user's lease every LeaseTTL/3, so its batches are most of what an idle node allocates,
// and the heap grows into that between the collector's releases: Script.Run with a key string,
// an epoch string and their boxing per lease allocated 236 bytes a lease (6 allocations), 4.3 MB
// a round at 18,000 users (BenchmarkRenewMany; docs/benchmarks.md).
func (s *RedisStore) RenewMany(ctx context.Context, leases []Lease) ([]bool, error) {
	if len(leases) == 0 {
		return nil, nil
	}
	c := renewCalls.Get().(*renewCall)
	defer renewCalls.Put(c)
	res, err := s.runRenew(ctx, c.build(renewManyScript.Hash(), s.ttl.Milliseconds(), leases))
	if err != nil {
		s.m.RedisError("renew")
		return nil, fmt.Errorf("store: renew %d leases: %w", len(leases), err)
	}
	if len(res) != len(leases) {
		return nil, fmt.Errorf("store: renew %d leases: got %d answers", len(leases), len(res))
	}
	fenced := make([]bool, len(res))
	for i, v := range res {
		n, ok := v.(int64)
		if !ok {
			return nil, fmt.Errorf("store: renew %d leases: answer %d is %T, want an integer", len(leases), i, v)
		}
		fenced[i] = n == 0
	}
	return fenced, nil
}

// runRenew sends a built EVALSHA, and the script itself when Redis does not have it yet (what
// Script.Run does).
func (s *RedisStore) runRenew(ctx context.Context, args []any) ([]any, error) {
	res, err := s.rdb.Do(ctx, args...).Slice()
	if redis.HasErrorPrefix(err, "NOSCRIPT") {
		args[0], args[1] = "eval", renewManySrc
		res, err = s.rdb.Do(ctx, args...).Slice()
	}
	return res, err
}

// renewCall is one RenewMany command, reused: the keys and epochs are written back to back into
// buf and handed to go-redis as *bulk, which boxes without allocating (a pointer fits an
// interface) and which go-redis writes as the bytes it marshals to.
type renewCall struct {
	buf   []byte
	bulks []bulk
	args  []any
}

var renewCalls = sync.Pool{New: func() any { return new(renewCall) }}

// bulk is a bulk-string argument: a slice of its renewCall's buf.
type bulk struct{ b []byte }

func (b *bulk) MarshalBinary() ([]byte, error) { return b.b, nil }

// build lays out EVALSHA sha 2n lk1 ek1 .. lkn ekn ttl e1 .. en and returns the arguments, valid
// until the next build.
func (c *renewCall) build(sha string, ttlMs int64, leases []Lease) []any {
	n, size := len(leases), 0
	for _, l := range leases {
		size += len(leasePrefix) + len(epochPrefix) + 2*len(l.User) + 20 // 20: a uint64's most digits
	}
	// With room for all of it, no append below moves buf: the slices taken of it stay valid.
	c.buf = slices.Grow(c.buf[:0], size)
	c.bulks = slices.Grow(c.bulks[:0], 3*n)[:3*n]
	keys, epochs := c.bulks[:2*n], c.bulks[2*n:]
	for i, l := range leases {
		keys[2*i].b = c.add(leasePrefix, l.User)
		keys[2*i+1].b = c.add(epochPrefix, l.User)
		start := len(c.buf)
		c.buf = strconv.AppendUint(c.buf, l.Epoch, 10)
		epochs[i].b = c.buf[start:len(c.buf):len(c.buf)]
	}
	c.args = append(c.args[:0], "evalsha", sha, 2*n)
	for i := range keys {
		c.args = append(c.args, &keys[i])
	}
	c.args = append(c.args, ttlMs)
	for i := range epochs {
		c.args = append(c.args, &epochs[i])
	}
	return c.args
}

// add appends prefix+s to buf and returns it, as a slice of buf.
func (c *renewCall) add(prefix, s string) []byte {
	start := len(c.buf)
	c.buf = append(append(c.buf, prefix...), s...)
	return c.buf[start:len(c.buf):len(c.buf)]
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
		s.m.RedisError("load")
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
		s.m.RedisError("presences")
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
		s.m.RedisError("ping")
		return fmt.Errorf("store: redis ping: %w", err)
	}
	return nil
}
