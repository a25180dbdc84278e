package metrics

import (
	"encoding/json"
	"os"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/testutil"
	"github.com/prometheus/client_golang/prometheus/testutil/promlint"

	"github.com/presenced/presenced/wire"
)

// families is every metric New registers: the contract docs/operations.md describes.
var families = []string{
	"presenced_channel_subscriptions",
	"presenced_connections",
	"presenced_connections_closed_total",
	"presenced_connections_opened_total",
	"presenced_debounce_flushes_total",
	"presenced_deltas_published_total",
	"presenced_flush_to_write_seconds",
	"presenced_frames_in_total",
	"presenced_frames_out_bytes_total",
	"presenced_frames_out_total",
	"presenced_github_api_calls_total",
	"presenced_hello_to_sync_seconds",
	"presenced_hellos_total",
	"presenced_lease_losses_total",
	"presenced_rate_limited_total",
	"presenced_redis_errors_total",
	"presenced_redis_publish_total",
	"presenced_redis_subscribe_total",
	"presenced_resumes_total",
	"presenced_slow_consumer_closes_total",
	"presenced_user_actor_activations_total",
	"presenced_user_actors",
}

// callAll calls every method once.
func callAll(m *Metrics) {
	m.ConnOpened()
	m.ConnClosed(wire.CloseSlowConsumer, wire.ErrSlowConsumer, true)
	m.Hello(true, ResultOK)
	m.HelloToSync(time.Now())
	m.FrameIn(wire.Status{})
	m.FrameOut("u")
	m.BytesOut(10)
	m.RateLimited()
	m.FlushToWrite(time.Now().UnixMicro())
	m.DebounceFlush()
	m.DeltaPublished()
	m.UserActivated()
	m.LeaseLost()
	m.RedisPublished()
	m.RedisSubscribed()
	m.RedisError("publish")
	m.GitHubCall(EndpointUser, 200)
	m.ReadGauges(func() Gauges { return Gauges{Conns: 1} })
}

// TestNilSafe: a nil *Metrics counts nothing and never panics, so packages' tests pass nil.
func TestNilSafe(t *testing.T) {
	var m *Metrics
	callAll(m)
}

// TestRegisteredOnce: New registers each family exactly once, every series it pre-makes is
// there from the start, and a second New on the same registry is refused.
func TestRegisteredOnce(t *testing.T) {
	reg := prometheus.NewRegistry()
	New(reg)
	mfs, err := reg.Gather()
	if err != nil {
		t.Fatal(err)
	}
	var got []string
	for _, mf := range mfs {
		got = append(got, mf.GetName())
	}
	if !slices.Equal(got, families) { // Gather sorts by name and would fail on duplicates
		t.Fatalf("families:\n got %q\nwant %q", got, families)
	}
	defer func() {
		if recover() == nil {
			t.Error("a second New on the same registry did not panic")
		}
	}()
	New(reg)
}

// TestNamesValid: promlint finds nothing (units, _total on counters, help on each), and every
// name is presenced's.
func TestNamesValid(t *testing.T) {
	reg := prometheus.NewRegistry()
	callAll(New(reg)) // histograms and vectors with samples lint fully
	mfs, err := reg.Gather()
	if err != nil {
		t.Fatal(err)
	}
	problems, err := promlint.NewWithMetricFamilies(mfs).Lint()
	if err != nil {
		t.Fatal(err)
	}
	for _, p := range problems {
		t.Errorf("%s: %s", p.Metric, p.Text)
	}
	for _, mf := range mfs {
		if !strings.HasPrefix(mf.GetName(), "presenced_") || mf.GetHelp() == "" {
			t.Errorf("%s: want the presenced_ prefix and a help text", mf.GetName())
		}
	}
}

// TestCounts: each method moves its series, and values outside a label's set count as other.
func TestCounts(t *testing.T) {
	reg := prometheus.NewRegistry()
	m := New(reg)
	m.ConnClosed(wire.CloseSlowConsumer, wire.ErrSlowConsumer, true)
	m.ConnClosed(wire.CloseNormal, "", true)
	m.ConnClosed(0, "", false)
	m.ConnClosed(4999, "", true)
	m.ConnClosed(wire.ClosePolicy, "no-such-code", true)
	m.Hello(false, ResultOK)
	m.Hello(true, wire.ErrResumeFailed)
	m.Hello(false, "whatever")
	m.FrameIn(wire.Bye{})
	m.FrameIn(nil)
	m.FrameOut("x")
	m.FrameOut("nope")
	m.RedisError("no-such-op")
	m.GitHubCall(EndpointFollowing, 304)
	m.GitHubCall("/elsewhere", 0)
	m.GitHubCall(EndpointUser, 1000)
	m.BytesOut(-1)
	m.BytesOut(7)
	m.ReadGauges(func() Gauges { return Gauges{Conns: 3, UserActors: 2, Channels: 5} })

	for _, c := range []struct {
		c    prometheus.Collector
		want float64
	}{
		{m.connsClosed.WithLabelValues(wire.ErrSlowConsumer), 1},
		{m.connsClosed.WithLabelValues(ReasonNormal), 1},
		{m.connsClosed.WithLabelValues(ReasonDrop), 1},
		{m.connsClosed.WithLabelValues(Other), 2},
		{m.slowConsumer, 1},
		{m.framesOut.WithLabelValues("error"), 2}, // the two closes that carried an error frame
		{m.framesOut.WithLabelValues("x"), 1},
		{m.framesOut.WithLabelValues(Other), 1},
		{m.framesIn.WithLabelValues("bye"), 1},
		{m.framesIn.WithLabelValues(Other), 1},
		{m.hellos.WithLabelValues(ResultOK), 1},
		{m.hellos.WithLabelValues(wire.ErrResumeFailed), 1},
		{m.hellos.WithLabelValues(Other), 1},
		{m.resumes.WithLabelValues(wire.ErrResumeFailed), 1},
		{m.resumes.WithLabelValues(ResultOK), 0},
		{m.redisErrors.WithLabelValues(Other), 1},
		{m.githubCalls.WithLabelValues(EndpointFollowing, "304"), 1},
		{m.githubCalls.WithLabelValues(Other, StatusError), 1},
		{m.githubCalls.WithLabelValues(EndpointUser, StatusError), 1},
		{m.bytesOut, 7},
	} {
		if got := testutil.ToFloat64(c.c); got != c.want {
			t.Errorf("%v = %v, want %v", c.c, got, c.want)
		}
	}
	if got := m.BytesSent(); got != 7 {
		t.Errorf("BytesSent = %d, want 7 (what the counter holds)", got)
	}
	if got := (*Metrics)(nil).BytesSent(); got != 0 {
		t.Errorf("a nil Metrics' BytesSent = %d, want 0", got)
	}
	mfs, err := reg.Gather()
	if err != nil {
		t.Fatal(err)
	}
	gauges := map[string]float64{}
	for _, mf := range mfs {
		if mf.GetType().String() == "GAUGE" {
			gauges[mf.GetName()] = mf.GetMetric()[0].GetGauge().GetValue()
		}
	}
	want := map[string]float64{"presenced_connections": 3, "presenced_user_actors": 2, "presenced_channel_subscriptions": 5}
	for k, v := range want {
		if gauges[k] != v {
			t.Errorf("%s = %v, want %v", k, gauges[k], v)
		}
	}
}

// TestHotPathAllocs: the per-frame methods, and those called per change, hello or close,
// allocate nothing, unknown label values included.
func TestHotPathAllocs(t *testing.T) {
	m := New(prometheus.NewRegistry())
	now := time.Now()
	us := now.UnixMicro()
	allocs := testing.AllocsPerRun(100, func() {
		m.FrameOut("u")
		m.FrameOut("nope")
		m.FrameIn(wire.Status{})
		m.BytesOut(42)
		m.FlushToWrite(us)
		m.RateLimited()
		m.DebounceFlush()
		m.DeltaPublished()
		m.RedisPublished()
		m.RedisError("no-such-op")
		m.Hello(true, ResultOK)
		m.HelloToSync(now)
		m.ConnClosed(wire.CloseNormal, "", true)
		m.ConnClosed(wire.CloseSlowConsumer, wire.ErrSlowConsumer, true)
	})
	if allocs != 0 {
		t.Fatalf("%v allocations per frame, want 0", allocs)
	}
}

// TestFrameType: FrameType is the "t" that wire encodes for every frame.
func TestFrameType(t *testing.T) {
	for _, f := range []wire.Frame{
		wire.Hello{Token: "t"}, wire.Status{}, wire.Invisible{}, wire.Privacy{Has: wire.PrivacyShareProject}, wire.Ping{}, wire.Bye{},
		wire.Welcome{}, wire.Sync{}, wire.Update{}, wire.Online{}, wire.Offline{}, wire.Pong{}, wire.ErrorFrame{},
	} {
		var v struct{ T string }
		if err := json.Unmarshal(wire.Encode(f), &v); err != nil {
			t.Fatal(err)
		}
		if got := FrameType(f); got != v.T {
			t.Errorf("FrameType(%T) = %q, want %q", f, got, v.T)
		}
		if !slices.Contains(inTypes, v.T) && !slices.Contains(outTypes, v.T) {
			t.Errorf("%q is in neither label set", v.T)
		}
	}
}

// TestDocsListEveryMetric: docs/operations.md names every metric, and every label value set.
func TestDocsListEveryMetric(t *testing.T) {
	b, err := os.ReadFile("../docs/operations.md")
	if err != nil {
		t.Fatal(err)
	}
	_, doc, ok := strings.Cut(string(b), "## Metrics")
	if !ok {
		t.Fatal(`docs/operations.md has no "## Metrics" section`)
	}
	doc, _, _ = strings.Cut(doc, "\n## ")
	for _, name := range families {
		if !strings.Contains(doc, "`"+name+"`") {
			t.Errorf("docs/operations.md does not list `%s`", name)
		}
	}
	for _, set := range [][]string{inTypes, outTypes, helloResults, closeReasons, RedisOps} {
		for _, v := range set {
			if !strings.Contains(doc, "`"+v+"`") {
				t.Errorf("docs/operations.md does not list the label value `%s`", v)
			}
		}
	}
}
