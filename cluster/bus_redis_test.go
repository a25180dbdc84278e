package cluster_test

import (
	"context"
	"testing"
	"time"

	"github.com/presenced/presenced/cluster"

	"github.com/presenced/presenced/testkit"
)

func newTestRedis(t *testing.T) string { return testkit.RequireRedis(t).URL() }

func TestRedisBus(t *testing.T) {
	url := newTestRedis(t)
	testBus(t, func(t *testing.T, d cluster.Deliver) cluster.Bus {
		rdb, err := cluster.NewRedisClient(cluster.RedisConfig{URL: url})
		if err != nil {
			t.Fatal(err)
		}
		b := cluster.NewRedisBus(rdb, d, cluster.RedisBusOptions{})
		t.Cleanup(func() { _ = b.Close(context.Background()); _ = rdb.Close() })
		return b
	})
}

// TestRedisBusSurvivesRedisRestart: after Redis restarts, the bus reports not ready, subscribes
// its channels again by itself, says so through OnResubscribed, and delivers again.
func TestRedisBusSurvivesRedisRestart(t *testing.T) {
	r := testkit.RequireRedis(t)
	rdb, err := cluster.NewRedisClient(cluster.RedisConfig{URL: r.URL()})
	if err != nil {
		t.Fatal(err)
	}
	defer rdb.Close()
	got := newRecorder()
	resubscribed := make(chan struct{}, 10)
	b := cluster.NewRedisBus(rdb, got.deliver, cluster.RedisBusOptions{OnResubscribed: func() { resubscribed <- struct{}{} }})
	defer b.Close(context.Background())
	ctx := context.Background()
	if err := b.Subscribe(ctx, "alice"); err != nil {
		t.Fatal(err)
	}
	_ = b.Publish(ctx, "alice", []byte("before"))
	got.wait(t, 1)

	r.Restart()
	select {
	case <-resubscribed:
	case <-time.After(20 * time.Second):
		t.Fatal("no resubscription after the restart")
	}
	if err := b.Ready(ctx); err != nil {
		t.Fatalf("ready after resubscribing: %v", err)
	}
	if err := b.Publish(ctx, "alice", []byte("after")); err != nil {
		t.Fatal(err)
	}
	if all := got.wait(t, 1); all[len(all)-1] != "alice=after" {
		t.Fatalf("got %v", all)
	}
}
