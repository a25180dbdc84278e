package cluster_test

import (
	"context"
	"errors"
	"slices"
	"testing"

	"github.com/presenced/presenced/cluster"
)

// testStore is the contract every cluster.Store implementation passes; newStore returns an empty store.
func testStore(t *testing.T, newStore func(t *testing.T) cluster.Store) {
	ctx := context.Background()
	t.Run("unknown user is cluster.ErrNotFound", func(t *testing.T) {
		s := newStore(t)
		if _, err := s.LoadUser(ctx, "nobody"); !errors.Is(err, cluster.ErrNotFound) {
			t.Fatalf("err = %v, want cluster.ErrNotFound", err)
		}
	})
	t.Run("save then load, last write wins", func(t *testing.T) {
		s := newStore(t)
		epoch := acquire(t, s, "alice")
		for _, v := range []string{"r1", "r2"} {
			if err := s.SaveUser(ctx, "alice", epoch, []byte(v), []byte("p-"+v)); err != nil {
				t.Fatal(err)
			}
		}
		got, err := s.LoadUser(ctx, "alice")
		if err != nil || string(got) != "r2" {
			t.Fatalf("load = %q, %v", got, err)
		}
	})
	t.Run("presences in one call, nil where unknown", func(t *testing.T) {
		s := newStore(t)
		_ = s.SaveUser(ctx, "alice", acquire(t, s, "alice"), []byte("r"), []byte("pa"))
		_ = s.SaveUser(ctx, "carol", acquire(t, s, "carol"), []byte("r"), []byte("pc"))
		got, err := s.Presences(ctx, []string{"carol", "nobody", "alice"})
		if err != nil || len(got) != 3 || string(got[0]) != "pc" || got[1] != nil || string(got[2]) != "pa" {
			t.Fatalf("presences = %q, %v", got, err)
		}
		if got, err := s.Presences(ctx, nil); err != nil || len(got) != 0 {
			t.Fatalf("empty = %q, %v", got, err)
		}
	})
	t.Run("only the newest activation writes", func(t *testing.T) {
		s := newStore(t)
		old := acquire(t, s, "alice")
		newer := acquire(t, s, "alice")
		if newer <= old {
			t.Fatalf("epochs %d then %d: must grow", old, newer)
		}
		if err := s.SaveUser(ctx, "alice", old, []byte("stale"), []byte("stale")); !errors.Is(err, cluster.ErrFenced) {
			t.Fatalf("stale save: err = %v, want ErrFenced", err)
		}
		if err := s.SaveUser(ctx, "alice", newer, []byte("fresh"), []byte("fresh")); err != nil {
			t.Fatal(err)
		}
		if got, _ := s.LoadUser(ctx, "alice"); string(got) != "fresh" {
			t.Fatalf("record = %q", got)
		}
		// A user without an epoch (never acquired, or Redis lost it) is claimed by the first
		// writer; the next acquisition still fences it.
		if err := s.SaveUser(ctx, "bob", 7, []byte("x"), []byte("x")); err != nil {
			t.Fatalf("claiming save: %v", err)
		}
		if next := acquire(t, s, "bob"); next <= 7 {
			t.Fatalf("epoch after a claim of 7 = %d, want more", next)
		}
		if err := s.SaveUser(ctx, "bob", 7, []byte("y"), []byte("y")); !errors.Is(err, cluster.ErrFenced) {
			t.Fatalf("save after a newer acquisition: err = %v, want ErrFenced", err)
		}
	})
	t.Run("renewing keeps the lease until a newer activation takes it", func(t *testing.T) {
		s := newStore(t)
		old := acquire(t, s, "alice")
		bob := acquire(t, s, "bob")
		renew := func(leases ...cluster.Lease) []bool {
			t.Helper()
			fenced, err := s.RenewMany(ctx, leases)
			if err != nil {
				t.Fatalf("renew %v: %v", leases, err)
			}
			return fenced
		}
		if got := renew(cluster.Lease{User: "alice", Epoch: old}, cluster.Lease{User: "bob", Epoch: bob}); !slices.Equal(got, []bool{false, false}) {
			t.Fatalf("renew by the holders: fenced %v, want none", got)
		}
		newer := acquire(t, s, "alice")
		// carol never acquired: like a lapsed lease, the first renewer claims it.
		got := renew(cluster.Lease{User: "bob", Epoch: bob}, cluster.Lease{User: "alice", Epoch: old}, cluster.Lease{User: "carol", Epoch: 3})
		if !slices.Equal(got, []bool{false, true, false}) {
			t.Fatalf("renew after alice moved: fenced %v, want [false true false]", got)
		}
		if got := renew(cluster.Lease{User: "alice", Epoch: newer}, cluster.Lease{User: "carol", Epoch: 4}); !slices.Equal(got, []bool{false, true}) {
			t.Fatalf("renew by alice's holder and a second claimant of carol: fenced %v, want [false true]", got)
		}
		if err := s.SaveUser(ctx, "alice", old, []byte("x"), []byte("x")); !errors.Is(err, cluster.ErrFenced) {
			t.Fatalf("save by the fenced activation: err = %v, want ErrFenced", err)
		}
		if fenced, err := s.RenewMany(ctx, nil); err != nil || len(fenced) != 0 {
			t.Fatalf("renew of nothing: %v, %v", fenced, err)
		}
	})
	t.Run("stored values do not alias the caller's", func(t *testing.T) {
		s := newStore(t)
		rec := []byte("rec")
		_ = s.SaveUser(ctx, "alice", acquire(t, s, "alice"), rec, []byte("p"))
		rec[0] = 'X'
		got, _ := s.LoadUser(ctx, "alice")
		got[1] = 'Y'
		again, _ := s.LoadUser(ctx, "alice")
		if string(again) != "rec" {
			t.Fatalf("stored value changed to %q", again)
		}
	})
}

func acquire(t *testing.T, s cluster.Store, user string) uint64 {
	t.Helper()
	e, err := s.Acquire(context.Background(), user)
	if err != nil {
		t.Fatal(err)
	}
	return e
}
