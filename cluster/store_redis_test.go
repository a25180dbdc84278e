package cluster_test

import (
	"context"
	"errors"
	"strconv"
	"testing"

	"github.com/presenced/presenced/cluster"
)

func TestRedisStore(t *testing.T) {
	url := newTestRedis(t)
	testStore(t, func(t *testing.T) cluster.Store {
		rdb, err := cluster.NewRedisClient(cluster.RedisConfig{URL: url})
		if err != nil {
			t.Fatal(err)
		}
		if err := rdb.FlushDB(t.Context()).Err(); err != nil {
			t.Fatal(err)
		}
		t.Cleanup(func() { _ = rdb.Close() })
		return cluster.NewRedisStore(rdb, nil)
	})
}

// TestRedisLeaseLapse: a lease whose key lapsed (its holder stopped renewing, or Redis lost it)
// is reclaimed by its holder's next write, with a fresh TTL, unless another activation acquired
// the user since.
func TestRedisLeaseLapse(t *testing.T) {
	rdb, err := cluster.NewRedisClient(cluster.RedisConfig{URL: newTestRedis(t)})
	if err != nil {
		t.Fatal(err)
	}
	defer rdb.Close()
	s := cluster.NewRedisStore(rdb, nil)
	ctx := context.Background()
	e1 := acquire(t, s, "alice")
	if ttl := rdb.PTTL(ctx, "presenced:lease:alice").Val(); ttl <= 0 || ttl > cluster.LeaseTTL {
		t.Fatalf("lease TTL = %v, want within %v", ttl, cluster.LeaseTTL)
	}
	rdb.Del(ctx, "presenced:lease:alice") // lapsed
	if err := s.SaveUser(ctx, "alice", e1, []byte("r"), []byte("p")); err != nil {
		t.Fatalf("holder reclaiming its lapsed lease: %v", err)
	}
	if got := rdb.Get(ctx, "presenced:lease:alice").Val(); got != strconv.FormatUint(e1, 10) {
		t.Fatalf("lease = %q, want %d", got, e1)
	}
	acquire(t, s, "alice")
	rdb.Del(ctx, "presenced:lease:alice") // the newer holder's lease lapsed too
	if err := s.SaveUser(ctx, "alice", e1, []byte("stale"), []byte("stale")); !errors.Is(err, cluster.ErrFenced) {
		t.Fatalf("stale holder after a newer acquisition: err = %v, want ErrFenced", err)
	}
}
