package main

import (
	"bufio"
	"context"
	"errors"
	"fmt"
	"net/http"
	"sort"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/presenced/presenced/client"
	"github.com/presenced/presenced/metrics"
	"github.com/presenced/presenced/wire"
)

// session is one scripted client: it counts the frames it read, by type.
type session struct {
	t     *testing.T
	name  string
	c     *client.Conn
	sync  wire.Sync      // the one after hello
	got   map[string]int // frames read, by type
	bytes int            // text frame payload bytes read
}

func dialSession(t *testing.T, a *app, token string) *session {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	c, err := client.Dial(ctx, "ws://"+a.pub.Addr().String()+"/ws", client.Options{})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = c.Drop() })
	s := &session{t: t, name: token, c: c, got: map[string]int{}}
	_ = c.NetConn().SetReadDeadline(time.Now().Add(10 * time.Second))
	w, sync, err := c.Hello(wire.Hello{Token: token})
	if err != nil || w.ID != token {
		t.Fatalf("%s: hello: %+v %v", token, w, err)
	}
	s.got["welcome"]++
	s.got["sync"]++
	s.sync = sync
	s.bytes += len(wire.Encode(w)) + len(wire.Encode(sync)) // the server encodes the same way
	return s
}

// until reads frames until one satisfies ok, within 10 s; the read error ends it too.
func (s *session) until(what string, ok func(wire.Frame, error) bool) {
	s.t.Helper()
	_ = s.c.NetConn().SetReadDeadline(time.Now().Add(10 * time.Second))
	for {
		f, raw, err := s.c.Read()
		if err == nil {
			s.got[metrics.FrameType(f)]++
			s.bytes += len(raw)
		}
		if ok(f, err) {
			return
		}
		if err != nil {
			s.t.Fatalf("%s: waiting for %s: %v", s.name, what, err)
		}
	}
}

// online waits until the session sees user online: in its sync, or by an o frame.
func (s *session) online(user string) {
	s.t.Helper()
	for _, u := range s.sync.Users {
		if u.Username == user && u.Presence.State == wire.StateOnline {
			return
		}
	}
	s.until(user+" online", func(f wire.Frame, _ error) bool {
		o, ok := f.(wire.Online)
		return ok && o.ID == user
	})
}

// scrape GETs /metrics and returns every sample by its series ("name{labels}") as exposed.
func scrape(t *testing.T, url string) map[string]float64 {
	t.Helper()
	resp, err := http.Get(url)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	if resp.StatusCode != http.StatusOK || !strings.HasPrefix(resp.Header.Get("Content-Type"), "text/plain") {
		t.Fatalf("GET %s: %d %s", url, resp.StatusCode, resp.Header.Get("Content-Type"))
	}
	out := map[string]float64{}
	sc := bufio.NewScanner(resp.Body)
	for sc.Scan() {
		line := sc.Text()
		if line == "" || strings.HasPrefix(line, "#") {
			continue
		}
		i := strings.LastIndexByte(line, ' ')
		v, err := strconv.ParseFloat(line[i+1:], 64)
		if err != nil {
			t.Fatalf("bad sample line %q", line)
		}
		out[line[:i]] = v
	}
	if err := sc.Err(); err != nil {
		t.Fatal(err)
	}
	return out
}

// TestMetricsSession runs a scripted session over real WebSockets (dev auth; bob and alice
// follow each other): both connect, alice sends a status that bob receives as u, alice says bye
// and bob sees her x. Then /metrics on the internal port must say exactly that, and the public
// port must not serve it.
func TestMetricsSession(t *testing.T) {
	a := startApp(t, "--debounce", "50ms") // stopped after the sessions' cleanups drop their sockets
	alice := dialSession(t, a, "alice")
	bob := dialSession(t, a, "bob")
	// Each online publish in its own debounce window, before the status opens the next.
	alice.online("bob")
	bob.online("alice")
	if err := alice.c.Send(wire.Status{Has: wire.FieldActivity | wire.FieldProject, Activity: wire.Coding, Project: "MyApp"}); err != nil {
		t.Fatal(err)
	}
	bob.until("alice's u", func(f wire.Frame, _ error) bool {
		u, ok := f.(wire.Update)
		return ok && u.ID == "alice" && u.Activity == wire.Coding
	})
	if err := alice.c.Send(wire.Bye{}); err != nil {
		t.Fatal(err)
	}
	alice.until("close 1000", func(_ wire.Frame, err error) bool {
		var ce *client.CloseError
		return errors.As(err, &ce) && ce.Code == wire.CloseNormal
	})
	bob.until("alice's x", func(f wire.Frame, _ error) bool {
		x, ok := f.(wire.Offline)
		return ok && x.ID == "alice"
	})

	frames := func(typ string) float64 { return float64(alice.got[typ] + bob.got[typ]) }
	deltas := frames("o") + frames("u") + frames("x")
	if frames("u") != 1 || frames("x") != 1 || frames("o") < 1 {
		t.Fatalf("the clients read alice %v, bob %v", alice.got, bob.got)
	}
	want := map[string]float64{
		// The scripted session, counted where it happened.
		`presenced_hellos_total{result="ok"}`:                            2,
		`presenced_hellos_total{result="unauthorized"}`:                  0,
		`presenced_hellos_total{result="internal"}`:                      0,
		`presenced_resumes_total{result="ok"}`:                           0,
		`presenced_hello_to_sync_seconds_count`:                          2,
		`presenced_frames_out_total{type="welcome"}`:                     2,
		`presenced_frames_out_total{type="sync"}`:                        2,
		`presenced_frames_out_total{type="o"}`:                           frames("o"), // 1 or 2: bob's sync may already show alice online
		`presenced_frames_out_total{type="u"}`:                           1,
		`presenced_frames_out_total{type="x"}`:                           1,
		`presenced_frames_out_total{type="pong"}`:                        0,
		`presenced_flush_to_write_seconds_count`:                         deltas, // one per delta frame a follower got
		`presenced_debounce_flushes_total`:                               4,      // alice online, bob online, alice Coding, alice offline
		`presenced_deltas_published_total`:                               4,
		`presenced_user_actor_activations_total`:                         2,
		`presenced_lease_losses_total`:                                   0,
		`presenced_redis_publish_total`:                                  0, // in memory: no Redis
		`presenced_redis_subscribe_total`:                                0,
		`presenced_redis_errors_total{op="publish"}`:                     0,
		`presenced_github_api_calls_total{endpoint="user",status="200"}`: 0, // dev auth
		// Gauges: bob is left, following alice, carol and dave; alice's actor has retired.
		`presenced_connections`:           1,
		`presenced_user_actors`:           1,
		`presenced_channel_subscriptions`: 3,
		// Counted by the sockets (server/conn.go, server/outbox.go).
		`presenced_connections_opened_total`:                  2,
		`presenced_connections_closed_total{reason="normal"}`: 1,
		`presenced_connections_closed_total{reason="drop"}`:   0,
		`presenced_frames_in_total{type="hello"}`:             2,
		`presenced_frames_in_total{type="status"}`:            1,
		`presenced_frames_in_total{type="bye"}`:               1,
		`presenced_frames_out_total{type="error"}`:            0,
		`presenced_rate_limited_total`:                        0,
		`presenced_slow_consumer_closes_total`:                0,
		`presenced_frames_out_bytes_total`:                    float64(alice.bytes + bob.bytes),
	}
	in := "http://" + a.internal.addr.String() + "/metrics"
	var got map[string]float64
	var diff []string
	// The gauges settle a moment after the frames (alice's socket closes, her actor retires).
	for deadline := time.Now().Add(10 * time.Second); ; {
		got, diff = scrape(t, in), nil
		for k, v := range want {
			if g, ok := got[k]; !ok || g != v {
				diff = append(diff, fmt.Sprintf("%s = %v (present %v), want %v", k, g, ok, v))
			}
		}
		if len(diff) == 0 || time.Now().After(deadline) {
			break
		}
		time.Sleep(10 * time.Millisecond) // polling /metrics, not waiting for an event
	}
	sort.Strings(diff)
	for _, d := range diff {
		t.Error(d)
	}
	// Both are positive: a hello takes time, and a delta is queued after the µs it was
	// published at (that stamp is rounded down).
	if got[`presenced_hello_to_sync_seconds_sum`] <= 0 || got[`presenced_flush_to_write_seconds_sum`] <= 0 {
		t.Errorf("latency sums: hello_to_sync %v, flush_to_write %v", got[`presenced_hello_to_sync_seconds_sum`], got[`presenced_flush_to_write_seconds_sum`])
	}
	if _, ok := got["go_goroutines"]; !ok {
		t.Error("no go_goroutines: the Go collector is not on the registry")
	}
	expect(t, "http://"+a.pub.Addr().String()+"/metrics", http.StatusNotFound, "")
}
