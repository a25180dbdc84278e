// Command presenced runs one presence node. With no Redis configured it is a complete single
// node with in-memory bus and store:
//
//	go run ./cmd/presenced --auth dev --graph examples/graph.json
//
// Every setting is a flag, an environment variable (--away-after is PRESENCED_AWAY_AFTER) or a
// key of the --config YAML file (away-after: 5m); presenced --help lists them. Health, readiness,
// metrics and pprof are on the internal listener (internal.go); SIGTERM drains (see drain).
package main

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"net"
	"net/url"
	"os"
	"os/signal"
	"runtime/debug"
	"strconv"
	"strings"
	"sync/atomic"
	"syscall"
	"time"

	"go.uber.org/zap"

	"github.com/presenced/presenced/actors"
	"github.com/presenced/presenced/auth"
	"github.com/presenced/presenced/cluster"
	"github.com/presenced/presenced/github"
	"github.com/presenced/presenced/metrics"
	"github.com/presenced/presenced/server"
)

func main() {
	if err := run(os.Args[1:]); err != nil {
		fmt.Fprintln(os.Stderr, "presenced:", err)
		os.Exit(1)
	}
}

func run(args []string) error {
	if len(args) > 0 && args[0] == "healthcheck" {
		return healthcheck(args[1:])
	}
	o, err := parse(args)
	if errors.Is(err, flag.ErrHelp) {
		return nil
	}
	if err != nil {
		return err
	}
	log, err := newLogger(o.logFormat)
	if err != nil {
		return err
	}
	defer func() { _ = log.Sync() }()
	log = log.With(zap.String("node", nodeName(o))) // every line says which node wrote it
	cluster.SetRedisLogger(log)
	logSettings(log, o)

	// Caught from here on: a signal that arrives while the node starts drains it once it runs.
	sigs := make(chan os.Signal, 2)
	signal.Notify(sigs, syscall.SIGINT, syscall.SIGTERM)
	defer signal.Stop(sigs)
	a, err := start(o, log)
	if err != nil {
		return err
	}
	return a.run(sigs)
}

// reservedFiles is what a node keeps open besides client sockets: listeners, epoll, Redis and
// cluster connections, logs, with room to spare.
const reservedFiles = 64

// app is one running presenced: the node, its public listener and the internal one. Only the
// goroutine that called start calls run (and so stop).
type app struct {
	o        options
	log      *zap.Logger
	node     *server.Node
	pub      net.Listener
	ready    *readiness
	internal *internalServer // nil with --internal-listen ""
	served   chan struct{}   // closed when node.Serve has returned
	serveErr error           // node.Serve's result, set before served is closed
	loops    []func()        // each stops one background loop (dev-auth warnings, quiet GC) and waits
}

// start binds both listeners, builds the node and serves. The listeners are bound before the
// node is built (joining a cluster takes seconds), so a taken port fails at once; the internal
// one serves from then on, so liveness answers while readiness still says "starting".
func start(o options, log *zap.Logger) (*app, error) {
	reg, m := newMetrics()
	cfg, err := nodeConfig(o, log, m)
	if err != nil {
		return nil, err
	}
	if o.graph != "" {
		// A big graph file's bytes and decoded maps are garbage now, but their pages stay
		// resident until the runtime's scavenger gets to them (tens of MB for 18,000 users of 50
		// follows). Return them, so that the node's RSS before its first connection is the node's.
		debug.FreeOSMemory()
	}
	// Every socket is an open file: raise the soft limit to the hard one and say what it allows.
	if files, err := server.RaiseOpenFiles(); err != nil {
		log.Warn("could not raise the open-files limit; connections are capped by the current one", zap.Error(err))
	} else {
		log.Info("open-files limit", zap.Uint64("files", files),
			zap.Uint64("max_connections", files-min(files, reservedFiles)))
	}
	var quiet *gcQuiet // nil: one target always
	if percent, from := applyGC(o); percent > 0 {
		quiet = quietSetting(o, percent, from)
		log.Info("garbage collector", zap.Int("gc_percent", percent), zap.String("from", from),
			zap.Int("gc_idle_percent", quiet.idlePercent()))
	} else {
		log.Info("garbage collector as GOGC sets it", zap.String("GOGC", os.Getenv("GOGC")))
	}
	pub, err := net.Listen("tcp", o.listen)
	if err != nil {
		return nil, fmt.Errorf("listen on %s: %w (choose another with --listen)", o.listen, err)
	}
	a := &app{o: o, log: log, pub: pub, ready: &readiness{}, served: make(chan struct{})}
	internalAddr := "none"
	if o.internalListen != "" {
		iln, err := net.Listen("tcp", o.internalListen)
		if err != nil {
			_ = pub.Close()
			return nil, fmt.Errorf("internal listener on %s: %w (choose another with --internal-listen, or \"\" for none)", o.internalListen, err)
		}
		a.internal = startInternal(iln, internalMux(a.ready, reg, o.pprof), log)
		internalAddr = a.internal.addr.String()
	}
	a.node, err = server.New(cfg)
	if err != nil {
		_ = pub.Close()
		if a.internal != nil {
			_ = a.internal.stop()
		}
		return nil, err
	}
	go func() {
		defer close(a.served)
		a.serveErr = a.node.Serve(pub)
	}()
	a.ready.setNode(a.node)
	if o.authMode == "dev" {
		a.loops = append(a.loops, background(func(ctx context.Context) { warnDevAuth(ctx, log, time.Minute) }))
	}
	if quiet != nil {
		a.loops = append(a.loops, background(func(ctx context.Context) { runGCQuiet(ctx, quiet, runtimeHeap(), m.BytesSent, log) }))
	}
	log.Info("presenced listening", zap.String("addr", pub.Addr().String()), zap.String("path", "/ws"),
		zap.String("internal", internalAddr))
	return a, nil
}

// run serves until a signal (then drains) or until a listener fails, and stops.
func (a *app) run(sigs <-chan os.Signal) error {
	var internalDone <-chan struct{} // nil without an internal listener: never ready
	if a.internal != nil {
		internalDone = a.internal.done
	}
	select {
	case sig := <-sigs:
		drain(&a.ready.draining, a.o.drainDelay, sig, sigs, a.log)
	case <-a.served: // the accept loop failed; stop reports why
	case <-internalDone:
	}
	return a.stop()
}

// drain is the first half of a graceful stop: readiness fails at once and the node keeps
// serving for delay, so that load balancers, which learn from /readyz, stop sending new
// connections before the node stops accepting. A second signal cuts the delay short.
func drain(draining *atomic.Bool, delay time.Duration, sig os.Signal, sigs <-chan os.Signal, log *zap.Logger) {
	draining.Store(true)
	log.Info("draining: readiness is off; shutting down after the drain delay (signal again to skip it)",
		zap.Stringer("signal", sig), zap.Duration("drain_delay", delay))
	if delay <= 0 {
		return
	}
	t := time.NewTimer(delay)
	defer t.Stop()
	select {
	case <-t.C:
	case sig := <-sigs:
		log.Info("second signal: skipping the rest of the drain delay", zap.Stringer("signal", sig))
	}
}

// stop shuts the node down (clients are told to resume elsewhere), then the internal listener.
func (a *app) stop() error {
	a.ready.draining.Store(true) // also when a listener failed
	a.log.Info("shutting down: telling clients to resume elsewhere")
	// A fresh context, bounded by --shutdown-timeout from now: the drain delay is not part of it.
	ctx, cancel := context.WithTimeout(context.Background(), a.o.shutdown)
	err := a.node.Shutdown(ctx)
	cancel()
	<-a.served
	_ = a.pub.Close() // Serve closes it, unless Shutdown came before Serve ever ran
	if !errors.Is(a.serveErr, server.ErrClosed) {
		err = errors.Join(a.serveErr, err)
	}
	if a.internal != nil {
		err = errors.Join(err, a.internal.stop())
	}
	for _, stop := range a.loops {
		stop()
	}
	if err != nil {
		return err
	}
	a.log.Info("stopped")
	return nil
}

// nodeConfig maps the options onto the node's config; the node and the GitHub client count
// into m (nil: nothing counts).
func nodeConfig(o options, log *zap.Logger, m *metrics.Metrics) (server.Config, error) {
	cfg := server.Config{
		User:            actors.UserConfig{Debounce: o.debounce, AwayAfter: o.awayAfter, ResumeWindow: o.resumeWindow},
		Log:             log,
		Metrics:         m,
		RedisURL:        o.redisURL,
		RefreshInterval: o.refresh,
		WriteDelay:      o.writeDelay,
		StampFlush:      o.stampFlush,
		DrainRate:       o.drainRate,
	}
	if o.writeDelay == 0 {
		cfg.WriteDelay = -1 // the server's zero value means its default
	}
	if o.clusterPort != 0 {
		if o.redisURL == "" {
			return cfg, errors.New("--cluster-port needs --redis: members share the bus and the store")
		}
		switch o.clusterProvider {
		case server.ProviderAutomanaged:
			if o.amPort == 0 || o.members == "" {
				return cfg, errors.New("--cluster-port needs --cluster-automanage-port and --cluster-members (or --cluster-provider k8s inside Kubernetes)")
			}
			cfg.Cluster = &server.ClusterConfig{Provider: o.clusterProvider, Host: o.clusterHost, Port: o.clusterPort,
				AutoManagePort: o.amPort, Members: strings.Split(o.members, ",")}
		case server.ProviderK8s:
			if o.amPort != 0 || o.members != "" {
				return cfg, errors.New("--cluster-provider k8s finds the members through the Kubernetes API: drop --cluster-automanage-port and --cluster-members")
			}
			cfg.Cluster = &server.ClusterConfig{Provider: o.clusterProvider, Host: o.clusterHost, Port: o.clusterPort}
		default:
			return cfg, fmt.Errorf("--cluster-provider %q: want automanaged or k8s", o.clusterProvider)
		}
	}
	switch o.authMode {
	case "dev":
		for _, f := range []string{"github-api", "github-token-ttl"} {
			if o.set[f] {
				return cfg, fmt.Errorf("--%s is for --auth github; dev auth cannot be combined with GitHub auth", f)
			}
		}
		if o.graph == "" {
			return cfg, errors.New("--auth dev needs --graph FILE (who follows whom), e.g. --graph examples/graph.json")
		}
		g, err := auth.LoadGraphFile(o.graph)
		if err != nil {
			return cfg, err
		}
		log.Warn("DEV AUTH: every hello token is taken as the username with no check. Never expose this server.",
			zap.String("graph", o.graph), zap.Int("users", len(g)))
		cfg.Auth, cfg.Graph = auth.DevAuth{}, g
	case "github":
		if o.graph != "" {
			return cfg, errors.New("--graph is for --auth dev; with --auth github the follow graph comes from GitHub")
		}
		u, err := url.Parse(o.githubAPI)
		if err != nil || (u.Scheme != "https" && u.Scheme != "http") || u.Host == "" {
			return cfg, fmt.Errorf("--github-api must be an http(s) URL like https://api.github.com, not %q", o.githubAPI)
		}
		client := github.NewClient(strings.TrimRight(o.githubAPI, "/"), nil)
		client.Metrics = m
		cfg.Auth = github.NewAuthenticator(client, github.AuthConfig{TTL: o.tokenTTL})
		cfg.Graph = github.NewGraph(client)
		log.Info("github auth", zap.String("api", o.githubAPI), zap.Duration("token_ttl", o.tokenTTL), zap.Duration("graph_refresh", o.refresh))
	default:
		return cfg, fmt.Errorf("--auth must be github or dev, not %q", o.authMode)
	}
	return cfg, nil
}

// background runs run on a goroutine of its own until the returned stop is called; stop
// cancels run's context and waits for it to return.
func background(run func(ctx context.Context)) (stop func()) {
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan struct{})
	go func() { defer close(done); run(ctx) }()
	return func() { cancel(); <-done }
}

// every calls fn every period until ctx ends.
func every(ctx context.Context, period time.Duration, fn func()) {
	t := time.NewTicker(period)
	defer t.Stop()
	for {
		select {
		case <-ctx.Done():
			return
		case <-t.C:
			fn()
		}
	}
}

// warnDevAuth repeats the dev-auth warning every period until ctx ends: a dev server that
// was left running by mistake keeps saying so.
func warnDevAuth(ctx context.Context, log *zap.Logger, period time.Duration) {
	every(ctx, period, func() {
		log.Warn("DEV AUTH is on: every hello token is taken as the username with no check. Never expose this server.")
	})
}

func newLogger(format string) (*zap.Logger, error) {
	switch format {
	case "json":
		return zap.NewProduction()
	case "console":
		return zap.NewDevelopment()
	default:
		return nil, fmt.Errorf("--log-format must be console or json, not %q", format)
	}
}

// nodeName names this node in logs: its cluster address when it is a member (what other
// members' logs call it), else the host name.
func nodeName(o options) string {
	if o.clusterPort != 0 {
		return net.JoinHostPort(o.clusterHost, strconv.Itoa(o.clusterPort))
	}
	if h, err := os.Hostname(); err == nil {
		return h
	}
	return "presenced"
}
