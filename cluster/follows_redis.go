package cluster

import (
	"context"
	"fmt"

	"github.com/redis/go-redis/v9"

	"github.com/presenced/presenced/metrics"
)

var _ Follows = (*RedisFollows)(nil)

// RedisFollows keeps each user's list in two keys: presenced:following:<id> (the record, with
// the source's validators) and presenced:follows:<id> (a set of followed ids, for SISMEMBER).
// Both expire FollowsTTL after the last save.
type RedisFollows struct {
	rdb *redis.Client
	m   *metrics.Metrics
}

// NewRedisFollows uses rdb (see NewRedisClient); m counts failed calls (nil: none).
func NewRedisFollows(rdb *redis.Client, m *metrics.Metrics) *RedisFollows {
	return &RedisFollows{rdb: rdb, m: m}
}

func followingKey(user string) string { return "presenced:following:" + user }
func followsKey(user string) string   { return "presenced:follows:" + user }

func (r *RedisFollows) LoadFollowing(ctx context.Context, user string) ([]byte, error) {
	b, err := r.rdb.Get(ctx, followingKey(user)).Bytes()
	if err == redis.Nil {
		return nil, fmt.Errorf("follows: %s: %w", user, ErrNotFound)
	}
	if err != nil {
		r.m.RedisError("following_load")
		return nil, fmt.Errorf("follows: load %s: %w", user, err)
	}
	return b, nil
}

// SaveFollowing replaces record and set in one MULTI, so a reader never sees a new record with
// an old set.
func (r *RedisFollows) SaveFollowing(ctx context.Context, user string, rec []byte, ids []string) error {
	members := make([]any, len(ids))
	for i, id := range ids {
		members[i] = id
	}
	_, err := r.rdb.TxPipelined(ctx, func(p redis.Pipeliner) error {
		p.Set(ctx, followingKey(user), rec, FollowsTTL)
		p.Del(ctx, followsKey(user))
		// SADD takes many members at once; chunks keep one command's size sane for users who
		// follow thousands.
		for i := 0; i < len(members); i += 1000 {
			p.SAdd(ctx, followsKey(user), members[i:min(i+1000, len(members))]...)
		}
		p.Expire(ctx, followsKey(user), FollowsTTL)
		return nil
	})
	if err != nil {
		r.m.RedisError("following_save")
		return fmt.Errorf("follows: save %s: %w", user, err)
	}
	return nil
}

func (r *RedisFollows) TouchFollowing(ctx context.Context, user string, rec []byte) error {
	_, err := r.rdb.TxPipelined(ctx, func(p redis.Pipeliner) error {
		p.Set(ctx, followingKey(user), rec, FollowsTTL)
		p.Expire(ctx, followsKey(user), FollowsTTL)
		return nil
	})
	if err != nil {
		r.m.RedisError("following_touch")
		return fmt.Errorf("follows: touch %s: %w", user, err)
	}
	return nil
}

// FollowedBy asks SISMEMBER of every candidate's set in one round trip.
func (r *RedisFollows) FollowedBy(ctx context.Context, user string, candidates []string) ([]bool, error) {
	if len(candidates) == 0 {
		return nil, nil
	}
	cmds := make([]*redis.BoolCmd, len(candidates))
	_, err := r.rdb.Pipelined(ctx, func(p redis.Pipeliner) error {
		for i, c := range candidates {
			cmds[i] = p.SIsMember(ctx, followsKey(c), user)
		}
		return nil
	})
	if err != nil {
		r.m.RedisError("followed_by")
		return nil, fmt.Errorf("follows: followed-by %s: %w", user, err)
	}
	out := make([]bool, len(candidates))
	for i, c := range cmds {
		out[i] = c.Val()
	}
	return out, nil
}
