package main

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"math"
	"net"
	"strconv"
	"sync"
	"sync/atomic"
	"time"

	"github.com/gobwas/ws"
	"github.com/gobwas/ws/wsutil"

	"github.com/presenced/presenced/wire"
)

// A shard is the clients one process owns: all of them with --procs 1, a contiguous slice of the
// client numbers in each worker otherwise. The coordinator drives it phase by phase (see
// command), in process or over a worker's stdin and stdout.
type shard struct {
	cfg     *Config
	g       *Graph
	clients []*client
	fanout  []int // fanout[u]: follower windows of u, the deliveries one change of u should make

	phase      atomic.Int32
	steadyFrom atomic.Int64 // unix ns: deliveries inside [from, to) count for deliveries/s
	steadyTo   atomic.Int64
	closing    atomic.Bool
	readers    sync.WaitGroup
	stats      stats
}

// Phases, for counting frames by when they arrived.
const (
	phConnect = iota // connect, settle, idle hold
	phStatus         // status changes and their drain
	phStorm          // from the drop until the storm's tail
	phEnd
	numPhases
)

var phaseNames = [numPhases]string{"connect", "status", "storm", "end"}

// client is one editor window: user u{idx mod N}, window id w{idx}.
type client struct {
	idx      int
	user     int32
	window   string
	sender   bool // the first client of its user: the only one that sends statuses
	observer bool // stays connected through the storm

	mu    sync.Mutex // guards the fields below
	sess  *session
	live  bool // sess has received its sync
	token string
	view  map[string]wire.Presence // --check only
	lost  bool                     // did not come back in the storm: its user's truth is unknown
	// onlineAt is the first sync: coming online starts the server's away clock (a resume does not).
	onlineAt time.Time

	// Written by the status sender only, read after the status phase.
	act      wire.Activity
	project  string
	lastSent time.Time
}

// stats are the shard's counters, shared by all reader goroutines (atomics: the readers never
// take a lock on the fast path).
type stats struct {
	frames     [numPhases][numKinds]atomic.Int64
	steady     atomic.Int64
	latency    Hist // send to receipt less the debounce: receive − send − debounce
	flush      Hist // flush to receipt: receive − the frame's "ft" (a server run with --stamp-flush)
	connect    Hist // dial to sync
	reconnect  Hist // storm: hello to sync
	negative   atomic.Int64
	binary     atomic.Int64
	pings      atomic.Int64
	sent       atomic.Int64
	sendErrs   atomic.Int64
	skipped    atomic.Int64
	expected   atomic.Int64
	violations atomic.Int64
	decodeErrs atomic.Int64

	mu         sync.Mutex
	unexpected map[string]int // connections that ended without us ending them, by reason
	errFrames  map[string]int // error frames after welcome, by code
	samples    []string       // the first few problems, verbatim
}

const maxSamples = 8

func (st *stats) note(m map[string]int, key string, sample string) {
	st.mu.Lock()
	defer st.mu.Unlock()
	if m != nil {
		m[key]++
	}
	if sample != "" && len(st.samples) < maxSamples {
		st.samples = append(st.samples, sample)
	}
}

func newShard(cfg *Config, g *Graph, lo, hi int) *shard {
	n := len(g.Names)
	sh := &shard{cfg: cfg, g: g, fanout: make([]int, n)}
	sh.stats.unexpected = map[string]int{}
	sh.stats.errFrames = map[string]int{}
	for f, fs := range g.Follows {
		windows := cfg.Clients / n // how many clients are user f, over the whole run
		if f < cfg.Clients%n {
			windows++
		}
		for _, v := range fs {
			sh.fanout[v] += windows
		}
	}
	// Client i observes when floor((i+1)·f) > floor(i·f): exactly a fraction f, spread evenly.
	f := cfg.Observers
	observer := func(i int) bool { return math.Floor(float64(i+1)*f) > math.Floor(float64(i)*f) }
	for i := lo; i < hi; i++ {
		c := &client{idx: i, user: int32(i % n), window: "w" + strconv.Itoa(i), sender: i < n,
			observer: observer(i), act: wire.Idle}
		if cfg.Check {
			c.view = map[string]wire.Presence{}
		}
		sh.clients = append(sh.clients, c)
	}
	return sh
}

// source spreads the local addresses over 127.0.0.1..127.0.0.{sources}: the kernel gives each
// address its own ~28k ephemeral ports.
func (sh *shard) source(i int) net.Addr {
	if sh.cfg.Sources <= 0 {
		return nil
	}
	return &net.TCPAddr{IP: net.IPv4(127, 0, 0, byte(1+i%sh.cfg.Sources))}
}

// outcome is how one hello ended.
type outcome struct {
	err     error
	dialErr bool
	resumed bool
}

// open connects c and says hello (resuming with its token when resume is set), then reads until
// the connection ends. done is called exactly once, when the sync arrives or the attempt failed;
// it runs on the reader's goroutine, so it must not block for long.
func (sh *shard) open(ctx context.Context, c *client, resume bool, done func(outcome)) {
	s, err := sh.dial(ctx, c)
	if err != nil {
		done(outcome{err: err, dialErr: true})
		return
	}
	c.mu.Lock()
	h := wire.Hello{Token: sh.cfg.TokenPrefix + sh.g.Names[c.user], Window: c.window}
	if resume {
		h.Resume = c.token
	}
	c.sess, c.live = s, false
	c.mu.Unlock()
	s.helloCB = func(err error, resumed bool) { done(outcome{err: err, resumed: resumed}) }
	s.helloAt = time.Now()
	err = s.nc.SetReadDeadline(s.helloAt.Add(sh.cfg.HelloTimeout))
	if err == nil {
		err = s.write(ws.OpText, wire.Encode(h))
	}
	if err == nil {
		err = s.readLoop(sh)
	}
	_ = s.nc.Close() // a read error or timeout leaves the socket open otherwise
	c.mu.Lock()
	if c.sess == s {
		c.live = false
	}
	c.mu.Unlock()
	if s.helloCB != nil {
		if s.refusal != "" {
			err = fmt.Errorf("%w: %s, %s", errHello, s.refusal, endReason(err))
		} else {
			err = fmt.Errorf("before sync: %s: %w", endReason(err), err)
		}
		s.finishHello(err, false)
		return
	}
	if !s.dropped.Load() && !sh.closing.Load() {
		r := endReason(err)
		sh.stats.note(sh.stats.unexpected, r, fmt.Sprintf("%s: connection ended: %v", h.Token, err))
	}
}

var errHello = errors.New("hello refused")

// onText handles one text frame; it runs on the session's reader goroutine.
func (sh *shard) onText(s *session, p []byte, now time.Time) {
	k := frameKind(p)
	ph := sh.phase.Load()
	sh.stats.frames[ph][k].Add(1)
	c := s.c
	if sh.cfg.Check {
		sh.checkFrame(s, p)
	}
	switch s.state {
	case awaitWelcome:
		switch k {
		case kWelcome:
			c.mu.Lock()
			c.token = string(stringField(p, keyResume))
			c.mu.Unlock()
			s.state = awaitSync
			s.resumed = bytes.Contains(p, keyResumed)
		case kError:
			// The close follows; the hello fails when it arrives, naming both.
			s.refusal = "error " + string(stringField(p, keyCode))
		}
		return
	case awaitSync:
		if k != kSync {
			return
		}
		s.state = ready
		_ = s.nc.SetReadDeadline(time.Time{})
		c.mu.Lock()
		if c.sess == s {
			c.live = true
		}
		if c.onlineAt.IsZero() {
			c.onlineAt = now
		}
		c.mu.Unlock()
		if ph == phStorm {
			sh.stats.reconnect.Add(now.Sub(s.helloAt))
		} else {
			sh.stats.connect.Add(now.Sub(s.dialAt))
		}
		s.finishHello(nil, s.resumed)
		return
	}
	switch k {
	case kU, kO, kX:
		if ns := now.UnixNano(); ph == phStatus && ns >= sh.steadyFrom.Load() && ns < sh.steadyTo.Load() {
			sh.stats.steady.Add(1)
		}
		// Only this run's status phase: an o frame at connect may carry a stamp of an earlier run.
		if k != kX && ph == phStatus {
			if ts, ok := parseStamp(stringField(p, keyP)); ok {
				d := now.Sub(ts) - sh.cfg.Debounce
				if d < 0 {
					sh.stats.negative.Add(1)
				}
				sh.stats.latency.Add(d)
			}
			if ft, ok := flushTime(p); ok {
				sh.stats.flush.Add(now.Sub(ft))
			}
		}
		if ph == phStorm && k != kU {
			sh.stats.note(nil, "", fmt.Sprintf("storm: %s got %s", sh.g.Names[c.user], p))
		}
	case kError:
		code := string(stringField(p, keyCode))
		sh.stats.note(sh.stats.errFrames, code, fmt.Sprintf("%s: error frame %s", sh.g.Names[c.user], p))
	}
}

func (s *session) finishHello(err error, resumed bool) {
	if s.helloCB != nil {
		s.helloCB(err, resumed)
		s.helloCB = nil
	}
}

// checkFrame is --check: the full decode, the isolation check and the merge into the view.
func (sh *shard) checkFrame(s *session, p []byte) {
	c := s.c
	f, err := wire.DecodeServer(p)
	if err != nil {
		sh.stats.decodeErrs.Add(1)
		sh.stats.note(nil, "", fmt.Sprintf("%s: undecodable frame %q: %v", sh.g.Names[c.user], p, err))
		return
	}
	var about []string
	switch f := f.(type) {
	case wire.Update:
		about = []string{f.ID}
	case wire.Online:
		about = []string{f.ID}
	case wire.Offline:
		about = []string{f.ID}
	case wire.Sync:
		if len(f.Users) != len(sh.g.Follows[c.user]) {
			sh.stats.violations.Add(1)
			sh.stats.note(nil, "", fmt.Sprintf("%s: sync lists %d users, follows %d", sh.g.Names[c.user], len(f.Users), len(sh.g.Follows[c.user])))
		}
		for _, u := range f.Users {
			about = append(about, u.Username)
		}
	default:
		return
	}
	for _, id := range about {
		v, ok := sh.g.ID(id)
		if !ok || !sh.g.FollowsUser(c.user, v) {
			sh.stats.violations.Add(1)
			sh.stats.note(nil, "", fmt.Sprintf("isolation: %s (follows %d users) got a frame about %s: %s", sh.g.Names[c.user], len(sh.g.Follows[c.user]), id, p))
		}
	}
	c.mu.Lock()
	if c.sess == s {
		wire.Apply(c.view, f)
	}
	c.mu.Unlock()
}

// connectAll opens every client with at most --dial-concurrency hellos in flight and returns
// once each has its sync or has failed.
func (sh *shard) connectAll(ctx context.Context) *ConnectResult {
	sh.phase.Store(phConnect)
	return sh.openMany(ctx, sh.clients, false, time.Time{}, 0)
}

// openMany opens the clients, the k-th of them not before start + k·spread/len (spread 0: as
// fast as the concurrency allows).
func (sh *shard) openMany(ctx context.Context, cs []*client, resume bool, start time.Time, spread time.Duration) *ConnectResult {
	res := &ConnectResult{Attempts: len(cs), Reasons: map[string]int{}}
	var mu sync.Mutex
	var wg sync.WaitGroup
	sem := make(chan struct{}, sh.cfg.DialConcurrency)
	t0 := time.Now()
	for k, c := range cs {
		if spread > 0 {
			at := start.Add(time.Duration(int64(spread) * int64(k) / int64(len(cs))))
			if !sleepUntil(ctx, at) {
				res.Skipped = len(cs) - k
				break
			}
		}
		select {
		case sem <- struct{}{}:
		case <-ctx.Done():
			res.Skipped = len(cs) - k
		}
		if res.Skipped > 0 {
			break
		}
		wg.Add(1)
		sh.readers.Add(1)
		go func() {
			defer sh.readers.Done()
			sh.open(ctx, c, resume, func(o outcome) {
				<-sem
				mu.Lock()
				defer mu.Unlock()
				switch {
				case o.err == nil && (o.resumed || !resume):
					res.OK++
				case o.err == nil:
					res.Failed++
					res.Reasons["welcome resumed:false"]++
				case o.dialErr:
					res.DialErrs++
					res.Reasons["dial: "+shortErr(o.err)]++
				default:
					res.Failed++
					res.Reasons[shortErr(o.err)]++
				}
				if o.err != nil || (resume && !o.resumed) {
					c.mu.Lock()
					c.lost = true
					c.mu.Unlock()
					why := "welcome with resumed:false"
					if o.err != nil {
						why = o.err.Error()
					}
					sh.stats.note(nil, "", fmt.Sprintf("%s (%s): %s", sh.g.Names[c.user], c.window, why))
				}
				wg.Done()
			})
		}()
	}
	wg.Wait()
	res.Seconds = time.Since(t0).Seconds()
	return res
}

// shortErr keeps error tables small: the close code or "timeout" (as endReason names them), the
// refusal, or the end of any other error.
func shortErr(err error) string {
	var ce wsutil.ClosedError
	var ne net.Error
	switch {
	case errors.As(err, &ce), errors.As(err, &ne) && ne.Timeout():
		return endReason(err)
	case errors.Is(err, errHello):
		return err.Error()
	}
	msg := err.Error()
	if len(msg) > 60 {
		msg = "…" + msg[len(msg)-59:]
	}
	return msg
}

// sleepUntil waits for t or ctx, reporting whether t came.
func sleepUntil(ctx context.Context, t time.Time) bool {
	d := time.Until(t)
	if d <= 0 {
		return ctx.Err() == nil
	}
	tm := time.NewTimer(d)
	defer tm.Stop()
	select {
	case <-tm.C:
		return true
	case <-ctx.Done():
		return false
	}
}
