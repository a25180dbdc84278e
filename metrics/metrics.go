// Package metrics defines presenced's Prometheus metrics: one Metrics value per process holds
// every collector, registered on the registry the caller gives New (cmd/presenced makes its own
// with prometheus.NewRegistry and serves it at /metrics on the internal listener; nothing here
// touches the default registry).
//
// Components receive a *Metrics through their config or constructor and call its methods where
// the thing happens. A nil *Metrics is valid and counts nothing, so tests and tools that do not
// care pass nil and need no registry. Every method is safe for concurrent use, and those on the
// per-frame paths allocate nothing: label values come from small fixed sets whose children are
// made once in New (an unknown value counts as "other"), so no user id or client-chosen string
// ever becomes a label. docs/operations.md lists every metric.
package metrics

import (
	"strconv"
	"sync/atomic"
	"time"

	"github.com/prometheus/client_golang/prometheus"

	"github.com/presenced/presenced/wire"
)

// Label values. Each label has a fixed set, plus Other for anything outside it.
const (
	Other = "other"

	// ResultOK is the result of a hello or resume that was accepted.
	ResultOK = "ok"

	// ReasonDrop: the socket ended without a close from this node (the peer went away, a write
	// failed, or it was silent past the dead-peer timeout).
	ReasonDrop = "drop"
	// ReasonNormal: closed with 1000 and no error (after bye, or the client's own normal close).
	ReasonNormal = "normal"
	// ReasonGoingAway: the client closed with 1001 (an editor quitting), echoed.
	ReasonGoingAway = "going_away"

	// GitHub endpoints, and the status of a call that got no HTTP answer.
	EndpointUser      = "user"      // GET /user
	EndpointFollowing = "following" // GET /user/following, one call per page
	StatusError       = "error"
)

// Frame types, as the "t" of the frame on the wire.
var (
	inTypes  = []string{"hello", "status", "invisible", "privacy", "ping", "bye"}
	outTypes = []string{"welcome", "sync", "u", "o", "x", "pong", "error"}
)

// helloResults are the error codes a hello (or a resume) can be refused with.
var helloResults = []string{ResultOK, wire.ErrUnauthorized, wire.ErrResumeFailed, wire.ErrInternal}

// closeReasons: the error code sent before the close, or one of the Reason constants.
var closeReasons = []string{
	ReasonDrop, ReasonNormal, ReasonGoingAway,
	wire.ErrBadFrame, wire.ErrBinary, wire.ErrTooBig, wire.ErrHelloTimeout, wire.ErrFrameTimeout,
	wire.ErrHelloExpected, wire.ErrDuplicateHello, wire.ErrUnauthorized, wire.ErrResumeFailed,
	wire.ErrReplaced, wire.ErrRateLimited, wire.ErrSlowConsumer, wire.ErrServerRestart, wire.ErrInternal,
}

// RedisOps are the operations Redis errors are counted by (cluster's Redis bus, store and
// follow lists name theirs from this list).
var RedisOps = []string{
	"publish", "subscribe", "unsubscribe", "receive", // bus
	"load", "acquire", "renew", "save", "presences", "track", "untrack", "orphans", "ping", // store
	"following_load", "following_save", "following_touch", "followed_by", // follow lists
}

// Gauges are the node's current sizes, read at every scrape from the func given to
// ReadGauges (server.Node gives its Stats).
type Gauges struct {
	Conns      int // open sockets, handshakes included
	UserActors int // user actors (cluster: grains) active on this node
	Channels   int // user channels this node subscribes to on the bus
}

// Metrics holds every presenced collector. Build it with New; the zero value is not usable,
// but a nil *Metrics is: every method then does nothing.
type Metrics struct {
	connsOpened  prometheus.Counter
	connsClosed  *prometheus.CounterVec // reason
	closedBy     map[string]prometheus.Counter
	hellos       *prometheus.CounterVec // result
	hellosBy     map[string]prometheus.Counter
	resumes      *prometheus.CounterVec // result
	resumesBy    map[string]prometheus.Counter
	framesIn     *prometheus.CounterVec // type
	framesInBy   map[string]prometheus.Counter
	framesOut    *prometheus.CounterVec // type
	framesOutBy  map[string]prometheus.Counter
	bytesOut     prometheus.CounterFunc // reads sent
	sent         atomic.Uint64          // bytes of text frames: one count for /metrics and BytesSent
	slowConsumer prometheus.Counter
	rateLimited  prometheus.Counter

	debounceFlushes prometheus.Counter
	deltasPublished prometheus.Counter
	activations     prometheus.Counter
	leaseLosses     prometheus.Counter

	redisPublish   prometheus.Counter
	redisSubscribe prometheus.Counter
	redisErrors    *prometheus.CounterVec // op
	redisErrorsBy  map[string]prometheus.Counter

	githubCalls *prometheus.CounterVec // endpoint, status

	helloToSync  prometheus.Histogram
	flushToWrite prometheus.Histogram

	gauges *gaugeCollector
}

// latencyBuckets span 1 ms to 10 s: a warm hello takes about a millisecond, a cold one with
// GitHub round trips hundreds, and a delta is due within a write delay of its flush.
var latencyBuckets = []float64{.001, .0025, .005, .01, .025, .05, .1, .25, .5, 1, 2.5, 5, 10}

// New makes the collectors and registers them on reg. It panics if reg already holds any of
// them (prometheus.Registerer.MustRegister): call it once per registry.
func New(reg prometheus.Registerer) *Metrics {
	counter := func(name, help string) prometheus.Counter {
		return prometheus.NewCounter(prometheus.CounterOpts{Name: name, Help: help})
	}
	vec := func(name, help string, labels ...string) *prometheus.CounterVec {
		return prometheus.NewCounterVec(prometheus.CounterOpts{Name: name, Help: help}, labels)
	}
	hist := func(name, help string) prometheus.Histogram {
		return prometheus.NewHistogram(prometheus.HistogramOpts{Name: name, Help: help, Buckets: latencyBuckets})
	}
	m := &Metrics{
		connsOpened: counter("presenced_connections_opened_total", "WebSocket upgrades that succeeded."),
		connsClosed: vec("presenced_connections_closed_total", "Upgraded sockets that ended, by reason: the error code sent before the close, normal, going_away or drop.", "reason"),
		hellos:      vec("presenced_hellos_total", "Hellos answered, by result: ok or the error code the hello was refused with.", "result"),
		resumes:     vec("presenced_resumes_total", "Hellos that carried a resume token, by result: ok or the error code.", "result"),
		framesIn:    vec("presenced_frames_in_total", "Client frames decoded, by type.", "type"),
		framesOut:   vec("presenced_frames_out_total", "Frames queued for clients, by type.", "type"),

		slowConsumer: counter("presenced_slow_consumer_closes_total", "Sockets closed with 4008 because their outbound queue overflowed."),
		rateLimited:  counter("presenced_rate_limited_total", "Client frames dropped by the per-socket rate limit."),

		debounceFlushes: counter("presenced_debounce_flushes_total", "Debounce windows that ended in a publish."),
		deltasPublished: counter("presenced_deltas_published_total", "Presence changes published to followers (debounced, immediate or republished), counted once written."),
		activations:     counter("presenced_user_actor_activations_total", "User actors (cluster: grains) started on this node."),
		leaseLosses:     counter("presenced_lease_losses_total", "User actor activations fenced off because a newer activation took the user's lease."),

		redisPublish:   counter("presenced_redis_publish_total", "PUBLISH commands that succeeded (the bus's, and those inside the store's save script)."),
		redisSubscribe: counter("presenced_redis_subscribe_total", "Channel subscriptions the bus made on its pub/sub connection."),
		redisErrors:    vec("presenced_redis_errors_total", "Redis calls that failed, by operation.", "op"),

		githubCalls: vec("presenced_github_api_calls_total", "GitHub REST calls, by endpoint and HTTP status (error: no answer).", "endpoint", "status"),

		helloToSync:  hist("presenced_hello_to_sync_seconds", "From a hello frame read to its sync queued: authentication, follow list, attach, store read."),
		flushToWrite: hist("presenced_flush_to_write_seconds", "From a user actor's publish to the delta frame queued on a follower's socket (publisher's clock: skew between nodes shows here)."),
	}
	m.bytesOut = prometheus.NewCounterFunc(prometheus.CounterOpts{Name: "presenced_frames_out_bytes_total",
		Help: "JSON bytes of the text frames taken by socket writers (WebSocket framing and control frames not included)."},
		func() float64 { return float64(m.sent.Load()) })
	m.gauges = newGaugeCollector()
	m.closedBy = children(m.connsClosed, closeReasons)
	m.hellosBy = children(m.hellos, helloResults)
	m.resumesBy = children(m.resumes, helloResults)
	m.framesInBy = children(m.framesIn, inTypes)
	m.framesOutBy = children(m.framesOut, outTypes)
	m.redisErrorsBy = children(m.redisErrors, RedisOps)
	for _, e := range []string{EndpointUser, EndpointFollowing} {
		for _, s := range []string{"200", "304", "401", "403", "429", StatusError} {
			m.githubCalls.WithLabelValues(e, s) // the common series exist at 0 from the start
		}
	}
	reg.MustRegister(m.connsOpened, m.connsClosed, m.hellos, m.resumes, m.framesIn, m.framesOut, m.bytesOut,
		m.slowConsumer, m.rateLimited, m.debounceFlushes, m.deltasPublished, m.activations, m.leaseLosses,
		m.redisPublish, m.redisSubscribe, m.redisErrors, m.githubCalls, m.helloToSync, m.flushToWrite, m.gauges)
	return m
}

// children makes v's child for every value plus Other, so that each series exists from the
// start and the hot path is one map read.
func children(v *prometheus.CounterVec, values []string) map[string]prometheus.Counter {
	out := make(map[string]prometheus.Counter, len(values)+1)
	for _, val := range values {
		out[val] = v.WithLabelValues(val)
	}
	out[Other] = v.WithLabelValues(Other)
	return out
}

// of returns the counter for val, or Other's.
func of(by map[string]prometheus.Counter, val string) prometheus.Counter {
	if c, ok := by[val]; ok {
		return c
	}
	return by[Other]
}

// ConnOpened counts a WebSocket upgrade that succeeded. Called by the socket's serve goroutine.
func (m *Metrics) ConnOpened() {
	if m == nil {
		return
	}
	m.connsOpened.Inc()
}

// ConnClosed counts an upgraded socket that ended, once, when it is finished. sent says whether
// this node queued a close (its own, or the echo of the client's); closeCode and errCode are
// that close's code and the error code of the error frame before it ("" when none). An error
// frame counts as a frame out here, and a slow-consumer close also in its own counter.
func (m *Metrics) ConnClosed(closeCode int, errCode string, sent bool) {
	if m == nil {
		return
	}
	reason := ReasonDrop
	switch {
	case !sent:
	case errCode != "":
		reason = errCode
		m.framesOutBy["error"].Inc()
	case closeCode == wire.CloseNormal:
		reason = ReasonNormal
	case closeCode == wire.CloseGoingAway:
		reason = ReasonGoingAway
	default:
		reason = Other
	}
	if reason == wire.ErrSlowConsumer {
		m.slowConsumer.Inc()
	}
	of(m.closedBy, reason).Inc()
}

// Hello counts one hello's result: ResultOK or the error code it was refused with. A hello that
// carried a resume token (resume) counts as a resume too.
func (m *Metrics) Hello(resume bool, result string) {
	if m == nil {
		return
	}
	of(m.hellosBy, result).Inc()
	if resume {
		of(m.resumesBy, result).Inc()
	}
}

// HelloToSync observes the time from a hello read at helloAt to its sync queued.
func (m *Metrics) HelloToSync(helloAt time.Time) {
	if m == nil {
		return
	}
	m.helloToSync.Observe(max(time.Since(helloAt), 0).Seconds())
}

// FrameIn counts a decoded client frame.
func (m *Metrics) FrameIn(f wire.Frame) {
	if m == nil {
		return
	}
	of(m.framesInBy, FrameType(f)).Inc()
}

// FrameOut counts a frame queued for a client; t is its wire type (FrameType).
func (m *Metrics) FrameOut(t string) {
	if m == nil {
		return
	}
	of(m.framesOutBy, t).Inc()
}

// BytesOut counts n bytes of text frames taken by a socket writer.
func (m *Metrics) BytesOut(n int) {
	if m == nil || n <= 0 {
		return
	}
	m.sent.Add(uint64(n))
}

// BytesSent is what BytesOut has counted so far, as presenced_frames_out_bytes_total shows it
// (the collector's quiet rule reads it once a second). 0 for a nil Metrics.
func (m *Metrics) BytesSent() uint64 {
	if m == nil {
		return 0
	}
	return m.sent.Load()
}

// RateLimited counts a client frame dropped by the rate limit.
func (m *Metrics) RateLimited() {
	if m == nil {
		return
	}
	m.rateLimited.Inc()
}

// FlushToWrite observes the time from a publish at publishedUS (unix µs, the publisher's clock;
// 0: unknown, not observed) to now, when its frame is queued for a follower. A negative time
// (clock skew between nodes) counts as 0.
func (m *Metrics) FlushToWrite(publishedUS int64) {
	if m == nil || publishedUS == 0 {
		return
	}
	m.flushToWrite.Observe(max(time.Since(time.UnixMicro(publishedUS)), 0).Seconds())
}

// DebounceFlush counts a debounce window that ended in a publish.
func (m *Metrics) DebounceFlush() {
	if m == nil {
		return
	}
	m.debounceFlushes.Inc()
}

// DeltaPublished counts a presence change written and published.
func (m *Metrics) DeltaPublished() {
	if m == nil {
		return
	}
	m.deltasPublished.Inc()
}

// UserActivated counts a user actor starting on this node.
func (m *Metrics) UserActivated() {
	if m == nil {
		return
	}
	m.activations.Inc()
}

// LeaseLost counts a user actor activation fenced off by a newer one.
func (m *Metrics) LeaseLost() {
	if m == nil {
		return
	}
	m.leaseLosses.Inc()
}

// RedisPublished counts a PUBLISH that succeeded.
func (m *Metrics) RedisPublished() {
	if m == nil {
		return
	}
	m.redisPublish.Inc()
}

// RedisSubscribed counts a channel subscription made.
func (m *Metrics) RedisSubscribed() {
	if m == nil {
		return
	}
	m.redisSubscribe.Inc()
}

// RedisError counts a failed Redis call; op is one of RedisOps.
func (m *Metrics) RedisError(op string) {
	if m == nil {
		return
	}
	of(m.redisErrorsBy, op).Inc()
}

// GitHubCall counts a GitHub REST call to endpoint (EndpointUser, EndpointFollowing) that was
// answered with status, or, with status 0, got no answer.
func (m *Metrics) GitHubCall(endpoint string, status int) {
	if m == nil {
		return
	}
	if endpoint != EndpointUser && endpoint != EndpointFollowing {
		endpoint = Other
	}
	s := StatusError
	if status >= 100 && status <= 599 {
		s = strconv.Itoa(status) // bounded by HTTP itself
	}
	m.githubCalls.WithLabelValues(endpoint, s).Inc()
}

// ReadGauges sets where scrapes read the gauges from: f is called once per scrape, from the
// scraping goroutine, and must not block. Until it is set the gauges read 0; a later call
// replaces f (the last node built in a process wins).
func (m *Metrics) ReadGauges(f func() Gauges) {
	if m == nil {
		return
	}
	m.gauges.read.Store(&f)
}

// FrameType is a frame's "t" on the wire ("u", "status", ...), Other for nil.
func FrameType(f wire.Frame) string {
	switch f.(type) {
	case wire.Hello:
		return "hello"
	case wire.Status:
		return "status"
	case wire.Invisible:
		return "invisible"
	case wire.Privacy:
		return "privacy"
	case wire.Ping:
		return "ping"
	case wire.Bye:
		return "bye"
	case wire.Welcome:
		return "welcome"
	case wire.Sync:
		return "sync"
	case wire.Update:
		return "u"
	case wire.Online:
		return "o"
	case wire.Offline:
		return "x"
	case wire.Pong:
		return "pong"
	case wire.ErrorFrame:
		return "error"
	}
	return Other
}

// gaugeCollector reports the node's gauges from one read of its Stats per scrape.
type gaugeCollector struct {
	conns, users, channels *prometheus.Desc
	read                   atomic.Pointer[func() Gauges]
}

func newGaugeCollector() *gaugeCollector {
	return &gaugeCollector{
		conns:    prometheus.NewDesc("presenced_connections", "Open sockets, WebSocket handshakes in progress included.", nil, nil),
		users:    prometheus.NewDesc("presenced_user_actors", "User actors (cluster: grains) active on this node.", nil, nil),
		channels: prometheus.NewDesc("presenced_channel_subscriptions", "User channels (presence:<user>) this node subscribes to, for its sockets' followed users.", nil, nil),
	}
}

func (g *gaugeCollector) Describe(ch chan<- *prometheus.Desc) {
	ch <- g.conns
	ch <- g.users
	ch <- g.channels
}

func (g *gaugeCollector) Collect(ch chan<- prometheus.Metric) {
	var v Gauges
	if f := g.read.Load(); f != nil {
		v = (*f)()
	}
	ch <- prometheus.MustNewConstMetric(g.conns, prometheus.GaugeValue, float64(v.Conns))
	ch <- prometheus.MustNewConstMetric(g.users, prometheus.GaugeValue, float64(v.UserActors))
	ch <- prometheus.MustNewConstMetric(g.channels, prometheus.GaugeValue, float64(v.Channels))
}
