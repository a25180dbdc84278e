package main

import (
	"context"
	"errors"
	"fmt"
	"io"
	"slices"
	"sync"
	"time"

	"github.com/presenced/presenced/server"
)

// Run is one load run: connect, settle, idle hold, status phase, storm, check, report. Progress
// goes to log; the report is returned even when a phase failed, with what was measured so far.
// Every phase has a deadline and the whole run is bounded by cfg.Timeout.
func Run(ctx context.Context, cfg *Config, log io.Writer) (*Report, error) {
	g, err := loadGraph(cfg.GraphFile, cfg.GraphParams)
	if err != nil {
		return nil, err
	}
	if cfg.GraphFile != "" {
		cfg.Users = len(g.Names)
	}
	if err := cfg.finish(); err != nil {
		return nil, err
	}
	limit, err := server.RaiseOpenFiles() // already raised by the command; the value is what matters here
	if err != nil {
		fmt.Fprintln(log, "warning:", err)
	}
	perProc := (cfg.Clients + cfg.Procs - 1) / cfg.Procs
	if limit > 0 && uint64(perProc)+64 > limit {
		hint := ""
		if limit > 128 {
			hint = fmt.Sprintf(": use --procs %d or more", (cfg.Clients+int(limit)-65)/(int(limit)-64))
		}
		return nil, fmt.Errorf("%d clients per process exceed the open-file limit %d%s", perProc, limit, hint)
	}
	ctx, cancel := context.WithTimeout(ctx, cfg.Timeout)
	defer cancel()
	logf := func(f string, a ...any) {
		fmt.Fprintf(log, "%s "+f+"\n", append([]any{time.Now().Format("15:04:05.000")}, a...)...)
	}

	rep := &Report{Users: len(g.Names), Clients: cfg.Clients, Procs: cfg.Procs, Unexpected: map[string]int{}, ErrorFrames: map[string]int{}}
	edges := 0
	for _, fs := range g.Follows {
		edges += len(fs)
	}
	rep.Follows = edges / len(g.Names)
	rss := func() int64 {
		if cfg.PID <= 0 {
			return 0
		}
		n, err := rssKiB(cfg.PID)
		if err != nil {
			logf("warning: %v", err)
		}
		return n
	}
	rep.RSS.BeforeKiB = rss()

	shards, los, err := startShards(ctx, cfg, g)
	if err != nil {
		return nil, err
	}
	closed := false
	closeAll := func() {
		if closed {
			return
		}
		closed = true
		cctx, ccancel := context.WithTimeout(context.Background(), 30*time.Second)
		defer ccancel()
		_, _ = all(cctx, shards, func(int) command { return command{Op: "close"} })
		for _, s := range shards {
			if err := s.stop(); err != nil {
				logf("warning: %v", err)
			}
		}
	}
	defer closeAll()

	err = phases(ctx, cfg, g, shards, los, rep, rss, logf)
	if err != nil {
		rep.Errors = append(rep.Errors, err.Error())
	}
	// The counters are read even after a failed phase: they say how far it got.
	rctx, rcancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer rcancel()
	replies, rerr := all(rctx, shards, func(int) command { return command{Op: "report"} })
	logf("closing the connections")
	closeAll()
	logf("closed")
	finishReport(rep, replies) // a shard that did not reply adds nothing
	if rerr != nil {
		rep.Errors = append(rep.Errors, "report: "+rerr.Error())
		err = errors.Join(err, rerr)
	}
	rep.judge()
	return rep, err
}

var errNoClient = errors.New("no client connected")

// startShards makes the in-process shard or starts the workers; los[i] is shard i's first client.
func startShards(ctx context.Context, cfg *Config, g *Graph) ([]shardAPI, []int, error) {
	var los []int
	for i := range cfg.Procs + 1 {
		los = append(los, cfg.Clients*i/cfg.Procs)
	}
	if cfg.Procs == 1 {
		return []shardAPI{localShard{newShard(cfg, g, 0, cfg.Clients)}}, los, nil
	}
	shards := make([]shardAPI, cfg.Procs)
	errs := make([]error, cfg.Procs)
	var wg sync.WaitGroup
	for i := range cfg.Procs {
		wg.Go(func() {
			var r *remoteShard
			r, errs[i] = startWorker(ctx, cfg.Exe, cfg, i, cfg.Procs, los[i], los[i+1])
			if r != nil {
				shards[i] = r
			}
		})
	}
	wg.Wait()
	if err := errors.Join(errs...); err != nil {
		for _, s := range shards {
			if s != nil {
				_ = s.stop()
			}
		}
		return nil, nil, err
	}
	return shards, los, nil
}

// all runs one command on every shard at once and waits for every reply.
func all(ctx context.Context, shards []shardAPI, mk func(i int) command) ([]reply, error) {
	out := make([]reply, len(shards))
	errs := make([]error, len(shards))
	var wg sync.WaitGroup
	for i, s := range shards {
		wg.Go(func() { out[i], errs[i] = s.do(ctx, mk(i)) })
	}
	wg.Wait()
	return out, errors.Join(errs...)
}

// quiet waits at least minWait, then until no frame arrived anywhere for 300ms (at most bound):
// the debounced o frames of the connect wave, or the last deliveries of a phase, must not be
// counted in the next phase.
func quiet(ctx context.Context, shards []shardAPI, minWait, bound time.Duration) (bool, error) {
	deadline := time.Now().Add(minWait + bound)
	if !sleepUntil(ctx, time.Now().Add(minWait)) {
		return false, ctx.Err()
	}
	last := int64(-1)
	for {
		rs, err := all(ctx, shards, func(int) command { return command{Op: "count"} })
		if err != nil {
			return false, err
		}
		var n int64
		for _, r := range rs {
			n += r.Frames
		}
		if n == last {
			return true, nil
		}
		last = n
		if !time.Now().Before(deadline) {
			return false, nil
		}
		if !sleepUntil(ctx, time.Now().Add(300*time.Millisecond)) {
			return false, ctx.Err()
		}
	}
}

func phases(ctx context.Context, cfg *Config, g *Graph, shards []shardAPI, los []int, rep *Report,
	rss func() int64, logf func(string, ...any)) error {
	logf("connecting %d clients (%d users) in %d process(es), %d hellos in flight each", cfg.Clients, len(g.Names), cfg.Procs, cfg.DialConcurrency)
	t0 := time.Now()
	rs, err := all(ctx, shards, func(int) command { return command{Op: "connect"} })
	rep.ConnectSecs = time.Since(t0).Seconds()
	for _, r := range rs {
		rep.Connect.merge(r.Connect)
	}
	rep.Connected, rep.ConnectErrs, rep.HelloErrs = rep.Connect.OK, rep.Connect.DialErrs, rep.Connect.Failed+rep.Connect.Skipped
	logf("connected %d/%d in %.2fs (%d connect errors, %d hello errors)", rep.Connected, cfg.Clients, rep.ConnectSecs, rep.ConnectErrs, rep.HelloErrs)
	if err != nil {
		return fmt.Errorf("connect: %w", err)
	}
	if rep.Connected == 0 {
		return errNoClient
	}
	if ok, err := quiet(ctx, shards, cfg.Period, 30*time.Second); err != nil {
		return fmt.Errorf("settle: %w", err)
	} else if !ok {
		logf("warning: frames still arriving 30s after connecting")
	}

	if err := idleHold(ctx, cfg, rep, rss, logf); err != nil {
		return err
	}
	if cfg.Rate > 0 && cfg.Duration > 0 {
		cpu0, cpuErr := cpuSeconds(cfg.PID)
		if err := statusRun(ctx, cfg, g, shards, los, rep, logf); err != nil {
			return err
		}
		if cpu1, err := cpuSeconds(cfg.PID); cfg.PID > 0 && cpuErr == nil && err == nil {
			rep.Status.ServerCPU = cpu1 - cpu0
		}
	}
	if cfg.Storm {
		if err := stormRun(ctx, cfg, shards, rep, logf); err != nil {
			return err
		}
	}
	if cfg.Check {
		if err := checkRun(ctx, cfg, g, shards, rep, logf); err != nil {
			return err
		}
	}
	rep.RSS.EndKiB = rss()
	return nil
}

// idleHold samples the server's RSS over the idle hold (five samples over --idle; three over
// 600 ms with only --pid) and reports their median, the memory per connection and the server's
// CPU per second meanwhile.
func idleHold(ctx context.Context, cfg *Config, rep *Report, rss func() int64, logf func(string, ...any)) error {
	if cfg.PID <= 0 && cfg.Idle <= 0 {
		return nil
	}
	n, gap := 3, 200*time.Millisecond
	if cfg.Idle > 0 {
		n, gap = 5, cfg.Idle/5
		logf("idle for %v", cfg.Idle)
	}
	cpu0, cpuErr := cpuSeconds(cfg.PID)
	start := time.Now()
	for range n {
		if !sleepUntil(ctx, time.Now().Add(gap)) {
			return ctx.Err()
		}
		if v := rss(); v > 0 {
			rep.RSS.Samples = append(rep.RSS.Samples, v)
		}
	}
	// Over the hold only: the status phase's CPU is what NetCPUPerChangeUs takes this out of.
	if cpu1, err := cpuSeconds(cfg.PID); cfg.PID > 0 && cpuErr == nil && err == nil {
		rep.Status.IdleCPUPerSec = (cpu1 - cpu0) / time.Since(start).Seconds()
	}
	if len(rep.RSS.Samples) > 0 {
		s := slices.Sorted(slices.Values(rep.RSS.Samples))
		rep.RSS.IdleKiB = s[len(s)/2]
		// phases returned errNoClient before the hold when nobody connected.
		rep.RSS.PerConnKiB = float64(rep.RSS.IdleKiB-rep.RSS.BeforeKiB) / float64(rep.Connected)
	}
	return nil
}

// checkRun is --check: it gathers the truth from every shard and has each compare its views.
func checkRun(ctx context.Context, cfg *Config, g *Graph, shards []shardAPI, rep *Report, logf func(string, ...any)) error {
	rs, err := all(ctx, shards, func(int) command { return command{Op: "truth"} })
	if err != nil {
		return fmt.Errorf("truth: %w", err)
	}
	parts := make([][]Truth, len(rs))
	for i, r := range rs {
		parts[i] = r.Truth
	}
	truth := mergeTruth(len(g.Names), parts)
	logf("checking views (up to %v)", cfg.CheckWait)
	rs, err = all(ctx, shards, func(int) command { return command{Op: "check", Truth: truth} })
	if err != nil {
		return fmt.Errorf("check: %w", err)
	}
	rep.Check = &CheckReport{}
	for _, r := range rs {
		rep.Check.Clients += r.Check.Clients
		rep.Check.Mismatches += r.Check.Mismatches
		rep.Check.Seconds = max(rep.Check.Seconds, r.Check.Seconds)
	}
	return nil
}

func statusRun(ctx context.Context, cfg *Config, g *Graph, shards []shardAPI, los []int, rep *Report, logf func(string, ...any)) error {
	senders := min(cfg.Clients, len(g.Names))
	rate := cfg.Rate
	if limit := float64(senders) / cfg.Period.Seconds(); cfg.Period > 0 && rate > limit {
		logf("warning: --rate %.0f capped at %.1f: %d users may each change once per %v", rate, limit, senders, cfg.Period)
		rate = limit
	}
	rep.Status.Rate, rep.Status.Seconds = rate, cfg.Duration.Seconds()
	start := time.Now().Add(300 * time.Millisecond)
	// Steady part: the sends' window shifted by the debounce, trimmed at both ends.
	trim := min(time.Second, cfg.Duration/10)
	from, to := start.Add(cfg.Debounce+trim), start.Add(cfg.Duration+cfg.Debounce-trim)
	rep.Status.SteadySeconds = to.Sub(from).Seconds()
	logf("status phase: %.1f changes/s for %v", rate, cfg.Duration)
	_, err := all(ctx, shards, func(i int) command {
		// Shard i owns the senders among its clients: numbers below the user count.
		own := max(0, min(los[i+1], senders)-min(los[i], senders))
		return command{Op: "status", Start: start.UnixNano(), Dur: int64(cfg.Duration), Rate: rate * float64(own) / float64(senders),
			SteadyFrom: from.UnixNano(), SteadyTo: to.UnixNano()}
	})
	if err != nil {
		return fmt.Errorf("status phase: %w", err)
	}
	if ok, err := quiet(ctx, shards, cfg.Debounce+300*time.Millisecond, 30*time.Second); err != nil {
		return fmt.Errorf("status drain: %w", err)
	} else if !ok {
		logf("warning: deliveries still arriving 30s after the last change")
	}
	return nil
}

func stormRun(ctx context.Context, cfg *Config, shards []shardAPI, rep *Report, logf func(string, ...any)) error {
	start := time.Now().Add(200 * time.Millisecond)
	logf("storm: dropping, then resuming within %v", cfg.StormWindow)
	rs, err := all(ctx, shards, func(int) command {
		return command{Op: "storm", Start: start.UnixNano(), Dur: int64(cfg.StormWindow)}
	})
	st := &StormReport{Reasons: map[string]int{}, Seconds: time.Since(start).Seconds()}
	rep.Storm = st
	for _, r := range rs {
		if r.Storm == nil {
			continue
		}
		st.Dropped += r.Storm.Dropped
		st.Observers += r.Storm.Observers
		if c := r.Storm.Reconnect; c != nil {
			st.Served += c.OK
			st.Failed += c.Failed + c.DialErrs + c.Skipped
			addCounts(st.Reasons, c.Reasons)
		}
	}
	logf("storm: %d served, %d failed in %.2fs", st.Served, st.Failed, st.Seconds)
	if err != nil {
		return fmt.Errorf("storm: %w", err)
	}
	// x or o frames the storm caused would come one debounce later: wait them out.
	if _, err := quiet(ctx, shards, cfg.Debounce+time.Second, 30*time.Second); err != nil {
		return fmt.Errorf("storm tail: %w", err)
	}
	return nil
}

// finishReport folds the shards' counters into the report.
func finishReport(rep *Report, replies []reply) {
	sum := &ShardReport{Frames: map[string]map[string]int64{}, Unexpected: map[string]int{}, ErrorFrames: map[string]int{}}
	for _, r := range replies {
		if r.Report != nil {
			sum.merge(r.Report)
		}
	}
	rep.Frames, rep.Samples, rep.Pings, rep.Binary = sum.Frames, sum.Samples, sum.Pings, sum.Binary
	addCounts(rep.Unexpected, sum.Unexpected)
	addCounts(rep.ErrorFrames, sum.ErrorFrames)
	rep.Latency.Connect = sum.Connect.Summary()
	rep.Latency.Delivery = sum.Latency.Summary()
	rep.Latency.Flush = sum.Flush.Summary()
	rep.Latency.Reconnect = sum.Reconnect.Summary()
	rep.RSS.LoadKiB = sum.SelfRSSKiB
	st := &rep.Status
	st.Sent, st.SendErrs, st.Skipped, st.Expected, st.NegativeLat = sum.Sent, sum.SendErrs, sum.Skipped, sum.Expected, sum.Negative
	ph := sum.Frames[phaseNames[phStatus]]
	st.Deliveries = ph["u"] + ph["o"] + ph["x"]
	if st.SteadySeconds > 0 {
		st.PerSecond = float64(sum.Steady) / st.SteadySeconds
	}
	if rep.Storm != nil {
		s := sum.Frames[phaseNames[phStorm]]
		rep.Storm.XO = s["x"] + s["o"]
	}
	if rep.Check != nil {
		rep.Check.Violations, rep.Check.DecodeErrs = sum.Violations, sum.DecodeErrs
	}
}
