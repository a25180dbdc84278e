package main

import (
	"context"
	"runtime/debug"
	"runtime/metrics"
	"time"

	"go.uber.org/zap"
)

// A node is busy in waves (a login storm, a burst of status changes) and otherwise holds idle
// connections that allocate almost nothing. Its collector target (--gc-percent) is a compromise
// for the waves: lower makes a connect wave slower (every collection marks the whole live heap,
// and a wave allocates fast), higher keeps more of the heap resident. While the node is quiet a
// much lower target is nearly free (a collection every few seconds, tens of milliseconds each),
// so quietGC switches to --gc-idle-percent once the node has been quiet a while, returns the
// pages the wave left free, and switches back the moment allocation picks up.

// quietSample is how often the rule looks at the allocation rate.
const quietSample = time.Second

// gcQuiet is the rule: fed one sample a second, it says when to change the target. It judges
// the last quietFor seconds together, not each second: an idle node's lease round allocates a
// few percent of the heap in one second every ten (one Redis script per 500 users, with their
// keys), and that is not a wave.
type gcQuiet struct {
	busy, idle int // collector targets, percent
	// quietFrac: the node is quiet while its last quietFor samples allocated less than quietFrac
	// of the live heap a second on average, and busy again from twice that (or any one second
	// over quietFor × quietFrac: a wave starts).
	quietFrac float64
	quietFor  int

	window []uint64 // the last quietFor samples' allocations, a ring
	next   int      // where the next sample goes in window
	filled int      // samples in window, up to quietFor
	sum    uint64   // of window
	since  int      // samples since the last release, while quiet
	quiet  bool     // the idle target is in force
}

func newGCQuiet(busy, idle int) *gcQuiet {
	// 2% of the live heap a second lets the idle target's headroom (10%) last five seconds;
	// 18,000 idle connections allocate about 1% on average (lease renewals, pings), a connect
	// wave or a fan-out far more. Ten seconds keeps the switch off the short lulls of a wave.
	const quietFor = 10
	return &gcQuiet{busy: busy, idle: idle, quietFrac: 0.02, quietFor: quietFor, window: make([]uint64, quietFor)}
}

// idlePercent is the quiet target, 0 for none (g nil), for the start-up log.
func (g *gcQuiet) idlePercent() int {
	if g == nil {
		return 0
	}
	return g.idle
}

// step takes the bytes allocated since the last sample and the live heap. It returns the target
// to set (0: no change) and whether to return free memory to the OS now: on becoming quiet, and
// every quietFor samples while quiet, because an idle node's collections free pages too (and a
// sync.Pool's buffers only on the second collection after their last use), while the background
// scavenger keeps about a tenth of the heap's goal of them resident.
func (g *gcQuiet) step(allocated, live uint64) (percent int, release bool) {
	g.sum += allocated - g.window[g.next]
	g.window[g.next] = allocated
	g.next = (g.next + 1) % len(g.window)
	g.filled = min(g.filled+1, len(g.window))
	bound := g.quietFrac * float64(live) * float64(len(g.window)) // over the whole window
	if g.quiet {
		if float64(g.sum) >= 2*bound || float64(allocated) >= bound {
			g.quiet = false
			return g.busy, false
		}
		if g.since++; g.since == g.quietFor {
			g.since = 0
			return 0, true
		}
		return 0, false
	}
	if g.filled < len(g.window) || float64(g.sum) >= bound {
		return 0, false
	}
	g.quiet, g.since = true, 0
	return g.idle, true
}

// runGCQuiet applies g once a second until ctx ends, and logs each switch (twice per wave).
func runGCQuiet(ctx context.Context, g *gcQuiet, log *zap.Logger) {
	samples := []metrics.Sample{{Name: "/gc/heap/allocs:bytes"}, {Name: "/gc/heap/live:bytes"}}
	metrics.Read(samples)
	last := samples[0].Value.Uint64()
	t := time.NewTicker(quietSample)
	defer t.Stop()
	for {
		select {
		case <-ctx.Done():
			return
		case <-t.C:
		}
		metrics.Read(samples)
		now := samples[0].Value.Uint64()
		percent, release := g.step(now-last, samples[1].Value.Uint64())
		last = now
		if percent > 0 {
			debug.SetGCPercent(percent)
			log.Info("garbage collector target", zap.Int("gc_percent", percent), zap.Bool("quiet", percent == g.idle),
				zap.Uint64("live_heap_bytes", samples[1].Value.Uint64()))
		}
		if release {
			// Collects at the new target and hands back every free page: what the wave left
			// resident is returned once, instead of over minutes by the background scavenger.
			debug.FreeOSMemory()
			metrics.Read(samples)
			last = samples[0].Value.Uint64()
		}
	}
}
