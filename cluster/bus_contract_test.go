package cluster_test

import (
	"context"
	"sync"
	"testing"

	"github.com/presenced/presenced/cluster"
	"time"
)

// recorder collects deliveries for the contract tests.
type recorder struct {
	mu  sync.Mutex
	got []string
	ch  chan struct{}
}

func newRecorder() *recorder { return &recorder{ch: make(chan struct{}, 100)} }

func (r *recorder) deliver(user string, payload []byte) {
	r.mu.Lock()
	r.got = append(r.got, user+"="+string(payload))
	r.mu.Unlock()
	r.ch <- struct{}{}
}

func (r *recorder) wait(t *testing.T, n int) []string {
	t.Helper()
	for i := 0; i < n; i++ {
		select {
		case <-r.ch:
		case <-time.After(5 * time.Second):
			t.Fatalf("got %d deliveries, want %d", i, n)
		}
	}
	r.mu.Lock()
	defer r.mu.Unlock()
	return append([]string(nil), r.got...)
}

// testBus is the contract every cluster.Bus implementation passes. newBus returns a bus delivering to
// deliver.
func testBus(t *testing.T, newBus func(t *testing.T, deliver cluster.Deliver) cluster.Bus) {
	ctx := context.Background()
	t.Run("delivers only subscribed channels, in order", func(t *testing.T) {
		r := newRecorder()
		b := newBus(t, r.deliver)
		if err := b.Subscribe(ctx, "alice"); err != nil {
			t.Fatal(err)
		}
		for _, m := range []struct{ u, p string }{{"bob", "x"}, {"alice", "1"}, {"alice", "2"}} {
			if err := b.Publish(ctx, m.u, []byte(m.p)); err != nil {
				t.Fatal(err)
			}
		}
		if got := r.wait(t, 2); len(got) != 2 || got[0] != "alice=1" || got[1] != "alice=2" {
			t.Fatalf("got %v", got)
		}
	})
	t.Run("unsubscribe stops deliveries", func(t *testing.T) {
		r := newRecorder()
		b := newBus(t, r.deliver)
		_ = b.Subscribe(ctx, "alice")
		_ = b.Subscribe(ctx, "carol")
		_ = b.Unsubscribe(ctx, "alice")
		_ = b.Publish(ctx, "alice", []byte("lost"))
		_ = b.Publish(ctx, "carol", []byte("seen"))
		if got := r.wait(t, 1); len(got) != 1 || got[0] != "carol=seen" {
			t.Fatalf("got %v", got)
		}
	})
	t.Run("binary payloads arrive intact", func(t *testing.T) {
		r := newRecorder()
		b := newBus(t, r.deliver)
		_ = b.Subscribe(ctx, "alice")
		_ = b.Publish(ctx, "alice", []byte{0, 1, 0xff, '\n'})
		if got := r.wait(t, 1); got[0] != "alice=\x00\x01\xff\n" {
			t.Fatalf("got %q", got)
		}
	})
}

func TestChannelName(t *testing.T) {
	if got := cluster.Channel("alice"); got != "presence:alice" {
		t.Fatalf("cluster.Channel = %q", got)
	}
}
