package cluster_test

import (
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
		return cluster.NewRedisStore(rdb)
	})
}
