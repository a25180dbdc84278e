package cluster_test

import (
	"context"
	"net"
	"strings"
	"testing"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/testutil"

	"github.com/presenced/presenced/cluster"
	"github.com/presenced/presenced/metrics"
)

// TestRedisMetrics: the Redis bus and store count each PUBLISH once (the bus's, and the one in
// the save script), each subscription, and each failed call by operation.
func TestRedisMetrics(t *testing.T) {
	reg := prometheus.NewRegistry()
	m := metrics.New(reg)
	rdb, err := cluster.NewRedisClient(cluster.RedisConfig{URL: newTestRedis(t)})
	if err != nil {
		t.Fatal(err)
	}
	defer rdb.Close()
	got := newRecorder()
	b := cluster.NewRedisBus(rdb, got.deliver, cluster.RedisBusOptions{Metrics: m})
	defer b.Close(context.Background())
	s := cluster.NewRedisStore(rdb, m)
	ctx := context.Background()
	if err := b.Subscribe(ctx, "alice"); err != nil {
		t.Fatal(err)
	}
	if err := b.Publish(ctx, "alice", []byte("one")); err != nil {
		t.Fatal(err)
	}
	e, err := s.Acquire(ctx, "alice")
	if err != nil {
		t.Fatal(err)
	}
	if err := s.SaveAndPublish(ctx, "alice", e, []byte("rec"), []byte("two")); err != nil {
		t.Fatal(err)
	}
	if err := s.SaveUser(ctx, "alice", e, []byte("rec"), []byte("two")); err != nil { // no PUBLISH
		t.Fatal(err)
	}
	got.wait(t, 2)

	// A Redis nobody listens on: every call fails, and counts under its operation.
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	dead := "redis://" + ln.Addr().String() + "/0"
	_ = ln.Close()
	rdead, err := cluster.NewRedisClient(cluster.RedisConfig{URL: dead})
	if err != nil {
		t.Fatal(err)
	}
	defer rdead.Close()
	if _, err := cluster.NewRedisStore(rdead, m).LoadUser(ctx, "alice"); err == nil {
		t.Fatal("load from a dead Redis worked")
	}
	if _, err := cluster.NewRedisFollows(rdead, m).FollowedBy(ctx, "alice", []string{"bob"}); err == nil {
		t.Fatal("followed-by on a dead Redis worked")
	}

	want := `
# HELP presenced_redis_publish_total PUBLISH commands that succeeded (the bus's, and those inside the store's save script).
# TYPE presenced_redis_publish_total counter
presenced_redis_publish_total 2
# HELP presenced_redis_subscribe_total Channel subscriptions the bus made on its pub/sub connection.
# TYPE presenced_redis_subscribe_total counter
presenced_redis_subscribe_total 1
`
	if err := testutil.GatherAndCompare(reg, strings.NewReader(want), "presenced_redis_publish_total", "presenced_redis_subscribe_total"); err != nil {
		t.Fatal(err)
	}
	mfs, err := reg.Gather()
	if err != nil {
		t.Fatal(err)
	}
	errs := map[string]float64{}
	for _, mf := range mfs {
		if mf.GetName() == "presenced_redis_errors_total" {
			for _, s := range mf.GetMetric() {
				if v := s.GetCounter().GetValue(); v != 0 {
					errs[s.GetLabel()[0].GetValue()] = v
				}
			}
		}
	}
	if len(errs) != 2 || errs["load"] != 1 || errs["followed_by"] != 1 {
		t.Fatalf("redis errors by op = %v, want load 1 and followed_by 1", errs)
	}
}
