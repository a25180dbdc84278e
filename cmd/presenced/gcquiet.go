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
// so runGCQuiet switches to --gc-idle-percent once the node has been quiet a while, returns the
// pages the wave left free, and switches back the moment the node is busy again.
//
// Quiet means two things: little allocation, and few frames sent. Allocation alone is not
// enough, because the delivery path allocates nothing: a node fanning out 75,000 frames a
// second to 2,000 followers allocates about 1 MB/s, under 1% of its heap, and the extra
// collections and releases of the quiet target put their pauses into those frames' latency.

// quietSample is how often the rule takes a sample.
const quietSample = time.Second

// The rule's bounds. quietFor samples make the window. quietFrac: 2% of the live heap a second
// lets the idle target's headroom (10%) last five seconds; 18,000 idle connections allocate
// about 1% on average (lease renewals, pings), a connect wave far more. quietSentBytes: about
// 600 deliveries of 100 bytes a second; an idle node sends only pings (control frames, not
// counted). Ten seconds keeps the switch off the short lulls of a wave.
const (
	quietFor       = 10
	quietFrac      = 0.02
	quietSentBytes = 64 << 10
)

// gcQuiet is the rule: fed one sample a second, it says when to change the target. It judges
// the last quietFor seconds together, not each second: an idle node's lease round allocates a
// few percent of the heap in one second every ten (one Redis script per 500 users, with their
// keys), and that is not a wave. The node is quiet while the window allocated less than
// quietFrac of the live heap and sent less than quietSentBytes a second on average, and busy
// again from twice either (or any one second over quietFor seconds' worth of either: a wave
// starts).
type gcQuiet struct {
	busy, idle int // collector targets, percent

	alloc, sent ring
	samples     int  // taken so far, up to quietFor: the window is full at quietFor
	since       int  // samples since the last release, while quiet
	quiet       bool // the idle target is in force
}

// ring sums the last quietFor samples of one measure.
type ring struct {
	v    [quietFor]uint64
	next int // where the next sample goes
	sum  uint64
}

func (r *ring) add(x uint64) {
	r.sum += x - r.v[r.next]
	r.v[r.next] = x
	r.next = (r.next + 1) % quietFor
}

func newGCQuiet(busy, idle int) *gcQuiet { return &gcQuiet{busy: busy, idle: idle} }

// idlePercent is the quiet target, 0 for none (g nil), for the start-up log.
func (g *gcQuiet) idlePercent() int {
	if g == nil {
		return 0
	}
	return g.idle
}

// step takes the bytes allocated and the bytes of text frames sent since the last sample, and
// the live heap. It returns the target to set (0: no change) and whether to return free memory
// to the OS now: on becoming quiet, and every quietFor samples while quiet, because an idle
// node's collections free pages too (and a sync.Pool's buffers only on the second collection
// after their last use), while the background scavenger keeps about a tenth of the heap's goal
// of them resident.
func (g *gcQuiet) step(allocated, sent, live uint64) (percent int, release bool) {
	g.alloc.add(allocated)
	g.sent.add(sent)
	g.samples = min(g.samples+1, quietFor)
	allocBound := quietFrac * float64(live) * quietFor // over the whole window
	sentBound := float64(quietSentBytes * quietFor)
	if g.quiet {
		if float64(g.alloc.sum) >= 2*allocBound || float64(allocated) >= allocBound ||
			float64(g.sent.sum) >= 2*sentBound || float64(sent) >= sentBound {
			g.quiet = false
			return g.busy, false
		}
		if g.since++; g.since == quietFor {
			g.since = 0
			return 0, true
		}
		return 0, false
	}
	if g.samples < quietFor || float64(g.alloc.sum) >= allocBound || float64(g.sent.sum) >= sentBound {
		return 0, false
	}
	g.quiet, g.since = true, 0
	return g.idle, true
}

// heapReader reads the bytes allocated so far and the live heap.
type heapReader func() (allocated, live uint64)

// runtimeHeap reads them from runtime/metrics. It is not safe for concurrent use (the loop
// alone calls it).
func runtimeHeap() heapReader {
	samples := []metrics.Sample{{Name: "/gc/heap/allocs:bytes"}, {Name: "/gc/heap/live:bytes"}}
	return func() (uint64, uint64) {
		metrics.Read(samples)
		return samples[0].Value.Uint64(), samples[1].Value.Uint64()
	}
}

// runGCQuiet applies g once a second until ctx ends, and logs each switch (twice per wave).
// heap reads the allocation (runtimeHeap in a node; a test's own counts, since a test process's
// allocation is not the test's to decide), sent the bytes of text frames sent so far.
func runGCQuiet(ctx context.Context, g *gcQuiet, heap heapReader, sent func() uint64, log *zap.Logger) {
	last, _ := heap()
	lastSent := sent()
	every(ctx, quietSample, func() {
		now, live := heap()
		nowSent := sent()
		percent, release := g.step(now-last, nowSent-lastSent, live)
		last, lastSent = now, nowSent
		if percent > 0 {
			debug.SetGCPercent(percent)
			log.Info("garbage collector target", zap.Int("gc_percent", percent), zap.Bool("quiet", percent == g.idle),
				zap.Uint64("live_heap_bytes", live))
		}
		if release {
			// Collects at the new target and hands back every free page: what the wave left
			// resident is returned once, instead of over minutes by the background scavenger.
			debug.FreeOSMemory()
			last, _ = heap()
		}
	})
}
