package actors

import (
	"sync"
	"sync/atomic"
	"testing"
	"testing/synctest"
	"time"
)

// TestDispatcherRunsEverything: every scheduled run runs once, on at most max workers, and the
// workers exit once idle.
func TestDispatcherRunsEverything(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		d := NewDispatcher(300, 3, 100, time.Second, 0)
		var ran atomic.Int64
		var wg sync.WaitGroup
		const n = 10000
		wg.Add(n)
		for range n {
			d.Schedule(func() { ran.Add(1); wg.Done() })
			if w := d.alive(); w > 3 {
				t.Fatalf("%d workers, max 3", w)
			}
		}
		wg.Wait()
		if ran.Load() != n {
			t.Fatalf("ran %d of %d", ran.Load(), n)
		}
		time.Sleep(time.Second)
		synctest.Wait()
		if w := d.alive(); w != 0 {
			t.Fatalf("%d workers still alive after a second idle", w)
		}
		// A run after the workers left starts one again.
		done := make(chan struct{})
		d.Schedule(func() { close(done) })
		<-done
		d.Close()
		synctest.Wait()
		if w := d.alive(); w != 0 {
			t.Fatalf("%d workers alive after Close", w)
		}
		ranAfter := make(chan struct{})
		d.Schedule(func() { close(ranAfter) })
		<-ranAfter
	})
}

// TestDispatcherFullQueueRunsAtOnce: with every worker blocked, runs queue up to the queue's
// length and wait for a worker; one more runs at once on a goroutine of its own.
func TestDispatcherFullQueueRunsAtOnce(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		d := NewDispatcher(300, 2, 1, time.Second, 0)
		defer d.Close()
		release := make(chan struct{})
		var ran atomic.Int64
		for range 2 { // block both workers
			d.Schedule(func() { <-release; ran.Add(1) })
			synctest.Wait()
		}
		queued := make(chan struct{})
		d.Schedule(func() { close(queued) })
		synctest.Wait()
		select {
		case <-queued:
			t.Fatal("a run took a third worker, max 2")
		default:
		}
		done := make(chan struct{})
		d.Schedule(func() { close(done) })
		synctest.Wait()
		select {
		case <-done:
		default:
			t.Fatal("a run waited for a worker with the queue full")
		}
		close(release)
		<-queued
		synctest.Wait()
		if ran.Load() != 2 {
			t.Fatalf("blocked runs finished: %d of 2", ran.Load())
		}
	})
}

// TestDispatcherStalledRunsGetGoroutines: with every worker held in one run (a hung store
// call), queued runs wait stallAfter, not longer, and then run on goroutines of their own.
func TestDispatcherStalledRunsGetGoroutines(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		d := NewDispatcher(300, 2, 100, time.Second, time.Second)
		defer d.Close()
		hold := make(chan struct{})
		for range 2 {
			d.Schedule(func() { <-hold })
			synctest.Wait()
		}
		var ran atomic.Int64
		// ranAfter lets virtual time pass and says how many of the counted runs have run.
		ranAfter := func(wait time.Duration) int64 {
			time.Sleep(wait)
			synctest.Wait()
			return ran.Load()
		}
		for range 5 {
			d.Schedule(func() { ran.Add(1) })
		}
		if n := ranAfter(time.Second - time.Millisecond); n != 0 {
			t.Fatalf("%d queued runs ran before the stall bound, behind two held workers", n)
		}
		if n := ranAfter(time.Millisecond); n != 5 {
			t.Fatalf("%d of 5 queued runs ran once the workers were held for the stall bound", n)
		}
		// Runs queued after that wait the bound again, counted from when they were queued.
		d.Schedule(func() { ran.Add(1) })
		if n := ranAfter(time.Second / 2); n != 5 {
			t.Fatalf("a run queued after the drain ran after half the bound (%d ran)", n)
		}
		if n := ranAfter(time.Second); n != 6 {
			t.Fatalf("a run queued after the drain still waits after 1.5 bounds (%d ran)", n)
		}
		close(hold)
	})
}

// TestDispatcherBusyIsNotStalled: workers that keep taking runs are not stalled, however long
// the queue takes to drain: no run gets a goroutine of its own, and at most max run at once.
func TestDispatcherBusyIsNotStalled(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		d := NewDispatcher(300, 2, 100, time.Second, time.Second)
		defer d.Close()
		var running, most atomic.Int64
		var wg sync.WaitGroup
		const n = 50
		wg.Add(n)
		start := time.Now()
		for range n {
			d.Schedule(func() {
				defer wg.Done()
				now := running.Add(1)
				for m := most.Load(); now > m && !most.CompareAndSwap(m, now); m = most.Load() {
				}
				time.Sleep(100 * time.Millisecond) // a store call that answers
				running.Add(-1)
			})
		}
		wg.Wait()
		if m := most.Load(); m != 2 {
			t.Fatalf("at most %d runs at once, want the 2 workers", m)
		}
		if took, want := time.Since(start), n/2*100*time.Millisecond; took != want {
			t.Fatalf("the queue drained in %v, want %v (two workers, none stalled)", took, want)
		}
	})
}
