package cluster_test

import (
	"context"
	"errors"
	"slices"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/redis/go-redis/v9"

	"github.com/presenced/presenced/cluster"
	"github.com/presenced/presenced/testkit"
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

// newRedisStore is a store on a test Redis of its own, and its client (closed at the end).
func newRedisStore(tb testing.TB) (*redis.Client, *cluster.RedisStore) {
	rdb, err := cluster.NewRedisClient(cluster.RedisConfig{URL: testkit.RequireRedis(tb).URL()})
	if err != nil {
		tb.Fatal(err)
	}
	tb.Cleanup(func() { _ = rdb.Close() })
	return rdb, cluster.NewRedisStore(rdb, nil)
}

// TestRedisLeaseLapse: a lease whose key lapsed (its holder stopped renewing, or Redis lost it)
// is reclaimed by its holder's next write, with a fresh TTL, unless another activation acquired
// the user since.
func TestRedisLeaseLapse(t *testing.T) {
	rdb, s := newRedisStore(t)
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

// TestRedisRenewMany: a batch as large as the lease round's renews every lease it names, with
// its own user's keys and epoch, whether Redis has the script cached or not, and a smaller batch
// after it (the call's buffers are reused) renews exactly its own.
func TestRedisRenewMany(t *testing.T) {
	rdb, s := newRedisStore(t)
	ctx := context.Background()
	leases := make([]cluster.Lease, 600)
	for i := range leases {
		u := "user-" + strings.Repeat("x", i%7) + strconv.Itoa(i) // names of several lengths
		leases[i] = cluster.Lease{User: u, Epoch: acquire(t, s, u)}
	}
	newer := acquire(t, s, leases[599].User) // the last one moved to a newer activation
	shortTTLs := func(ls []cluster.Lease) {
		t.Helper()
		for _, l := range ls {
			if err := rdb.PExpire(ctx, "presenced:lease:"+l.User, time.Second).Err(); err != nil {
				t.Fatal(err)
			}
		}
	}
	renewed := func(ls []cluster.Lease) {
		t.Helper()
		for _, l := range ls {
			if ttl := rdb.PTTL(ctx, "presenced:lease:"+l.User).Val(); ttl <= time.Second || ttl > cluster.LeaseTTL {
				t.Fatalf("%s: lease TTL %v after renewing, want above 1s and within %v", l.User, ttl, cluster.LeaseTTL)
			}
		}
	}
	want := make([]bool, len(leases))
	want[599] = true
	for _, cached := range []bool{false, true} {
		if !cached {
			if err := rdb.ScriptFlush(ctx).Err(); err != nil {
				t.Fatal(err)
			}
		}
		shortTTLs(leases[:599])
		fenced, err := s.RenewMany(ctx, leases)
		if err != nil {
			t.Fatalf("script cached %v: %v", cached, err)
		}
		if !slices.Equal(fenced, want) {
			t.Fatalf("script cached %v: fenced at %v, want only 599", cached, trueAt(fenced))
		}
		renewed(leases[:599])
		if got := rdb.Get(ctx, "presenced:lease:"+leases[599].User).Val(); got != strconv.FormatUint(newer, 10) {
			t.Fatalf("the moved user's lease = %q, want the newer epoch %d", got, newer)
		}
	}
	small := []cluster.Lease{leases[3], {User: leases[599].User, Epoch: newer}, leases[10]}
	shortTTLs(append(leases[:599:599], small[1]))
	fenced, err := s.RenewMany(ctx, small)
	if err != nil || !slices.Equal(fenced, []bool{false, false, false}) {
		t.Fatalf("small batch after a large one: fenced %v, %v; want none", fenced, err)
	}
	renewed(small)
	if ttl := rdb.PTTL(ctx, "presenced:lease:"+leases[4].User).Val(); ttl > time.Second {
		t.Fatalf("a lease the small batch does not name was renewed (TTL %v)", ttl)
	}
}

func trueAt(bs []bool) []int {
	var at []int
	for i, b := range bs {
		if b {
			at = append(at, i)
		}
	}
	return at
}
