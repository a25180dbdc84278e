package main

import (
	"fmt"
	"io"
	"maps"
	"slices"
	"strings"
	"text/tabwriter"
)

// ShardReport is everything one shard measured; the coordinator adds them up.
type ShardReport struct {
	Frames      map[string]map[string]int64 `json:"frames"` // phase → frame type → count
	Steady      int64                       `json:"steady_deliveries"`
	Latency     HistSnap                    `json:"latency"`
	Flush       HistSnap                    `json:"flush"`
	Connect     HistSnap                    `json:"connect"`
	Reconnect   HistSnap                    `json:"reconnect"`
	Negative    int64                       `json:"negative_latency"`
	Binary      int64                       `json:"binary_frames"`
	Pings       int64                       `json:"pings_answered"`
	Sent        int64                       `json:"statuses_sent"`
	SendErrs    int64                       `json:"send_errors"`
	Skipped     int64                       `json:"skipped_not_connected"`
	Expected    int64                       `json:"expected_deliveries"`
	Violations  int64                       `json:"isolation_violations"`
	DecodeErrs  int64                       `json:"decode_errors"`
	Unexpected  map[string]int              `json:"unexpected_closes"`
	ErrorFrames map[string]int              `json:"error_frames"`
	Samples     []string                    `json:"samples,omitempty"`
	SelfRSSKiB  int64                       `json:"load_rss_kib"`
}

func (sh *shard) report() *ShardReport {
	st := &sh.stats
	r := &ShardReport{Frames: map[string]map[string]int64{}, Steady: st.steady.Load(),
		Latency: st.latency.Snap(), Flush: st.flush.Snap(), Connect: st.connect.Snap(), Reconnect: st.reconnect.Snap(),
		Negative: st.negative.Load(), Binary: st.binary.Load(), Pings: st.pings.Load(), Sent: st.sent.Load(), SendErrs: st.sendErrs.Load(), Skipped: st.skipped.Load(),
		Expected: st.expected.Load(), Violations: st.violations.Load(), DecodeErrs: st.decodeErrs.Load()}
	for p := range numPhases {
		m := map[string]int64{}
		for k := range numKinds {
			if n := st.frames[p][k].Load(); n > 0 {
				m[kind(k).String()] = n
			}
		}
		r.Frames[phaseNames[p]] = m
	}
	st.mu.Lock()
	r.Unexpected, r.ErrorFrames = maps.Clone(st.unexpected), maps.Clone(st.errFrames)
	r.Samples = slices.Clone(st.samples)
	st.mu.Unlock()
	r.SelfRSSKiB, _ = rssKiB(0)
	return r
}

func (r *ShardReport) merge(o *ShardReport) {
	for p, m := range o.Frames {
		if r.Frames[p] == nil {
			r.Frames[p] = map[string]int64{}
		}
		for k, n := range m {
			r.Frames[p][k] += n
		}
	}
	r.Steady += o.Steady
	r.Latency.Merge(o.Latency)
	r.Flush.Merge(o.Flush)
	r.Connect.Merge(o.Connect)
	r.Reconnect.Merge(o.Reconnect)
	r.Negative += o.Negative
	r.Binary += o.Binary
	r.Pings += o.Pings
	r.Sent += o.Sent
	r.SendErrs += o.SendErrs
	r.Skipped += o.Skipped
	r.Expected += o.Expected
	r.Violations += o.Violations
	r.DecodeErrs += o.DecodeErrs
	addCounts(r.Unexpected, o.Unexpected)
	addCounts(r.ErrorFrames, o.ErrorFrames)
	for _, s := range o.Samples {
		if len(r.Samples) < 2*maxSamples {
			r.Samples = append(r.Samples, s)
		}
	}
	r.SelfRSSKiB += o.SelfRSSKiB
}

func addCounts(dst, src map[string]int) {
	for k, v := range src {
		dst[k] += v
	}
}

// Report is the result of a run, as printed and as written to --json.
type Report struct {
	Users       int     `json:"users"`
	Follows     int     `json:"follows"`
	Clients     int     `json:"clients"`
	Procs       int     `json:"procs"`
	Connected   int     `json:"connected"`
	ConnectErrs int     `json:"connect_errors"`
	HelloErrs   int     `json:"hello_errors"`
	ConnectSecs float64 `json:"connect_seconds"`

	Connect ConnectResult `json:"connect"`
	Latency struct {
		Connect Latency `json:"connect"` // dial to sync
		// Delivery is send to receipt less the debounce: what a client sees, inbound path and
		// the server's timers included. Flush is flush to receipt from the frames' "ft" (only
		// against a server run with --stamp-flush): the outbound path alone.
		Delivery  Latency `json:"delivery"`
		Flush     Latency `json:"flush"`
		Reconnect Latency `json:"reconnect"` // storm: hello to sync
	} `json:"latency"`

	RSS struct {
		BeforeKiB  int64   `json:"before_kib"`
		IdleKiB    int64   `json:"idle_kib"` // median of the idle samples
		EndKiB     int64   `json:"end_kib"`
		PerConnKiB float64 `json:"per_conn_kib"`
		Samples    []int64 `json:"idle_samples_kib,omitempty"`
		LoadKiB    int64   `json:"load_generator_kib"`
	} `json:"server_rss"`

	Status struct {
		Rate          float64 `json:"rate"` // after the cap
		Seconds       float64 `json:"seconds"`
		Sent          int64   `json:"sent"`
		SendErrs      int64   `json:"send_errors"`
		Skipped       int64   `json:"skipped_not_connected"` // the sender was not connected
		Expected      int64   `json:"expected_deliveries"`
		Deliveries    int64   `json:"deliveries"` // u/o/x received in the status phase
		SteadySeconds float64 `json:"steady_seconds"`
		PerSecond     float64 `json:"deliveries_per_second"`
		NegativeLat   int64   `json:"negative_latency"`
		// Server CPU (user+system) over the whole status phase, and per status change sent:
		// the O(K) claim as numbers (frames per change track K, CPU per change tracks frames).
		ServerCPU       float64 `json:"server_cpu_seconds"`
		CPUPerChangeUs  float64 `json:"server_cpu_us_per_change"`
		FramesPerChange float64 `json:"frames_per_change"`
		// IdleCPUPerSec is the server's CPU per second while every client idled (pings, GC,
		// timers): it grows with N, not with changes. NetCPUPerChangeUs takes it out.
		IdleCPUPerSec     float64 `json:"server_idle_cpu_per_second"`
		NetCPUPerChangeUs float64 `json:"server_net_cpu_us_per_change"`
	} `json:"status"`

	Storm *StormReport `json:"storm,omitempty"`
	Check *CheckReport `json:"check,omitempty"`

	Frames      map[string]map[string]int64 `json:"frames"`
	Pings       int64                       `json:"pings_answered"`
	Binary      int64                       `json:"binary_frames"`
	Unexpected  map[string]int              `json:"unexpected_closes"`
	ErrorFrames map[string]int              `json:"error_frames"`
	Samples     []string                    `json:"samples,omitempty"`
	Errors      []string                    `json:"errors"`
	OK          bool                        `json:"ok"`
}

// StormReport is the login storm's outcome.
type StormReport struct {
	Dropped   int            `json:"dropped"`
	Observers int            `json:"observers"`
	Served    int            `json:"served"` // welcome with resumed:true
	Failed    int            `json:"failed"`
	Reasons   map[string]int `json:"reasons,omitempty"`
	XO        int64          `json:"x_or_o_after_storm"` // must be 0
	Seconds   float64        `json:"seconds"`
}

// CheckReport is --check's outcome.
type CheckReport struct {
	Violations int64   `json:"isolation_violations"`
	DecodeErrs int64   `json:"decode_errors"`
	Clients    int     `json:"clients_checked"`
	Mismatches int     `json:"mismatches"`
	Seconds    float64 `json:"converged_seconds"`
}

// frameTotals sums frames over phases.
func (r *Report) frameTotals() map[string]int64 {
	t := map[string]int64{}
	for _, m := range r.Frames {
		for k, n := range m {
			t[k] += n
		}
	}
	return t
}

// judge lists what makes the run a failure; a script relies on the exit code.
func (r *Report) judge() {
	if r.Status.ServerCPU > 0 && r.Status.Sent > 0 {
		r.Status.CPUPerChangeUs = r.Status.ServerCPU / float64(r.Status.Sent) * 1e6
		r.Status.FramesPerChange = float64(r.Status.Deliveries) / float64(r.Status.Sent)
		net := r.Status.ServerCPU - r.Status.IdleCPUPerSec*r.Status.Seconds
		r.Status.NetCPUPerChangeUs = net / float64(r.Status.Sent) * 1e6
	}
	add := func(cond bool, f string, a ...any) {
		if cond {
			r.Errors = append(r.Errors, fmt.Sprintf(f, a...))
		}
	}
	add(r.ConnectErrs > 0, "%d connect errors", r.ConnectErrs)
	add(r.HelloErrs > 0, "%d hello errors", r.HelloErrs)
	n := 0
	for _, v := range r.Unexpected {
		n += v
	}
	add(n > 0, "%d unexpected closes %v", n, r.Unexpected)
	add(len(r.ErrorFrames) > 0, "error frames %v", r.ErrorFrames)
	add(r.Status.SendErrs > 0, "%d status sends failed", r.Status.SendErrs)
	add(r.Binary > 0, "%d binary frames from the server", r.Binary)
	if r.Storm != nil {
		add(r.Storm.Failed > 0, "storm: %d reconnects failed %v", r.Storm.Failed, r.Storm.Reasons)
		add(r.Storm.XO > 0, "storm: %d x/o frames after the storm began", r.Storm.XO)
	}
	if r.Check != nil {
		add(r.Check.Violations > 0, "check: %d isolation violations", r.Check.Violations)
		add(r.Check.DecodeErrs > 0, "check: %d undecodable frames", r.Check.DecodeErrs)
		add(r.Check.Mismatches > 0, "check: %d clients' views differ from the truth", r.Check.Mismatches)
	}
	r.OK = len(r.Errors) == 0
	if r.Errors == nil {
		r.Errors = []string{}
	}
}

// Print writes the human-readable table.
func (r *Report) Print(w io.Writer) {
	tw := tabwriter.NewWriter(w, 0, 0, 2, ' ', 0)
	row := func(k string, f string, a ...any) { fmt.Fprintf(tw, "%s\t%s\n", k, fmt.Sprintf(f, a...)) }
	row("clients", "%d (%d users, %d follows each, %d procs)", r.Clients, r.Users, r.Follows, r.Procs)
	row("connected", "%d in %.2fs; connect errors %d, hello errors %d", r.Connected, r.ConnectSecs, r.ConnectErrs, r.HelloErrs)
	row("connect latency", "%s", latencyString(r.Latency.Connect))
	if r.RSS.BeforeKiB > 0 {
		row("server RSS", "before %s, idle %s, end %s; %.2f KiB per connection",
			mib(r.RSS.BeforeKiB), mib(r.RSS.IdleKiB), mib(r.RSS.EndKiB), r.RSS.PerConnKiB)
	}
	row("load generator RSS", "%s", mib(r.RSS.LoadKiB))
	if r.Status.Sent > 0 || r.Status.Rate > 0 {
		row("status changes", "%d sent at %.1f/s for %.1fs (%d send errors, %d skipped: sender not connected)",
			r.Status.Sent, r.Status.Rate, r.Status.Seconds, r.Status.SendErrs, r.Status.Skipped)
		row("deliveries", "%d received, %d expected; %.0f/s over the steady %.1fs", r.Status.Deliveries, r.Status.Expected, r.Status.PerSecond, r.Status.SteadySeconds)
		if r.Status.ServerCPU > 0 {
			row("server cost", "%.2f CPU-s over the status phase; %.1f frames and %.0f µs CPU per status change (%.0f µs net of the %.3f CPU-s/s idle cost)",
				r.Status.ServerCPU, r.Status.FramesPerChange, r.Status.CPUPerChangeUs, r.Status.NetCPUPerChangeUs, r.Status.IdleCPUPerSec)
		}
		row("send→receipt − debounce", "%s (%d below zero)", latencyString(r.Latency.Delivery), r.Status.NegativeLat)
		if r.Latency.Flush.N > 0 {
			row("flush→receipt (ft)", "%s", latencyString(r.Latency.Flush))
		} else {
			row("flush→receipt (ft)", "- (start presenced with --stamp-flush to measure it)")
		}
	}
	if s := r.Storm; s != nil {
		row("storm", "%d dropped, %d observers; %d served, %d failed (%s) in %.2fs", s.Dropped, s.Observers, s.Served, s.Failed, countsString(s.Reasons), s.Seconds)
		row("storm x/o frames", "%d", s.XO)
		row("reconnect latency", "%s", latencyString(r.Latency.Reconnect))
	}
	if c := r.Check; c != nil {
		row("check", "%d isolation violations, %d undecodable, %d/%d clients mismatched (after %.2fs)", c.Violations, c.DecodeErrs, c.Mismatches, c.Clients, c.Seconds)
	}
	row("frames received", "%s; %d pings answered", countsString(r.frameTotals()), r.Pings)
	row("unexpected closes", "%s", countsString(r.Unexpected))
	row("error frames", "%s", countsString(r.ErrorFrames))
	_ = tw.Flush()
	for _, s := range r.Samples {
		fmt.Fprintln(w, "  sample:", s)
	}
	if r.OK {
		fmt.Fprintln(w, "result: OK")
	} else {
		fmt.Fprintln(w, "result: FAILED:", strings.Join(r.Errors, "; "))
	}
}

func latencyString(l Latency) string {
	if l.N == 0 {
		return "-"
	}
	return fmt.Sprintf("p50 %.1fms p90 %.1fms p99 %.1fms max %.1fms (n=%d)", l.P50ms, l.P90ms, l.P99ms, l.MaxMS, l.N)
}

func mib(kib int64) string { return fmt.Sprintf("%.1f MiB", float64(kib)/1024) }

func countsString[V int | int64](m map[string]V) string {
	if len(m) == 0 {
		return "none"
	}
	keys := slices.Sorted(maps.Keys(m))
	parts := make([]string, len(keys))
	for i, k := range keys {
		parts[i] = fmt.Sprintf("%s=%d", k, m[k])
	}
	return strings.Join(parts, " ")
}
