// Command presenced runs one presence node. With no Redis configured it is a complete single
// node with in-memory bus and store:
//
//	go run ./cmd/presenced --auth dev --graph examples/graph.json
//
// Every flag has an environment equivalent: --away-after is PRESENCED_AWAY_AFTER.
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
	"strings"
	"syscall"
	"time"

	"go.uber.org/zap"

	"github.com/presenced/presenced/actors"
	"github.com/presenced/presenced/auth"
	"github.com/presenced/presenced/cluster"
	"github.com/presenced/presenced/github"
	"github.com/presenced/presenced/server"
)

type options struct {
	listen       string
	authMode     string
	graph        string
	debounce     time.Duration
	awayAfter    time.Duration
	resumeWindow time.Duration
	logFormat    string
	redisURL     string
	clusterHost  string
	clusterPort  int
	amPort       int
	members      string
	shutdown     time.Duration
	githubAPI    string
	tokenTTL     time.Duration
	refresh      time.Duration
	set          map[string]bool // flags given on the command line or in the environment
}

func main() {
	if err := run(os.Args[1:]); err != nil {
		fmt.Fprintln(os.Stderr, "presenced:", err)
		os.Exit(1)
	}
}

func parse(args []string) (options, error) {
	d := actors.DefaultUserConfig()
	var o options
	fs := flag.NewFlagSet("presenced", flag.ContinueOnError)
	fs.StringVar(&o.listen, "listen", ":8080", "address for WebSockets (served at /ws)")
	fs.StringVar(&o.authMode, "auth", "github", "how hello tokens are checked: github or dev (dev: the token is the username; local use only)")
	fs.StringVar(&o.graph, "graph", "", "dev auth only: JSON file {\"bob\": [\"alice\"]} meaning bob follows alice")
	fs.DurationVar(&o.debounce, "debounce", d.Debounce, "changes are collected this long before followers get them")
	fs.DurationVar(&o.awayAfter, "away-after", d.AwayAfter, "no status frame for this long shows a user as Away")
	fs.DurationVar(&o.resumeWindow, "resume-window", d.ResumeWindow, "a dropped window may resume this long before followers see it go")
	fs.StringVar(&o.logFormat, "log-format", "console", "log format: console or json")
	fs.StringVar(&o.clusterHost, "cluster-host", "127.0.0.1", "cluster: the address other members reach this node at")
	fs.IntVar(&o.clusterPort, "cluster-port", 0, "cluster: actor remoting port; 0 runs a single node (needs --redis when set)")
	fs.IntVar(&o.amPort, "cluster-automanage-port", 0, "cluster: port of this member's automanaged membership endpoint (HTTP, all interfaces)")
	fs.StringVar(&o.members, "cluster-members", "", "cluster: comma-separated host:automanage-port of every member, this one included")
	fs.StringVar(&o.redisURL, "redis", "", "Redis URL (redis://host:port/db) for the bus and store; empty: embedded in-memory single node")
	fs.DurationVar(&o.shutdown, "shutdown-timeout", 10*time.Second, "how long a graceful shutdown may take")
	fs.StringVar(&o.githubAPI, "github-api", "https://api.github.com", "github auth: base URL of the GitHub REST API (GitHub Enterprise: https://HOST/api/v3)")
	fs.DurationVar(&o.tokenTTL, "github-token-ttl", 5*time.Minute, "github auth: a verified token is trusted this long before GET /user checks it again")
	fs.DurationVar(&o.refresh, "graph-refresh", 10*time.Minute, "how often a connected user's follow list is revalidated (ETag: unchanged pages cost no rate limit)")
	// Environment first, flags override: PRESENCED_<FLAG NAME, upper case, - as _>.
	var envErr error
	o.set = map[string]bool{}
	fs.VisitAll(func(f *flag.Flag) {
		key := "PRESENCED_" + strings.ToUpper(strings.ReplaceAll(f.Name, "-", "_"))
		if v, ok := os.LookupEnv(key); ok {
			o.set[f.Name] = true
			if err := f.Value.Set(v); err != nil && envErr == nil {
				envErr = fmt.Errorf("%s=%q: %w", key, v, err)
			}
		}
	})
	if envErr != nil {
		return o, envErr
	}
	if err := fs.Parse(args); err != nil {
		return o, err
	}
	fs.Visit(func(f *flag.Flag) { o.set[f.Name] = true })
	if o.debounce <= 0 || o.awayAfter <= 0 || o.resumeWindow <= 0 {
		return o, errors.New("--debounce, --away-after and --resume-window must be positive")
	}
	if o.tokenTTL <= 0 || o.refresh <= 0 {
		return o, errors.New("--github-token-ttl and --graph-refresh must be positive")
	}
	return o, nil
}

func run(args []string) error {
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
	cluster.SetRedisLogger(log)

	cfg, err := nodeConfig(o, log)
	if err != nil {
		return err
	}
	node, err := server.New(cfg)
	if err != nil {
		return err
	}
	ln, err := net.Listen("tcp", o.listen)
	if err != nil {
		return fmt.Errorf("listen on %s: %w (choose another with --listen)", o.listen, err)
	}
	log.Info("presenced listening", zap.String("addr", ln.Addr().String()), zap.String("path", "/ws"),
		zap.Duration("debounce", o.debounce), zap.Duration("away_after", o.awayAfter), zap.Duration("resume_window", o.resumeWindow),
		zap.Bool("redis", o.redisURL != "")) // the URL may hold a password: never logged

	ctx, stop := signal.NotifyContext(context.Background(), syscall.SIGINT, syscall.SIGTERM)
	defer stop()
	if o.authMode == "dev" {
		go warnDevAuth(ctx, log, time.Minute)
	}
	serveErr := make(chan error, 1)
	go func() { serveErr <- node.Serve(ln) }()
	select {
	case err := <-serveErr:
		return err
	case <-ctx.Done():
	}
	log.Info("shutting down: telling clients to resume elsewhere")
	// A fresh context: the signal one is already cancelled.
	sctx, cancel := context.WithTimeout(context.Background(), o.shutdown)
	defer cancel()
	if err := node.Shutdown(sctx); err != nil {
		return err
	}
	<-serveErr
	log.Info("stopped")
	return nil
}

// nodeConfig maps the options onto the node's config.
func nodeConfig(o options, log *zap.Logger) (server.Config, error) {
	cfg := server.Config{
		User:            actors.UserConfig{Debounce: o.debounce, AwayAfter: o.awayAfter, ResumeWindow: o.resumeWindow},
		Log:             log,
		RedisURL:        o.redisURL,
		RefreshInterval: o.refresh,
	}
	if o.clusterPort != 0 {
		if o.redisURL == "" {
			return cfg, errors.New("--cluster-port needs --redis: members share the bus and the store")
		}
		if o.amPort == 0 || o.members == "" {
			return cfg, errors.New("--cluster-port needs --cluster-automanage-port and --cluster-members")
		}
		cfg.Cluster = &server.ClusterConfig{Host: o.clusterHost, Port: o.clusterPort, AutoManagePort: o.amPort,
			Members: strings.Split(o.members, ",")}
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
		cfg.Auth = github.NewAuthenticator(client, github.AuthConfig{TTL: o.tokenTTL})
		cfg.Graph = github.NewGraph(client)
		log.Info("github auth", zap.String("api", o.githubAPI), zap.Duration("token_ttl", o.tokenTTL), zap.Duration("graph_refresh", o.refresh))
	default:
		return cfg, fmt.Errorf("--auth must be github or dev, not %q", o.authMode)
	}
	return cfg, nil
}

// warnDevAuth repeats the dev-auth warning every period until ctx ends: a dev server that
// was left running by mistake keeps saying so.
func warnDevAuth(ctx context.Context, log *zap.Logger, period time.Duration) {
	t := time.NewTicker(period)
	defer t.Stop()
	for {
		select {
		case <-ctx.Done():
			return
		case <-t.C:
			log.Warn("DEV AUTH is on: every hello token is taken as the username with no check. Never expose this server.")
		}
	}
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
