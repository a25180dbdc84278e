package server_test

import (
	"context"
	"fmt"
	"sync/atomic"
	"testing"
	"time"

	"github.com/presenced/presenced/client"
	"github.com/presenced/presenced/testkit"
	"github.com/presenced/presenced/wire"
)

// BenchmarkFanoutLoopback1000: alice changes status; 1,000 followers on real loopback WebSockets
// each receive the u frame. One op = one change delivered to all 1,000 (debounce 1 µs, so the
// op is the user actor, the fanout, 1,000 connection actors and 1,000 socket writes and reads).
func BenchmarkFanoutLoopback1000(b *testing.B) {
	const k = 1000
	graph := map[string][]string{}
	for i := range k {
		graph[fmt.Sprintf("f%d", i)] = []string{"alice"}
	}
	cfg := testkit.DevConfig(graph)
	cfg.User.Debounce = time.Microsecond
	n := testkit.StartNode(b, cfg)
	var got, target atomic.Int64
	done := make(chan struct{}, 1)
	ctx := context.Background()
	for u := range graph {
		c, err := client.Dial(ctx, n.URL, client.Options{})
		if err != nil {
			b.Fatal(err)
		}
		if _, _, err := c.Hello(wire.Hello{Token: u}); err != nil {
			b.Fatal(err)
		}
		go func() {
			for {
				if _, _, err := c.Read(); err != nil {
					return
				}
				if got.Add(1) == target.Load() {
					done <- struct{}{}
				}
			}
		}()
		b.Cleanup(func() { _ = c.Drop() })
	}
	a, err := client.Dial(ctx, n.URL, client.Options{})
	if err != nil {
		b.Fatal(err)
	}
	b.Cleanup(func() { _ = a.Drop() })
	target.Store(k)
	if _, _, err := a.Hello(wire.Hello{Token: "alice"}); err != nil {
		b.Fatal(err)
	}
	<-done // everyone saw alice come online
	acts := []wire.Activity{wire.Coding, wire.Debugging}
	b.ResetTimer()
	for i := 0; i < b.N; i++ {
		target.Add(k)
		if err := a.Send(wire.Status{Has: wire.FieldActivity, Activity: acts[i%2]}); err != nil {
			b.Fatal(err)
		}
		<-done
	}
	b.StopTimer()
	b.ReportMetric(float64(b.N*k)/b.Elapsed().Seconds(), "deliveries/s")
}
