// Package testkit helps tests run presenced for real: a node on a free loopback port (or on
// in-memory pipes inside a synctest bubble), and a WebSocket client with deadline-based
// expectations.
package testkit

import (
	"context"
	"errors"
	"net"
	"testing"
	"time"

	"github.com/presenced/presenced/auth"
	"github.com/presenced/presenced/client"
	"github.com/presenced/presenced/server"
)

// Node is a running presenced node for one test; t.Cleanup shuts it down.
type Node struct {
	*server.Node
	URL  string
	opts client.Options
}

// DevConfig is a node config with dev auth over graph.
func DevConfig(graph map[string][]string) server.Config {
	return server.Config{Auth: auth.DevAuth{}, Graph: auth.StaticGraph(graph)}
}

// StartNode runs a node on 127.0.0.1 on a free port.
func StartNode(tb testing.TB, cfg server.Config) *Node {
	tb.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		tb.Fatalf("testkit: listen: %v", err)
	}
	return serve(tb, cfg, ln, "ws://"+ln.Addr().String()+"/ws", client.Options{})
}

// StartPipeNode runs a node on in-memory pipes: use it inside synctest.Test.
func StartPipeNode(tb testing.TB, cfg server.Config) *Node {
	tb.Helper()
	ln := NewPipeListener()
	// Registered first, so it runs after the node's shutdown: messages that reach stopped actors
	// start Proto.Actor's dead-letter log throttle, a goroutine that waits out one 1 s period.
	// Let that period pass (virtual time in the bubble) so the bubble ends with no goroutine left.
	tb.Cleanup(func() { time.Sleep(deadLetterThrottle + time.Second) })
	return serve(tb, cfg, ln, "ws://pipe/ws", client.Options{NetDial: ln.Dial})
}

// deadLetterThrottle is Proto.Actor's default dead-letter throttle interval.
const deadLetterThrottle = time.Second

func serve(tb testing.TB, cfg server.Config, ln net.Listener, url string, opts client.Options) *Node {
	n, err := server.New(cfg)
	if err != nil {
		tb.Fatalf("testkit: new node: %v", err)
	}
	done := make(chan error, 1)
	go func() { done <- n.Serve(ln) }()
	tb.Cleanup(func() {
		ctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
		defer cancel()
		if err := n.Shutdown(ctx); err != nil {
			tb.Errorf("testkit: shutdown: %v", err)
		}
		if err := <-done; !errors.Is(err, server.ErrClosed) {
			tb.Errorf("testkit: serve returned %v", err)
		}
	})
	return &Node{Node: n, URL: url, opts: opts}
}

// WithOptions returns a copy of n whose Dial uses these client options (the dialer is kept).
func (n *Node) WithOptions(f func(*client.Options)) *Node {
	c := *n
	f(&c.opts)
	return &c
}
