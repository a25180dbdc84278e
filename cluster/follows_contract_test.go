package cluster_test

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"slices"
	"testing"

	"github.com/presenced/presenced/cluster"
)

// testFollows is the contract every cluster.Follows passes; newFollows returns an empty one.
func testFollows(t *testing.T, newFollows func(t *testing.T) cluster.Follows) {
	ctx := context.Background()
	t.Run("unknown user is ErrNotFound and follows no one", func(t *testing.T) {
		f := newFollows(t)
		if _, err := f.LoadFollowing(ctx, "1"); !errors.Is(err, cluster.ErrNotFound) {
			t.Fatalf("err = %v, want ErrNotFound", err)
		}
		got, err := f.FollowedBy(ctx, "2", []string{"1"})
		if err != nil || !slices.Equal(got, []bool{false}) {
			t.Fatalf("FollowedBy = %v, %v", got, err)
		}
	})
	t.Run("save replaces the record and the set", func(t *testing.T) {
		f := newFollows(t)
		if err := f.SaveFollowing(ctx, "1", []byte("v1"), []string{"2", "3"}); err != nil {
			t.Fatal(err)
		}
		if err := f.SaveFollowing(ctx, "1", []byte("v2"), []string{"3", "4"}); err != nil {
			t.Fatal(err)
		}
		if rec, err := f.LoadFollowing(ctx, "1"); err != nil || string(rec) != "v2" {
			t.Fatalf("record = %q, %v", rec, err)
		}
		// Does each candidate follow "3"? Only 1 does; 9 has no list.
		got, err := f.FollowedBy(ctx, "3", []string{"1", "9", "2"})
		if err != nil || !slices.Equal(got, []bool{true, false, false}) {
			t.Fatalf("FollowedBy(3) = %v, %v", got, err)
		}
		if got, _ := f.FollowedBy(ctx, "2", []string{"1"}); !slices.Equal(got, []bool{false}) {
			t.Fatalf("an unfollow is still a follow: %v", got)
		}
	})
	t.Run("touch keeps the set", func(t *testing.T) {
		f := newFollows(t)
		_ = f.SaveFollowing(ctx, "1", []byte("v1"), []string{"2"})
		if err := f.TouchFollowing(ctx, "1", []byte("v1-checked")); err != nil {
			t.Fatal(err)
		}
		rec, _ := f.LoadFollowing(ctx, "1")
		got, _ := f.FollowedBy(ctx, "2", []string{"1"})
		if string(rec) != "v1-checked" || !slices.Equal(got, []bool{true}) {
			t.Fatalf("after touch: %q, %v", rec, got)
		}
	})
	// Thousands of follows make a record and a command many times the Redis client's 8 KiB
	// buffers: both go through whole.
	t.Run("following nobody and following thousands", func(t *testing.T) {
		f := newFollows(t)
		if err := f.SaveFollowing(ctx, "1", []byte("none"), nil); err != nil {
			t.Fatal(err)
		}
		many := make([]string, 2500)
		for i := range many {
			many[i] = fmt.Sprint(1000 + i)
		}
		rec := []byte(fmt.Sprintf("%q", many)) // about 20 KB, a record of 2,500 follows' size
		if err := f.SaveFollowing(ctx, "2", rec, many); err != nil {
			t.Fatal(err)
		}
		if got, err := f.LoadFollowing(ctx, "2"); err != nil || !bytes.Equal(got, rec) {
			t.Fatalf("record of %d bytes read back as %d bytes, %v", len(rec), len(got), err)
		}
		got, err := f.FollowedBy(ctx, "3499", []string{"1", "2"})
		if err != nil || !slices.Equal(got, []bool{false, true}) {
			t.Fatalf("FollowedBy = %v, %v", got, err)
		}
		if got, err := f.FollowedBy(ctx, "1", nil); err != nil || len(got) != 0 {
			t.Fatalf("no candidates = %v, %v", got, err)
		}
	})
}

func TestMemoryFollows(t *testing.T) {
	testFollows(t, func(*testing.T) cluster.Follows { return cluster.NewMemoryFollows() })
}

func TestRedisFollows(t *testing.T) {
	url := newTestRedis(t)
	testFollows(t, func(t *testing.T) cluster.Follows {
		rdb, err := cluster.NewRedisClient(cluster.RedisConfig{URL: url})
		if err != nil {
			t.Fatal(err)
		}
		if err := rdb.FlushDB(t.Context()).Err(); err != nil {
			t.Fatal(err)
		}
		t.Cleanup(func() { _ = rdb.Close() })
		return cluster.NewRedisFollows(rdb, nil)
	})
}
