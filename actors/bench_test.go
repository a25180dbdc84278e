package actors

import (
	"context"
	"fmt"
	"log/slog"
	"runtime"
	"strconv"
	"sync/atomic"
	"testing"

	"github.com/asynkron/protoactor-go/actor"
	"go.uber.org/zap"
	"google.golang.org/protobuf/proto"

	"github.com/presenced/presenced/actors/actorpb"
	"github.com/presenced/presenced/auth"
	"github.com/presenced/presenced/cluster"
	"github.com/presenced/presenced/wire"
)

// countingSocket counts frames and signals when a round's target is reached.
type countingSocket struct {
	n      *atomic.Int64
	target *atomic.Int64
	done   chan struct{}
	bytes  *atomic.Int64
}

func (s countingSocket) Write(b []byte) {
	s.bytes.Add(int64(len(b)))
	if s.n.Add(1) == s.target.Load() {
		s.done <- struct{}{}
	}
}
func (countingSocket) Close(int, string, string) {}

// BenchmarkFanout1000: one published change of alice handed to K=1,000 local followers' connection
// actors, each diffing against its view, encoding and queueing the frame. Sockets are counters
// here; server.BenchmarkFanoutLoopback1000 adds real WebSockets.
func BenchmarkFanout1000(b *testing.B) {
	const k = 1000
	system := actor.NewActorSystem(actor.WithLoggerFactory(func(*actor.ActorSystem) *slog.Logger { return slog.New(slog.DiscardHandler) }))
	store := cluster.NewMemoryStore()
	d, p := NewLocalDeps(system, store, func(d cluster.Deliver) cluster.Bus { return cluster.NewMemoryBus(d) }, DefaultUserConfig(), zap.NewNop())
	var n, target, bytes atomic.Int64
	done := make(chan struct{}, 1)
	sock := countingSocket{n: &n, target: &target, done: done, bytes: &bytes}
	target.Store(2 * k) // welcome + sync each
	for i := range k {
		SpawnConn(d, ConnSpec{User: fmt.Sprintf("f%d", i), Login: "f", Following: followees("alice"), Socket: sock})
	}
	<-done
	acts := []wire.Activity{wire.Coding, wire.Debugging}
	b.ReportAllocs()
	b.ResetTimer()
	for i := 0; i < b.N; i++ {
		up := &actorpb.PresenceUpdate{User: "alice", Version: uint64(i + 1), State: int32(wire.StateOnline), Activity: int32(acts[i%2]), Project: "MyApp", Language: "Go"}
		payload, _ := proto.Marshal(envelope(up))
		target.Add(k)
		_ = d.Bus.Publish(context.Background(), "alice", payload)
		<-done
	}
	b.StopTimer()
	b.ReportMetric(float64(b.N*k)/b.Elapsed().Seconds(), "deliveries/s")
	p.Close()
	system.Shutdown()
}

// BenchmarkDeliver is the per-delivery path of one follower: the view's diff against what it
// showed, and the frame, shared with the other followers of the same change. One op is one
// delivery; a change is encoded once for its K=1,000 followers, so steady state allocates
// nothing per delivery.
func BenchmarkDeliver(b *testing.B) {
	const k = 1000
	views := make([]*View, k)
	for i := range views {
		views[i] = NewView(followees("alice"))
		views[i].Sync([]*actorpb.PresenceUpdate{{User: "alice", Version: 1, State: int32(wire.StateOnline)}}, nil)
	}
	acts := []wire.Activity{wire.Coding, wire.Debugging}
	var d *Delivery
	b.ReportAllocs()
	b.ResetTimer()
	for i := 0; i < b.N; i++ {
		if i%k == 0 {
			ver := uint64(i/k + 2)
			d = NewDelivery(&actorpb.PresenceUpdate{User: "alice", Version: ver, State: int32(wire.StateOnline), Activity: int32(acts[ver%2]), Project: "MyApp", Language: "Go"})
		}
		if _, _, ok := views[i%k].Deliver(d, nil); !ok {
			b.Fatal("no frame")
		}
	}
}

// BenchmarkDeliverWideViews is BenchmarkDeliver where views are wide and many, as at K = 500:
// 2,000 views, each following 500 of 2,000 users, so the views (a million entries) do not fit
// in the caches and finding a user's entry is a memory access like on a busy node. One op is one
// delivery; each change goes to every view that follows its user.
func BenchmarkDeliverWideViews(b *testing.B) {
	const users, views, k = 2000, 2000, 500
	name := func(i int) string { return fmt.Sprintf("u%d", i) }
	lists := make([][]auth.Followee, views)
	for i := range lists {
		for j := range k {
			u := (i*7919 + j*31) % users // k distinct users, spread over the id space
			lists[i] = append(lists[i], auth.Followee{ID: name(u), Login: name(u)})
		}
	}
	heap := func() uint64 {
		var ms runtime.MemStats
		runtime.GC()
		runtime.ReadMemStats(&ms)
		return ms.HeapAlloc
	}
	before := heap()
	all := make([]*View, views)
	for i, list := range lists {
		all[i] = NewView(Follow(list, ""))
		all[i].Sync(nil, nil)
	}
	// What the views hold per followed user, their interned follow lists (8 bytes an entry) included.
	perFollow := float64(heap()-before) / (views * k)
	followers := make([][]*View, users)
	for i, list := range lists {
		for _, f := range list {
			u, _ := strconv.Atoi(f.ID[1:])
			followers[u] = append(followers[u], all[i])
		}
	}
	ver := make([]uint64, users)
	acts := []wire.Activity{wire.Coding, wire.Debugging}
	b.ReportAllocs()
	b.ResetTimer()
	n := 0
	for c := 0; n < b.N; c++ {
		u := (c * 104729) % users
		ver[u]++
		d := NewDelivery(&actorpb.PresenceUpdate{User: name(u), Version: ver[u], State: int32(wire.StateOnline), Activity: int32(acts[ver[u]%2])})
		for _, v := range followers[u] {
			if _, _, ok := v.Deliver(d, nil); !ok {
				b.Fatal("no frame")
			}
			if n++; n == b.N {
				break
			}
		}
	}
	b.StopTimer()
	b.ReportMetric(perFollow, "view-B/follow") // after the loop: ResetTimer drops reported metrics
}
