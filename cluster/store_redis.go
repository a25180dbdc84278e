package cluster

import (
	"context"
	"errors"
	"fmt"

	"github.com/redis/go-redis/v9"
)

var _ Store = (*RedisStore)(nil)

// RedisStore keeps user records and public presences in Redis:
//
//	presenced:user:<id>      the user actor's record
//	presenced:presence:<id>  the public presence sync reads (MGET for many users)
type RedisStore struct {
	rdb *redis.Client
}

// NewRedisStore uses rdb; the caller closes it.
func NewRedisStore(rdb *redis.Client) *RedisStore { return &RedisStore{rdb: rdb} }

func recordKey(user string) string   { return "presenced:user:" + user }
func presenceKey(user string) string { return "presenced:presence:" + user }

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

func (s *RedisStore) SaveUser(ctx context.Context, user string, record, presence []byte) error {
	_, err := s.rdb.TxPipelined(ctx, func(p redis.Pipeliner) error {
		p.Set(ctx, recordKey(user), record, 0)
		p.Set(ctx, presenceKey(user), presence, 0)
		return nil
	})
	if err != nil {
		return fmt.Errorf("store: save %s: %w", user, err)
	}
	return nil
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
