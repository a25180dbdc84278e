package cluster_test

import (
	"context"
	"errors"
	"testing"
	"testing/synctest"
	"time"

	"github.com/presenced/presenced/cluster"
)

func TestMemoryStore(t *testing.T) {
	testStore(t, func(*testing.T) cluster.Store { return cluster.NewMemoryStore() })
}

// TestMemoryLeaseLapse: the memory store's lease lapses after LeaseTTL (virtual time) and is
// reclaimed by its holder, unless another activation acquired the user since.
func TestMemoryLeaseLapse(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		s := cluster.NewMemoryStore()
		ctx := context.Background()
		e1 := acquire(t, s, "alice")
		time.Sleep(cluster.LeaseTTL + time.Second)
		if err := s.SaveUser(ctx, "alice", e1, []byte("r"), []byte("p")); err != nil {
			t.Fatalf("holder reclaiming its lapsed lease: %v", err)
		}
		acquire(t, s, "alice")
		time.Sleep(cluster.LeaseTTL + time.Second)
		if err := s.SaveUser(ctx, "alice", e1, []byte("stale"), []byte("stale")); !errors.Is(err, cluster.ErrFenced) {
			t.Fatalf("stale holder after a newer acquisition: err = %v, want ErrFenced", err)
		}
	})
}
