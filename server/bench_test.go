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

// BenchmarkLogin measures hello → sync for a GitHub user following 250 people (3 pages), against
// the fake GitHub on loopback, with a simulated GitHub round trip of rtt. cold: a token and a
// list never seen (GET /user + 3 pages before the sync); warm: the token and the list are
// cached (no request before the sync; the list is revalidated after it).
func BenchmarkLogin(b *testing.B) {
	for _, rtt := range []time.Duration{0, 50 * time.Millisecond} {
		for _, warm := range []bool{false, true} {
			name := fmt.Sprintf("rtt=%v/cold", rtt)
			if warm {
				name = fmt.Sprintf("rtt=%v/warm", rtt)
			}
			b.Run(name, func(b *testing.B) { benchLogin(b, rtt, warm) })
		}
	}
}

func benchLogin(b *testing.B, rtt time.Duration, warm bool) {
	gh := testkit.NewFakeGitHub(b)
	follows := make([]int64, 250)
	for i := range follows {
		follows[i] = int64(10000 + i)
		gh.AddUser(follows[i], fmt.Sprintf("dev-%d", i))
	}
	cfg, _ := testkit.GitHubConfig(gh)
	n := testkit.StartNode(b, cfg)
	gh.AddUser(1, "warm", "tok-warm")
	gh.SetFollowing(1, follows...)
	ctx := context.Background()
	login := func(token string) {
		c, err := client.Dial(ctx, n.URL, client.Options{})
		if err != nil {
			b.Fatal(err)
		}
		defer func() { _ = c.Drop() }()
		if _, s, err := c.Hello(wire.Hello{Token: token}); err != nil || len(s.Users) != 250 {
			b.Fatalf("hello: %v (%d users)", err, len(s.Users))
		}
	}
	login("tok-warm")
	gh.SetDelay(rtt)
	b.ResetTimer()
	for i := 0; i < b.N; i++ {
		token := "tok-warm"
		if !warm {
			b.StopTimer()
			id := int64(100 + i)
			token = fmt.Sprintf("tok-%d", id)
			gh.AddUser(id, fmt.Sprintf("cold-%d", id), token)
			gh.SetFollowing(id, follows...)
			b.StartTimer()
		}
		login(token)
	}
}
