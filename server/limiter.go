package server

import (
	"time"

	"golang.org/x/time/rate"
)

// limiter is one socket's flood guard, owned by its reader goroutine. It adds golang.org/x/time
// rate's token bucket (no hand-written bucket) to an abuse counter over a fixed window. It lives
// inside conn (the zero value is set up by start at the hello): as two objects of their own
// they took 192 bytes a socket; inside conn they add 104 to it.
type limiter struct {
	bucket     rate.Limiter
	winStart   int64 // unix ns: the abuse window's start
	lastWarned int64 // unix ns: the last rate_limited error frame
	now        int64 // unix ns: the frame being judged
	drops      int
}

// start sets the bucket up as rate.NewLimiter would: cfg.RateLimit frames a second, bursts of
// cfg.RateBurst. Set at the zero time, as NewLimiter leaves it, the first frame finds it full.
func (l *limiter) start(cfg *Config) {
	l.bucket.SetLimitAt(time.Time{}, rate.Limit(cfg.RateLimit))
	l.bucket.SetBurstAt(time.Time{}, cfg.RateBurst)
}

// allow takes one frame; false means drop it.
func (l *limiter) allow(cfg *Config, now time.Time) bool {
	l.now = now.UnixNano()
	if l.bucket.AllowN(now, 1) {
		return true
	}
	if l.now-l.winStart > int64(cfg.AbuseWindow) {
		l.winStart, l.drops = l.now, 0
	}
	l.drops++
	return false
}

// abusive: more than cfg.AbuseDrops dropped within the window.
func (l *limiter) abusive(cfg *Config) bool { return l.drops > cfg.AbuseDrops }

// shouldWarn allows one rate_limited error frame per second.
func (l *limiter) shouldWarn() bool {
	if l.now-l.lastWarned < int64(time.Second) {
		return false
	}
	l.lastWarned = l.now
	return true
}
