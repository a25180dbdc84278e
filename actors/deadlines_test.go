package actors

import (
	"slices"
	"sync"
	"testing"
	"testing/synctest"
	"time"
)

// firings notes which deadlines fired, and when (virtual time).
type firings struct {
	mu    sync.Mutex
	fired []string
	at    []time.Duration
	start time.Time
}

func (r *firings) fn(name string) func() {
	return func() {
		r.mu.Lock()
		defer r.mu.Unlock()
		r.fired = append(r.fired, name)
		r.at = append(r.at, time.Since(r.start))
	}
}

func (r *firings) got() ([]string, []time.Duration) {
	r.mu.Lock()
	defer r.mu.Unlock()
	return slices.Clone(r.fired), slices.Clone(r.at)
}

func TestDeadlinesFireInOrderAtTheirTime(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		ds := NewDeadlines(1) // one shard: every deadline shares one heap and one timer
		r := &firings{start: time.Now()}
		var a, b, c, d Deadline
		ds.Init(&a, r.fn("a"))
		ds.Init(&b, r.fn("b"))
		ds.Init(&c, r.fn("c"))
		ds.Init(&d, r.fn("d"))
		now := time.Now()
		a.Reset(now.Add(3 * time.Second))
		b.Reset(now.Add(1 * time.Second))
		c.Reset(now.Add(2 * time.Second))
		d.Reset(now.Add(5 * time.Second))
		c.Reset(now.Add(4 * time.Second)) // moved later
		if !d.Stop() {
			t.Fatal("Stop of a scheduled deadline returned false")
		}
		if d.Stop() {
			t.Fatal("a second Stop returned true")
		}
		time.Sleep(10 * time.Second)
		synctest.Wait()
		names, at := r.got()
		if want := []string{"b", "a", "c"}; !slices.Equal(names, want) {
			t.Fatalf("fired %v, want %v", names, want)
		}
		if want := []time.Duration{time.Second, 3 * time.Second, 4 * time.Second}; !slices.Equal(at, want) {
			t.Fatalf("fired at %v, want %v", at, want)
		}
		if a.Stop() || b.Stop() || c.Stop() || d.Stop() {
			t.Fatal("a deadline is still scheduled after firing or Stop")
		}
	})
}

func TestDeadlinesEarlierResetRearms(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		ds := NewDeadlines(1)
		r := &firings{start: time.Now()}
		var late, early Deadline
		ds.Init(&late, r.fn("late"))
		ds.Init(&early, r.fn("early"))
		late.Reset(time.Now().Add(time.Hour))
		early.Reset(time.Now().Add(time.Second)) // the shard's timer must move up for this one
		time.Sleep(2 * time.Second)
		synctest.Wait()
		if names, at := r.got(); !slices.Equal(names, []string{"early"}) || at[0] != time.Second {
			t.Fatalf("fired %v at %v, want [early] at 1s", names, at)
		}
		// A time already passed fires at once.
		early.Reset(time.Now().Add(-time.Minute))
		synctest.Wait()
		if names, _ := r.got(); !slices.Equal(names, []string{"early", "early"}) {
			t.Fatalf("fired %v, want early twice", names)
		}
		late.Stop()
	})
}

// A callback may re-arm its own deadline (a socket's clock does on every tick).
func TestDeadlinesCallbackRearms(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		ds := NewDeadlines(2)
		var d Deadline
		var mu sync.Mutex
		ticks := 0
		ds.Init(&d, func() {
			mu.Lock()
			ticks++
			n := ticks
			mu.Unlock()
			if n < 5 {
				d.Reset(time.Now().Add(10 * time.Second))
			}
		})
		d.Reset(time.Now().Add(10 * time.Second))
		time.Sleep(time.Hour)
		synctest.Wait()
		mu.Lock()
		defer mu.Unlock()
		if ticks != 5 {
			t.Fatalf("ticked %d times, want 5", ticks)
		}
	})
}

// Many deadlines over several shards all fire once, at their own times.
func TestDeadlinesManyShards(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		ds := NewDeadlines(4)
		start := time.Now()
		const n = 1000
		dls := make([]Deadline, n)
		var mu sync.Mutex
		late := 0
		count := make([]int, n)
		for i := range dls {
			due := start.Add(time.Duration(i%97+1) * time.Millisecond)
			ds.Init(&dls[i], func() {
				mu.Lock()
				defer mu.Unlock()
				count[i]++
				if !time.Now().Equal(due) {
					late++
				}
			})
			dls[i].Reset(due)
		}
		time.Sleep(time.Second)
		synctest.Wait()
		mu.Lock()
		defer mu.Unlock()
		for i, c := range count {
			if c != 1 {
				t.Fatalf("deadline %d fired %d times, want 1", i, c)
			}
		}
		if late != 0 {
			t.Fatalf("%d deadlines fired at another time than their own", late)
		}
	})
}
