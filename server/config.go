// Package server is one presenced node: it accepts WebSockets, reads and checks frames, and
// wires the connection and user actors to the cluster seams. cmd/presenced only maps flags onto
// Config and handles signals.
package server

import (
	"errors"
	"time"

	"go.uber.org/zap"

	"github.com/presenced/presenced/actors"
	"github.com/presenced/presenced/auth"
	"github.com/presenced/presenced/metrics"
)

// Config configures a node. Zero durations and sizes take the documented defaults.
type Config struct {
	User  actors.UserConfig  // debounce 2 s, away 5 min, resume window 60 s
	Auth  auth.Authenticator // required
	Graph auth.Graph         // required

	// RedisURL (redis://host:port/db) switches the bus and the store to Redis; empty keeps the
	// embedded in-memory bus and store (one node).
	RedisURL string
	// Cluster makes the node a cluster member (user actors become grains); nil: single node.
	Cluster *ClusterConfig

	HelloTimeout  time.Duration // a socket must say hello within this (10 s)
	PingInterval  time.Duration // the server pings every socket this often (20 s)
	DeadAfter     time.Duration // nothing heard for this long is a drop (45 s)
	WriteTimeout  time.Duration // one write to a socket may block this long (10 s)
	CloseGrace    time.Duration // after our close frame, wait this long for the client's (2 s)
	FrameTimeout  time.Duration // a frame that has begun must arrive whole within this (10 s)
	AuthTimeout   time.Duration // one Authenticate, and one follow-list fetch (all pages) (10 s)
	MaxQueueBytes int           // outbound bytes queued per socket before a slow-consumer close (256 KiB; at most 1 GiB)
	DrainRate     int           // sockets per second a shutdown tells to resume elsewhere (5,000)
	// WriteDelay is how long a text frame queued on an idle socket waits for more before the
	// write (1 ms; negative: write at once). Frames queued in that window leave in one write.
	WriteDelay time.Duration
	// StampFlush adds the test-only "ft" field (the change's flush time, unix µs) to every u,
	// o and x frame, so that a load test on the same clock measures flush to receipt. Off in
	// production: it costs a few bytes a frame and tells clients nothing they need.
	StampFlush bool

	// Rate limit on client frames after hello: RateLimit per second with bursts of RateBurst
	// (20/s, burst 40). Frames over it are dropped with a rate_limited error; more than
	// AbuseDrops drops within AbuseWindow (200 in 10 s) close with 1008.
	RateLimit   float64
	RateBurst   int
	AbuseDrops  int
	AbuseWindow time.Duration

	// RefreshInterval: while a user has sockets on this node, their follow list is revalidated
	// this often (10 min). RevalidateAfter: a hello revalidates the cached list unless it was
	// checked within this (30 s), so reconnect storms do not turn into GitHub request storms.
	RefreshInterval time.Duration
	RevalidateAfter time.Duration

	Log *zap.Logger // nil: no logs
	// Metrics is where the node and its actors, bus and store count (see package metrics);
	// nil counts nothing.
	Metrics *metrics.Metrics
}

// DefaultWriteDelay is Config.WriteDelay's default: long enough to gather the frames of one
// burst of flushes for a follower, short against the 20 ms a delivery may take. Measured
// against 5 ms (docs/benchmarks.md): 4-5 ms less median latency at low rates, the same p99 and
// throughput under load, where the flusher's rounds batch by themselves.
const DefaultWriteDelay = time.Millisecond

// maxQueueBytesLimit bounds MaxQueueBytes: an outbox counts its queue in an int32, and a
// gigabyte queued for one socket is no queue any more.
const maxQueueBytesLimit = 1 << 30

func (c *Config) setDefaults() error {
	if c.Auth == nil || c.Graph == nil {
		return errors.New("server: Config.Auth and Config.Graph are required")
	}
	d := actors.DefaultUserConfig()
	dur := func(p *time.Duration, v time.Duration) {
		if *p <= 0 {
			*p = v
		}
	}
	dur(&c.User.Debounce, d.Debounce)
	dur(&c.User.AwayAfter, d.AwayAfter)
	dur(&c.User.ResumeWindow, d.ResumeWindow)
	dur(&c.HelloTimeout, 10*time.Second)
	dur(&c.PingInterval, 20*time.Second)
	dur(&c.DeadAfter, 45*time.Second)
	dur(&c.WriteTimeout, 10*time.Second)
	dur(&c.CloseGrace, 2*time.Second)
	dur(&c.FrameTimeout, 10*time.Second)
	if c.WriteDelay == 0 {
		c.WriteDelay = DefaultWriteDelay
	}
	dur(&c.AuthTimeout, 10*time.Second)
	dur(&c.AbuseWindow, 10*time.Second)
	dur(&c.RefreshInterval, 10*time.Minute)
	dur(&c.RevalidateAfter, 30*time.Second)
	if c.DrainRate <= 0 {
		c.DrainRate = 5000
	}
	if c.MaxQueueBytes <= 0 {
		c.MaxQueueBytes = 256 << 10
	}
	c.MaxQueueBytes = min(c.MaxQueueBytes, maxQueueBytesLimit)
	if c.RateLimit <= 0 {
		c.RateLimit = 20
	}
	if c.RateBurst <= 0 {
		c.RateBurst = 40
	}
	if c.AbuseDrops <= 0 {
		c.AbuseDrops = 200
	}
	if c.Log == nil {
		c.Log = zap.NewNop()
	}
	return nil
}
