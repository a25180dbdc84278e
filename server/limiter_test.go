package server

import (
	"testing"
	"time"
)

// TestLimiterBurstThenRate: a new socket's bucket is full (40 frames at once) and refills at 20
// a second; more than 200 drops within 10 s is abuse, and the count starts again after the
// window; at most one warning a second.
func TestLimiterBurstThenRate(t *testing.T) {
	cfg := &Config{RateLimit: 20, RateBurst: 40, AbuseDrops: 200, AbuseWindow: 10 * time.Second}
	var l limiter
	l.start(cfg)
	t0 := time.Date(2026, 12, 2, 3, 0, 0, 0, time.UTC)
	take := func(n int, at time.Time) (allowed int) {
		for range n {
			if l.allow(cfg, at) {
				allowed++
			}
		}
		return allowed
	}
	if got := take(60, t0); got != 40 {
		t.Fatalf("allowed %d of 60 at once, want the burst of 40", got)
	}
	if !l.shouldWarn() || l.shouldWarn() {
		t.Fatal("want exactly one warning in the first second")
	}
	if got := take(30, t0.Add(time.Second)); got != 20 {
		t.Fatalf("a second later allowed %d of 30, want 20", got)
	}
	if !l.shouldWarn() {
		t.Fatal("a second after the first warning, want another")
	}
	take(170, t0.Add(time.Second)) // 20 + 10 + 170 = 200 drops within the window
	if l.drops != 200 || l.abusive(cfg) {
		t.Fatalf("drops %d, abusive %v: want 200 and not yet abusive", l.drops, l.abusive(cfg))
	}
	take(1, t0.Add(time.Second))
	if !l.abusive(cfg) {
		t.Fatal("201 drops within 10 s: want abusive")
	}
	if got := take(41, t0.Add(11*time.Second)); got != 40 || l.drops != 1 || l.abusive(cfg) {
		t.Fatalf("after the window: allowed %d, drops %d, abusive %v; want 40, 1, false", got, l.drops, l.abusive(cfg))
	}
}
