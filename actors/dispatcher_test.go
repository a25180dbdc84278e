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
		d := NewDispatcher(300, 3, 100, time.Second)
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
		d := NewDispatcher(300, 2, 1, time.Second)
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
