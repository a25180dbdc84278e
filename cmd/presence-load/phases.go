package main

import (
	"context"
	"fmt"
	"math/rand/v2"
	"time"

	"github.com/gobwas/ws"

	"github.com/presenced/presenced/wire"
)

// ConnectResult is one connect (or storm reconnect) wave of a shard.
type ConnectResult struct {
	Attempts int            `json:"attempts"`
	OK       int            `json:"ok"`
	DialErrs int            `json:"dial_errors"`
	Failed   int            `json:"failed"`
	Skipped  int            `json:"skipped,omitempty"` // not attempted: the run was cancelled
	Reasons  map[string]int `json:"reasons,omitempty"`
	Seconds  float64        `json:"seconds"`
}

func (r *ConnectResult) merge(o *ConnectResult) {
	if o == nil {
		return
	}
	r.Attempts += o.Attempts
	r.OK += o.OK
	r.DialErrs += o.DialErrs
	r.Failed += o.Failed
	r.Skipped += o.Skipped
	if r.Reasons == nil {
		r.Reasons = map[string]int{}
	}
	for k, v := range o.Reasons {
		r.Reasons[k] += v
	}
	r.Seconds = max(r.Seconds, o.Seconds)
}

// senders are the shard's clients that send statuses, in a fixed pseudo-random order so the
// changes of one burst are spread over users rather than walking the numbering.
func (sh *shard) senders() []*client {
	var out []*client
	for _, c := range sh.clients {
		if c.sender {
			out = append(out, c)
		}
	}
	rng := rand.New(rand.NewPCG(sh.cfg.Seed, 7))
	rng.Shuffle(len(out), func(i, j int) { out[i], out[j] = out[j], out[i] })
	return out
}

// statusPhase sends rate status changes per second from start for dur, round robin over the
// senders. The coordinator caps rate at senders/period, so a full round takes at least one period
// and the server's debounce never merges two changes of one user; a sender whose last change is
// younger than the period is waited for all the same, in case the ticker fell behind.
func (sh *shard) statusPhase(ctx context.Context, start time.Time, dur time.Duration, rate float64) error {
	sh.phase.Store(phStatus)
	ss := sh.senders()
	if len(ss) == 0 || rate <= 0 || dur <= 0 {
		return nil
	}
	if !sleepUntil(ctx, start) {
		return ctx.Err()
	}
	end := start.Add(dur)
	tick := time.NewTicker(10 * time.Millisecond)
	defer tick.Stop()
	buf := make([]byte, 0, 64)
	sent, next := 0, 0
	for {
		select {
		case <-ctx.Done():
			return ctx.Err()
		case <-tick.C:
		}
		now := time.Now()
		if !now.Before(end) {
			return nil
		}
		due := int(rate*now.Sub(start).Seconds()) - sent
		for ; due > 0; due-- {
			c := ss[next%len(ss)]
			if now.Sub(c.lastSent) < sh.cfg.Period {
				break
			}
			next++
			sent++
			buf = sh.sendStatus(c, buf)
		}
	}
}

// sendStatus sends c's next change: the activity flips between Coding and Debugging and the
// project carries the send time, so every change reaches followers as one u frame with p.
func (sh *shard) sendStatus(c *client, buf []byte) []byte {
	c.mu.Lock()
	s, live := c.sess, c.live
	c.mu.Unlock()
	if !live {
		sh.stats.skipped.Add(1) // its end was counted already (connect failure or unexpected close)
		return buf
	}
	act := wire.Coding
	if c.act == wire.Coding {
		act = wire.Debugging
	}
	now := time.Now()
	p := stamp(now)
	buf = wire.Append(buf[:0], wire.Status{Has: wire.FieldActivity | wire.FieldProject, Activity: act, Project: p})
	if err := s.write(ws.OpText, buf); err != nil {
		sh.stats.sendErrs.Add(1)
		sh.stats.note(nil, "", fmt.Sprintf("%s: send status: %v", sh.g.Names[c.user], err))
		return buf
	}
	c.act, c.project, c.lastSent = act, p, now
	sh.stats.sent.Add(1)
	sh.stats.expected.Add(int64(sh.fanout[c.user]))
	return buf
}

// StormResult is one shard's storm.
type StormResult struct {
	Dropped   int            `json:"dropped"`
	Observers int            `json:"observers"`
	Reconnect *ConnectResult `json:"reconnect"`
}

// storm drops every connected non-observer without a close frame, then reconnects them with
// their resume tokens spread evenly over window from start.
func (sh *shard) storm(ctx context.Context, start time.Time, window time.Duration) *StormResult {
	sh.phase.Store(phStorm)
	res := &StormResult{}
	var cs []*client
	for _, c := range sh.clients {
		c.mu.Lock()
		s, live := c.sess, c.live
		c.mu.Unlock()
		switch {
		case !live:
		case c.observer:
			res.Observers++
		default:
			s.drop()
			cs = append(cs, c)
		}
	}
	res.Dropped = len(cs)
	res.Reconnect = sh.openMany(ctx, cs, true, start, window)
	return res
}

// Truth is what followers should see of one user once everything has settled.
type Truth struct {
	User    int32         `json:"u"`
	Online  bool          `json:"on,omitempty"`
	Act     wire.Activity `json:"a,omitempty"`
	Project string        `json:"p,omitempty"`
	Active  int64         `json:"t,omitempty"` // unix ns of the last activity: the away clock
	Unknown bool          `json:"x,omitempty"` // a window of the user was lost: do not check
	Sender  bool          `json:"s,omitempty"` // the entry carries the sender's state
}

// truth reports the shard's part of the truth: its users with a live window, its senders' last
// changes, and users whose window did not come back.
func (sh *shard) truth() []Truth {
	m := map[int32]*Truth{}
	for _, c := range sh.clients {
		t := m[c.user]
		if t == nil {
			t = &Truth{User: c.user}
			m[c.user] = t
		}
		c.mu.Lock()
		t.Online = t.Online || c.live
		t.Unknown = t.Unknown || c.lost
		onlineAt := c.onlineAt
		c.mu.Unlock()
		if c.sender {
			t.Sender = true
			t.Act, t.Project = c.act, c.project
			switch {
			case !c.lastSent.IsZero():
				t.Active = c.lastSent.UnixNano()
			case !onlineAt.IsZero():
				t.Active = onlineAt.UnixNano()
			}
		}
	}
	out := make([]Truth, 0, len(m))
	for _, t := range m {
		out = append(out, *t)
	}
	return out
}

// mergeTruth joins the shards' parts into one entry per user.
func mergeTruth(n int, parts [][]Truth) []Truth {
	all := make([]Truth, n)
	for u := range all {
		all[u].User = int32(u)
	}
	for _, p := range parts {
		for _, t := range p {
			if t.User < 0 || int(t.User) >= n {
				continue
			}
			a := &all[t.User]
			a.Online = a.Online || t.Online
			a.Unknown = a.Unknown || t.Unknown
			if t.Sender {
				a.Sender, a.Act, a.Project, a.Active = true, t.Act, t.Project, t.Active
			}
		}
	}
	return all
}

// CheckResult is the convergence check of one shard.
type CheckResult struct {
	Clients    int     `json:"clients_checked"`
	Mismatches int     `json:"mismatches"`
	Seconds    float64 `json:"seconds"`
}

// check polls until every live client's view of each followed user equals truth, or the
// deadline passes; the mismatches left then are reported (the first few verbatim).
func (sh *shard) check(ctx context.Context, truth []Truth, wait time.Duration) *CheckResult {
	t0 := time.Now()
	deadline := t0.Add(wait)
	for {
		res, samples := sh.compare(truth, time.Now())
		if res.Mismatches == 0 || !time.Now().Before(deadline) || ctx.Err() != nil {
			for _, s := range samples {
				sh.stats.note(nil, "", s)
			}
			res.Seconds = time.Since(t0).Seconds()
			return res
		}
		sleepUntil(ctx, time.Now().Add(100*time.Millisecond))
	}
}

func (sh *shard) compare(truth []Truth, now time.Time) (*CheckResult, []string) {
	res := &CheckResult{}
	var samples []string
	for _, c := range sh.clients {
		c.mu.Lock()
		if !c.live {
			c.mu.Unlock()
			continue
		}
		res.Clients++
		fs := sh.g.Follows[c.user]
		bad := len(c.view) != len(fs)
		for _, f := range fs {
			p, ok := c.view[sh.g.Names[f]]
			if !ok || !sh.matches(p, truth[f], now) {
				bad = true
				if len(samples) < 4 {
					samples = append(samples, fmt.Sprintf("mismatch: %s sees %s as %+v, want %+v", sh.g.Names[c.user], sh.g.Names[f], p, truth[f]))
				}
			}
		}
		c.mu.Unlock()
		if bad {
			res.Mismatches++
		}
	}
	return res, samples
}

// matches compares a follower's view of a user with the truth. A user quiet for about the away
// delay may be seen Away instead of Online.
func (sh *shard) matches(p wire.Presence, t Truth, now time.Time) bool {
	if t.Unknown {
		return true
	}
	if !t.Online {
		return p.State == wire.StateOffline
	}
	switch p.State {
	case wire.StateOnline:
	case wire.StateAway:
		if t.Active != 0 && now.Sub(time.Unix(0, t.Active)) < sh.cfg.AwayAfter-2*time.Second {
			return false
		}
	default:
		return false
	}
	return p.Activity == t.Act && p.Project == t.Project && p.Language == ""
}

// closeAll ends every connection (with bye when asked, so the server frees the windows at once
// instead of keeping them for the resume window) and waits for the readers.
func (sh *shard) closeAll() {
	sh.phase.Store(phEnd)
	sh.closing.Store(true)
	bye := wire.Encode(wire.Bye{})
	for _, c := range sh.clients {
		c.mu.Lock()
		s, live := c.sess, c.live
		c.mu.Unlock()
		if s == nil {
			continue
		}
		if live && sh.cfg.Bye {
			_ = s.write(ws.OpText, bye)
		}
		s.drop()
	}
	sh.readers.Wait()
}
