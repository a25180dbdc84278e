package server

// What the node hands to metrics.Metrics beyond what its actors, bus and store count
// themselves: the gauges, read from Stats at every scrape, and what a socket knows of its
// own end. conn.go and outbox.go count through n.cfg.Metrics at the point where each thing
// happens (see docs/operations.md, "Metrics").

import "github.com/presenced/presenced/metrics"

// withMetrics makes scrapes read the node's gauges from Stats. New calls it last, once every
// part Stats reads is built.
func (n *Node) withMetrics() {
	n.cfg.Metrics.ReadGauges(func() metrics.Gauges {
		s := n.Stats()
		return metrics.Gauges{Conns: s.Conns, UserActors: s.UserActors, Channels: s.Fanout.Channels}
	})
}
