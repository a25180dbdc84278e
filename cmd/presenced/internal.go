package main

// The internal listener (--internal-listen, 127.0.0.1:9090 by default) is a plain net/http
// server with its own mux, apart from the public port: probes, metrics and profiles never
// compete with, or show on, the WebSocket port (which answers 404 to anything but /ws).
//
// Importing net/http/pprof registers its handlers on http.DefaultServeMux as a side effect.
// That is harmless here because presenced never serves the default mux: the internal server
// has its own mux and the public port is not net/http at all. --pprof registers the handlers
// on the internal mux explicitly.

import (
	"context"
	"errors"
	"fmt"
	"net"
	"net/http"
	"net/http/pprof"
	"sync"
	"sync/atomic"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/collectors"
	"github.com/prometheus/client_golang/prometheus/promhttp"
	"go.uber.org/zap"

	"github.com/presenced/presenced/metrics"
)

const (
	// readyTimeout bounds one /readyz: a probe gets an answer before its own timeout (k8s: 1 s
	// by default) even when Redis hangs.
	readyTimeout = time.Second
	// internalShutdownTimeout bounds the internal server's graceful shutdown, which runs after
	// the node's: enough for a probe in flight, not for a CPU profile (that one is cut).
	internalShutdownTimeout = 2 * time.Second
)

var (
	errDraining = errors.New("draining: shutting down, send new connections elsewhere")
	errStarting = errors.New("starting: the node is not running yet")
)

// readyChecker is the node's own readiness (*server.Node: cluster joined, store and bus work).
type readyChecker interface {
	Ready(ctx context.Context) error
}

// readiness is what /readyz reports: the AND of "the node runs", "not draining" and the node's
// Ready. main sets the node once it is built and draining when a signal arrives; handlers
// read both from their own goroutines.
type readiness struct {
	draining atomic.Bool
	mu       sync.Mutex
	node     readyChecker // nil until the node runs
}

func (r *readiness) setNode(n readyChecker) {
	r.mu.Lock()
	r.node = n
	r.mu.Unlock()
}

// check returns nil when the node should get new connections, else why not.
func (r *readiness) check(ctx context.Context) error {
	if r.draining.Load() {
		return errDraining
	}
	r.mu.Lock()
	n := r.node
	r.mu.Unlock()
	if n == nil {
		return errStarting
	}
	if err := n.Ready(ctx); err != nil {
		return fmt.Errorf("node: %w", err)
	}
	return nil
}

// newMetrics makes the process's own registry, with the Go runtime's and the process's
// collectors and presenced's metrics, for /metrics. Nothing is ever registered on, or served
// from, prometheus's default registry.
func newMetrics() (*prometheus.Registry, *metrics.Metrics) {
	reg := prometheus.NewRegistry()
	reg.MustRegister(collectors.NewGoCollector(), collectors.NewProcessCollector(collectors.ProcessCollectorOpts{}))
	return reg, metrics.New(reg)
}

// internalMux routes the internal listener: one thin handler per operator endpoint. gather is
// the process's own registry (newMetrics), served at /metrics; nil: no /metrics.
func internalMux(r *readiness, gather prometheus.Gatherer, withPprof bool) *http.ServeMux {
	mux := http.NewServeMux()
	// Liveness: the process serves HTTP. It checks nothing else, so a Redis outage (which
	// readiness reports) never gets the process restarted.
	mux.HandleFunc("GET /healthz", func(w http.ResponseWriter, _ *http.Request) {
		_, _ = fmt.Fprintln(w, "ok")
	})
	mux.HandleFunc("GET /readyz", func(w http.ResponseWriter, req *http.Request) {
		ctx, cancel := context.WithTimeout(req.Context(), readyTimeout)
		defer cancel()
		if err := r.check(ctx); err != nil {
			http.Error(w, err.Error(), http.StatusServiceUnavailable)
			return
		}
		_, _ = fmt.Fprintln(w, "ok")
	})
	if gather != nil {
		// The Prometheus text format; a collector that fails makes the scrape fail with 500 and
		// the reason, so the scraper reports it.
		mux.Handle("GET /metrics", promhttp.HandlerFor(gather, promhttp.HandlerOpts{}))
	}
	if withPprof {
		mux.HandleFunc("/debug/pprof/", pprof.Index) // the index and every named profile (heap, goroutine, ...)
		mux.HandleFunc("/debug/pprof/profile", pprof.Profile)
		mux.HandleFunc("/debug/pprof/symbol", pprof.Symbol)
		mux.HandleFunc("/debug/pprof/trace", pprof.Trace)
		// No /debug/pprof/cmdline: the command line may hold the Redis password.
	}
	return mux
}

// internalServer is the running internal listener.
type internalServer struct {
	srv  *http.Server
	addr net.Addr
	done chan struct{} // closed when Serve has returned
	err  error         // Serve's result, set before done is closed
}

// startInternal serves mux on ln from its own goroutine until stop.
func startInternal(ln net.Listener, mux http.Handler, log *zap.Logger) *internalServer {
	errLog, _ := zap.NewStdLogAt(log.Named("internal"), zap.WarnLevel) // fails only for a bad level
	s := &internalServer{
		srv:  &http.Server{Handler: mux, ReadHeaderTimeout: 5 * time.Second, IdleTimeout: time.Minute, ErrorLog: errLog},
		addr: ln.Addr(),
		done: make(chan struct{}),
	}
	go func() {
		defer close(s.done)
		s.err = s.srv.Serve(ln)
	}()
	return s
}

// stop shuts the server down gracefully within internalShutdownTimeout, closes what is left,
// and waits for Serve to return. It returns Serve's error if Serve had failed by itself.
func (s *internalServer) stop() error {
	ctx, cancel := context.WithTimeout(context.Background(), internalShutdownTimeout)
	defer cancel()
	if err := s.srv.Shutdown(ctx); err != nil {
		_ = s.srv.Close()
	}
	<-s.done
	if !errors.Is(s.err, http.ErrServerClosed) {
		return fmt.Errorf("internal listener: %w", s.err)
	}
	return nil
}
