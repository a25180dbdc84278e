package main

import (
	"context"
	"fmt"
	"runtime/debug"
	"runtime/metrics"
	"slices"
	"sync/atomic"
	"testing"
	"testing/synctest"
	"time"

	"go.uber.org/zap"
	"go.uber.org/zap/zaptest/observer"
)

// TestGCQuiet: the idle target comes once ten samples in a row allocated under 2% of the live
// heap a second on average, with a release of free memory, and the release repeats every ten
// samples while quiet; a lease round's one-second burst is not a wave; a wave (one second over
// 20%, or the ten-second average at twice the bound) restores the busy target at once, and the
// quiet target returns only once the wave has left the window. Frames sent (64 KiB a second on
// average) count the same way.
func TestGCQuiet(t *testing.T) {
	const live = 1000 // bytes; samples below are in thousandths of the live heap
	g := newGCQuiet(25, 10)
	var n int
	// feed gives g the samples and returns what it did, as "sample#:percent/release".
	feed := func(samples ...uint64) []string {
		var got []string
		for _, a := range samples {
			n++
			if p, r := g.step(a, 0, live); p != 0 || r {
				got = append(got, fmt.Sprintf("%d:%d/%v", n, p, r))
			}
		}
		return got
	}
	check := func(name string, got []string, want ...string) {
		t.Helper()
		if !slices.Equal(got, want) {
			t.Fatalf("%s: got %q, want %q", name, got, want)
		}
	}
	rep := func(a uint64, k int) []uint64 { return slices.Repeat([]uint64{a}, k) }

	check("the first ten quiet samples fill the window; the tenth switches", feed(rep(10, 10)...), "10:10/true")
	check("ten samples later a release", feed(rep(10, 10)...), "20:0/true")
	// A lease round: 6% in one second, the window's sum 15% of 20%.
	check("a one-second burst stays quiet", feed(append([]uint64{60}, rep(10, 9)...)...), "30:0/true")
	check("a wave: one second over 20%", feed(250), "31:25/false")
	check("back once the wave left the window", feed(rep(10, 10)...), "41:10/true")
	// Quiet, then 3% a second: the average is 30%, under twice the bound: still quiet.
	check("3% a second is not busy again", feed(rep(30, 10)...), "51:0/true")
	// 5% a second: the window reaches 40% on the fifth such second (5 × 3% + 5 × 5%).
	check("5% a second is", feed(rep(50, 5)...), "56:25/false")
	check("and it stays busy at 3%", feed(rep(30, 20)...))
	check("exactly 2% is not quiet", feed(rep(20, 20)...))
	check("just under is, as soon as the window is", feed(rep(19, 10)...), "97:10/true")

	// Frames sent count as much as allocation, because the delivery path allocates nothing.
	g = newGCQuiet(25, 10)
	n = 0
	const kib = 1 << 10
	sent := func(alloc, bytes uint64, k int) []string {
		var got []string
		for range k {
			n++
			if p, r := g.step(alloc, bytes, live); p != 0 || r {
				got = append(got, fmt.Sprintf("%d:%d/%v", n, p, r))
			}
		}
		return got
	}
	check("a fan-out that allocates nothing is not quiet", sent(0, 7500*kib, 30))
	check("quiet once the fan-out has left the window", sent(0, 0, 10), "40:10/true")
	check("a little traffic stays quiet", sent(0, 100*kib, 5))
	// One second of 640 KiB, the window's whole allowance, is a wave at once.
	check("one second of 640 KiB ends it", sent(0, 640*kib, 1), "46:25/false")
	check("busy while the window holds 64 KiB a second", sent(0, 64*kib, 12))
	check("just under 64 KiB a second is quiet", sent(0, 63*kib, 10), "59:10/true")

	if g.idlePercent() != 10 || (*gcQuiet)(nil).idlePercent() != 0 {
		t.Fatalf("idlePercent = %d, and %d for nil; want 10 and 0", g.idlePercent(), (*gcQuiet)(nil).idlePercent())
	}
}

// TestRunGCQuiet: the loop feeds the rule the heap's reading and the frames the node sent, and
// sets what it decides: ten idle seconds bring the quiet target (and its log line, with the live
// heap), one second of frames the busy one; stop ends the loop. Virtual time: the ten seconds
// take none. The heap's reading is the test's own: the test process's real allocation, from the
// runtime and whatever else runs in it, is not quiet to order.
func TestRunGCQuiet(t *testing.T) {
	prev := debug.SetGCPercent(25)
	defer debug.SetGCPercent(prev)
	gogc := func() uint64 {
		s := []metrics.Sample{{Name: "/gc/gogc:percent"}}
		metrics.Read(s)
		return s[0].Value.Uint64()
	}
	synctest.Test(t, func(t *testing.T) {
		core, logs := observer.New(zap.InfoLevel)
		var sent atomic.Uint64
		const live = 64 << 20
		heap := func() (uint64, uint64) { return 0, live } // allocates nothing
		stop := background(func(ctx context.Context) {
			runGCQuiet(ctx, newGCQuiet(25, 10), heap, sent.Load, zap.New(core))
		})
		defer stop()
		time.Sleep(10*quietSample + quietSample/2)
		if got := gogc(); got != 10 {
			t.Fatalf("after ten idle seconds the target is %d, want 10", got)
		}
		sent.Add(10 * quietSentBytes) // a second with ten seconds' worth of frames
		time.Sleep(quietSample)
		if got := gogc(); got != 25 {
			t.Fatalf("after a second of frames the target is %d, want 25", got)
		}
		var quiet []bool
		for _, e := range logs.FilterMessage("garbage collector target").All() {
			quiet = append(quiet, e.ContextMap()["quiet"].(bool))
			if got := e.ContextMap()["live_heap_bytes"]; got != uint64(live) {
				t.Errorf("logged live_heap_bytes %v, want %d", got, live)
			}
		}
		if !slices.Equal(quiet, []bool{true, false}) {
			t.Fatalf("switches logged as quiet=%v, want [true false]", quiet)
		}
	})
}
