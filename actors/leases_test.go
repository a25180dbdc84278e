package actors

import (
	"context"
	"fmt"
	"slices"
	"sync"
	"testing"
	"testing/synctest"
	"time"

	"github.com/asynkron/protoactor-go/actor"
	"go.uber.org/zap"

	"github.com/presenced/presenced/cluster"
)

// countingStore is a MemoryStore that records the batches of each RenewMany call.
type countingStore struct {
	*cluster.MemoryStore
	mu      sync.Mutex
	batches []int
}

func (s *countingStore) RenewMany(ctx context.Context, leases []cluster.Lease) ([]bool, error) {
	s.mu.Lock()
	s.batches = append(s.batches, len(leases))
	s.mu.Unlock()
	return s.MemoryStore.RenewMany(ctx, leases)
}

func (s *countingStore) takeBatches() []int {
	s.mu.Lock()
	defer s.mu.Unlock()
	b := s.batches
	s.batches = nil
	return b
}

// TestLeasesRenewInBatches: one round every LeaseTTL/3 renews every held lease, RenewBatch per
// store call; a released lease is not renewed; nothing is renewed once nothing is held.
func TestLeasesRenewInBatches(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		ctx := context.Background()
		store := &countingStore{MemoryStore: cluster.NewMemoryStore()}
		sys := actor.NewActorSystem()
		defer sys.Shutdown()
		l := NewLeases(store, sys.Root, zap.NewNop(), func() time.Duration { return time.Second })
		defer l.Close()
		pid := sys.Root.Spawn(actor.PropsFromFunc(func(actor.Context) {}))
		const n = 2*RenewBatch + 200
		epochs := make([]uint64, n)
		for i := range epochs {
			e, err := store.Acquire(ctx, fmt.Sprintf("u%d", i))
			if err != nil {
				t.Fatal(err)
			}
			epochs[i] = e
			l.Hold(fmt.Sprintf("u%d", i), e, pid)
		}
		time.Sleep(renewEvery - time.Millisecond)
		synctest.Wait()
		if b := store.takeBatches(); len(b) != 0 {
			t.Fatalf("renewed before a round was due: %v", b)
		}
		time.Sleep(time.Millisecond)
		synctest.Wait()
		if b := store.takeBatches(); !slices.Equal(b, []int{RenewBatch, RenewBatch, 200}) {
			t.Fatalf("first round's batches %v, want [%d %d 200]", b, RenewBatch, RenewBatch)
		}
		for i := range n - 1 {
			l.Release(fmt.Sprintf("u%d", i), epochs[i])
		}
		l.Release(fmt.Sprintf("u%d", n-1), epochs[n-1]+1) // another epoch's release keeps the lease
		time.Sleep(renewEvery)
		synctest.Wait()
		if b := store.takeBatches(); len(b) != 1 || b[0] != 1 {
			t.Fatalf("second round's batches %v, want [1]", b)
		}
		l.Release(fmt.Sprintf("u%d", n-1), epochs[n-1])
		time.Sleep(renewEvery)
		synctest.Wait()
		// The round that found nothing held does not come back.
		store.takeBatches()
		time.Sleep(10 * renewEvery)
		synctest.Wait()
		if b := store.takeBatches(); len(b) != 0 {
			t.Fatalf("rounds went on with nothing held: %v", b)
		}
		if l.holding() != 0 {
			t.Fatalf("held %d, want 0", l.holding())
		}
	})
}

// TestLeasesTellTheFencedHolder: when a newer activation acquired the user, the next round
// tells the holder (leaseLost with its epoch) and stops renewing for it; the others go on.
func TestLeasesTellTheFencedHolder(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		ctx := context.Background()
		store := cluster.NewMemoryStore()
		sys := actor.NewActorSystem()
		defer sys.Shutdown()
		l := NewLeases(store, sys.Root, zap.NewNop(), func() time.Duration { return time.Second })
		defer l.Close()
		got := make(chan any, 4)
		pid := sys.Root.Spawn(actor.PropsFromFunc(func(c actor.Context) {
			if m, ok := c.Message().(leaseLost); ok {
				got <- m
			}
		}))
		old, _ := store.Acquire(ctx, "alice")
		bob, _ := store.Acquire(ctx, "bob")
		l.Hold("alice", old, pid)
		l.Hold("bob", bob, pid)
		if _, err := store.Acquire(ctx, "alice"); err != nil { // the double activation
			t.Fatal(err)
		}
		time.Sleep(renewEvery)
		synctest.Wait()
		select {
		case m := <-got:
			if m != (leaseLost{old}) {
				t.Fatalf("holder told %v, want leaseLost{%d}", m, old)
			}
		default:
			t.Fatal("the fenced holder was not told")
		}
		if l.holding() != 1 {
			t.Fatalf("held %d after the fencing, want 1 (bob)", l.holding())
		}
		time.Sleep(renewEvery)
		synctest.Wait()
		if len(got) != 0 {
			t.Fatalf("told again: %v", <-got)
		}
	})
}
