package server

import (
	"time"

	"golang.org/x/time/rate"
)

// limiter is one socket's flood guard, owned by its reader goroutine. It adds golang.org/x/time
// rate's token bucket (no hand-written bucket) to an abuse counter over a fixed window.
type limiter struct {
	bucket     *rate.Limiter
	maxDrops   int
	window     time.Duration
	winStart   time.Time
	drops      int
	lastWarned time.Time
	now        time.Time
}

func newLimiter(cfg *Config) *limiter {
	return &limiter{bucket: rate.NewLimiter(rate.Limit(cfg.RateLimit), cfg.RateBurst), maxDrops: cfg.AbuseDrops, window: cfg.AbuseWindow}
}

// allow takes one frame; false means drop it.
func (l *limiter) allow(now time.Time) bool {
	l.now = now
	if l.bucket.AllowN(now, 1) {
		return true
	}
	if now.Sub(l.winStart) > l.window {
		l.winStart, l.drops = now, 0
	}
	l.drops++
	return false
}

// abusive: more than maxDrops dropped within the window.
func (l *limiter) abusive() bool { return l.drops > l.maxDrops }

// shouldWarn allows one rate_limited error frame per second.
func (l *limiter) shouldWarn() bool {
	if l.now.Sub(l.lastWarned) < time.Second {
		return false
	}
	l.lastWarned = l.now
	return true
}
