package cluster_test

import (
	"context"
	"strconv"
	"testing"

	"github.com/presenced/presenced/cluster"
)

// BenchmarkRenewMany is one batch of the node's lease round (actors.RenewBatch leases) against
// a real Redis. The round renews every hosted user's lease every LeaseTTL/3, so what a batch
// allocates is most of what an idle node allocates (docs/benchmarks.md).
func BenchmarkRenewMany(b *testing.B) {
	_, s := newRedisStore(b)
	ctx := context.Background()
	leases := make([]cluster.Lease, 500)
	for i := range leases {
		u := "u" + strconv.Itoa(i)
		e, err := s.Acquire(ctx, u)
		if err != nil {
			b.Fatal(err)
		}
		leases[i] = cluster.Lease{User: u, Epoch: e}
	}
	b.ReportAllocs()
	for b.Loop() {
		fenced, err := s.RenewMany(ctx, leases)
		if err != nil || len(fenced) != len(leases) {
			b.Fatalf("renew: %d answers, %v", len(fenced), err)
		}
	}
}
