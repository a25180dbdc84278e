package main

import (
	"bytes"
	"fmt"
	"path/filepath"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/presenced/presenced/wire"
)

// The scanner must agree with the encoder byte for byte: these frames are what wire.Append writes.
func TestScanMatchesEncoder(t *testing.T) {
	now := time.Unix(0, 1_765_000_000_123_456_789)
	p := stamp(now)
	cases := []struct {
		f       wire.Frame
		k       kind
		project string
	}{
		{wire.Update{ID: "u7", Has: wire.FieldActivity | wire.FieldProject, Activity: wire.Coding, Project: p}, kU, p},
		{wire.Update{ID: "u7", Has: wire.FieldState | wire.FieldProject | wire.FieldLanguage, State: wire.StateOnline, Project: p, Language: "Go"}, kU, p},
		{wire.Update{ID: "u7", Has: wire.FieldState, State: wire.StateAway}, kU, ""},
		{wire.Online{ID: "u12", Presence: wire.Presence{State: wire.StateOnline, Activity: wire.Debugging, Project: p, Language: "Go"}}, kO, p},
		{wire.Online{ID: "u12", Presence: wire.Presence{State: wire.StateOnline}}, kO, ""},
		{wire.Offline{ID: "u3", TS: 1703789400000}, kX, ""},
		{wire.Sync{Users: []wire.SyncUser{{Username: "u1", Presence: wire.Presence{State: wire.StateOnline, Project: "x"}}}}, kSync, ""},
		{wire.Welcome{ID: "u1", Resume: "tok", Resumed: true}, kWelcome, ""},
		{wire.Pong{}, kPong, ""},
		{wire.ErrorFrame{Code: "rate_limited", Msg: `say "less"`}, kError, ""},
	}
	for _, c := range cases {
		b := wire.Encode(c.f)
		if got := frameKind(b); got != c.k {
			t.Errorf("%s: kind %v, want %v", b, got, c.k)
		}
		if c.k != kU && c.k != kO {
			continue
		}
		got := stringField(b, keyP)
		if string(got) != c.project {
			t.Errorf("%s: p %q, want %q", b, got, c.project)
		}
		if c.project != "" {
			ts, ok := parseStamp(got)
			if !ok || !ts.Equal(now) {
				t.Errorf("%s: stamp %v %v, want %v", b, ts, ok, now)
			}
		}
	}
	w := wire.Encode(wire.Welcome{ID: "u1", Resume: "abc_-9", Resumed: true})
	if string(stringField(w, keyResume)) != "abc_-9" || !bytes.Contains(w, keyResumed) {
		t.Errorf("welcome scan failed on %s", w)
	}
	if bytes.Contains(wire.Encode(wire.Welcome{ID: "u1", Resume: "x"}), keyResumed) {
		t.Error("resumed:false read as true")
	}
	if string(stringField(wire.Encode(wire.ErrorFrame{Code: "replaced", Msg: "m"}), keyCode)) != "replaced" {
		t.Error("error code not found")
	}
	for _, bad := range []string{"", "t", "x12", "tABC", "t!!", "t" + "zzzzzzzzzzzzzzzz"} {
		if _, ok := parseStamp([]byte(bad)); ok {
			t.Errorf("parseStamp(%q) accepted", bad)
		}
	}
	// The test-only flush time, as wire.Encode writes it on each frame that can carry it.
	ft := time.UnixMicro(1703789400123456)
	for _, f := range []wire.Frame{
		wire.Update{ID: "u7", Has: wire.FieldProject, Project: `,"ft":1}`, FT: wire.FlushTime(ft.UnixMicro())},
		wire.Online{ID: "u7", Presence: wire.Presence{State: wire.StateOnline, Activity: wire.Coding}, FT: wire.FlushTime(ft.UnixMicro())},
		wire.Offline{ID: "u7", TS: 5, FT: wire.FlushTime(ft.UnixMicro())},
	} {
		b := wire.Encode(f)
		if got, ok := flushTime(b); !ok || !got.Equal(ft) {
			t.Errorf("%s: flush time %v %v, want %v", b, got, ok, ft)
		}
	}
	for _, bad := range []string{`{"t":"u","id":"u7"}`, `{"t":"u","id":"u7","ft":}`, `{"t":"u","id":"u7","ft":12`, `{"t":"u","id":"u7","ft":1x}`} {
		if got, ok := flushTime([]byte(bad)); ok {
			t.Errorf("flushTime(%s) = %v, want none", bad, got)
		}
	}
	if frameKind([]byte(`{"t":"nope"}`)) != kOther || frameKind([]byte(`[]`)) != kOther {
		t.Error("unknown frames must be kOther")
	}
}

func TestHistQuantiles(t *testing.T) {
	var h Hist
	for i := 1; i <= 1000; i++ {
		h.Add(time.Duration(i) * time.Millisecond)
	}
	h.Add(-time.Second) // counts as zero
	s := h.Snap()
	var other HistSnap
	other.Merge(s)
	l := other.Summary()
	near := func(got, want float64) bool { return got > want*0.96 && got < want*1.04 }
	if l.N != 1001 || !near(l.P50ms, 500) || !near(l.P90ms, 900) || !near(l.P99ms, 990) || l.MaxMS != 1000 {
		t.Errorf("summary %+v", l)
	}
	for _, us := range []uint64{0, 1, 63, 64, 65, 1000, 1 << 20, 1 << 40} {
		v := histValue(histIndex(us))
		if us < 64 && v != us || us >= 64 && (float64(v) < float64(us)*0.97 || float64(v) > float64(us)*1.04) {
			t.Errorf("bucket of %d is %d", us, v)
		}
	}
}

func TestGraph(t *testing.T) {
	p := GraphParams{Users: 2000, Follows: 30, Seed: 9, Alpha: 1}
	g, err := GenerateGraph(p)
	if err != nil {
		t.Fatal(err)
	}
	again, _ := GenerateGraph(p)
	for u, fs := range g.Follows {
		if len(fs) != 30 || slices.Contains(fs, int32(u)) || len(slices.Compact(slices.Clone(fs))) != 30 {
			t.Fatalf("u%d follows %v: want 30 distinct others", u, fs)
		}
		if !slices.Equal(fs, again.Follows[u]) {
			t.Fatal("same seed, different graph")
		}
	}
	fc := g.Followers()
	sorted := slices.Sorted(slices.Values(fc))
	if top, median := sorted[len(sorted)-1], sorted[len(sorted)/2]; top < 20*median || top < 500 {
		t.Errorf("followers max %d, median %d: want a power law", top, median)
	}
	path := filepath.Join(t.TempDir(), "g.json")
	if err := g.WriteFile(path); err != nil {
		t.Fatal(err)
	}
	back, err := LoadGraph(path)
	if err != nil {
		t.Fatal(err)
	}
	if !slices.Equal(back.Names, g.Names) {
		t.Fatal("names changed through the file")
	}
	for u := range g.Follows {
		if !slices.Equal(back.Follows[u], g.Follows[u]) {
			t.Fatalf("u%d: %v through the file, want %v", u, back.Follows[u], g.Follows[u])
		}
	}
	// K = N-1 (everyone follows everyone) and K = 0 both work; K ≥ N does not.
	full, err := GenerateGraph(GraphParams{Users: 50, Follows: 49, Seed: 1, Alpha: 2})
	if err != nil || len(full.Follows[10]) != 49 {
		t.Fatalf("K=N-1: %v", err)
	}
	if z, err := GenerateGraph(GraphParams{Users: 5, Follows: 0, Seed: 1, Alpha: 1}); err != nil || len(z.Follows[0]) != 0 {
		t.Fatalf("K=0: %v", err)
	}
	if _, err := GenerateGraph(GraphParams{Users: 5, Follows: 5, Alpha: 1}); err == nil {
		t.Fatal("K=N accepted")
	}
}

// A frame about a user the client does not follow is a violation, and a view that differs from
// the truth is a mismatch: the check must be able to fail.
func TestCheckDetects(t *testing.T) {
	g, err := GenerateGraph(GraphParams{Users: 10, Follows: 2, Seed: 1, Alpha: 1})
	if err != nil {
		t.Fatal(err)
	}
	cfg := &Config{GraphParams: GraphParams{Users: 10}, Clients: 10, Check: true, Debounce: 50 * time.Millisecond, AwayAfter: time.Minute}
	sh := newShard(cfg, g, 0, 10)
	c := sh.clients[0]
	s := &session{c: c, state: ready}
	c.sess, c.live = s, true
	var stranger int32
	for v := int32(1); v < 10; v++ {
		if !g.FollowsUser(0, v) {
			stranger = v
			break
		}
	}
	sh.onText(s, wire.Encode(wire.Update{ID: g.Names[stranger], Has: wire.FieldActivity, Activity: wire.Coding}), time.Now())
	if n := sh.stats.violations.Load(); n != 1 {
		t.Fatalf("violations %d, want 1", n)
	}
	truth := make([]Truth, 10)
	for u := range truth {
		truth[u] = Truth{User: int32(u), Online: true, Act: wire.Coding, Project: "p"}
	}
	f := g.Follows[0][0]
	sh.onText(s, wire.Encode(wire.Sync{Users: []wire.SyncUser{
		{Username: g.Names[f], Presence: wire.Presence{State: wire.StateOnline, Activity: wire.Coding, Project: "p"}},
		{Username: g.Names[g.Follows[0][1]], Presence: wire.Presence{State: wire.StateOnline, Activity: wire.Coding, Project: "old"}},
	}}), time.Now())
	res, _ := sh.compare(truth, time.Now())
	if res.Mismatches != 1 {
		t.Fatalf("mismatches %d, want 1", res.Mismatches)
	}
	sh.onText(s, wire.Encode(wire.Update{ID: g.Names[g.Follows[0][1]], Has: wire.FieldProject, Project: "p"}), time.Now())
	if res, _ := sh.compare(truth, time.Now()); res.Mismatches != 0 || res.Clients != 1 {
		t.Fatalf("after the update: %+v, want 1 client, no mismatch", res)
	}
}

// TestLoopbackCmd: the calibration prints its median between its min and max, in the form
// docs/benchmarks.md quotes, and refuses sizes it cannot measure.
func TestLoopbackCmd(t *testing.T) {
	var out, errs bytes.Buffer
	if code := mainArgs([]string{"loopback", "--count", "200", "--rounds", "3", "--size", "80"}, &out, &errs); code != 0 {
		t.Fatalf("exit %d, stderr %q", code, errs.String())
	}
	var med, lo, hi float64
	var size, rounds, count int
	if _, err := fmt.Sscanf(out.String(), "loopback write+read of %d bytes: median %f µs (min %f, max %f; %d rounds of %d)\n",
		&size, &med, &lo, &hi, &rounds, &count); err != nil {
		t.Fatalf("output %q: %v", out.String(), err)
	}
	if size != 80 || rounds != 3 || count != 200 || lo <= 0 || med < lo || hi < med {
		t.Fatalf("output %q: want size 80, 3 rounds of 200, 0 < min <= median <= max", out.String())
	}
	errs.Reset()
	if code := mainArgs([]string{"loopback", "--size", "0"}, &out, &errs); code != 2 || !strings.Contains(errs.String(), "--size must be") {
		t.Fatalf("--size 0: exit %d, stderr %q; want 2 and what --size must be", code, errs.String())
	}
}
