package server

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"net"
	"runtime"
	"sync"
	"syscall"
	"time"

	"github.com/asynkron/protoactor-go/actor"
	"go.uber.org/zap"
	"go.uber.org/zap/exp/zapslog"

	"github.com/presenced/presenced/actors"
	"github.com/presenced/presenced/cluster"
	"github.com/presenced/presenced/server/poll"
	"github.com/presenced/presenced/wire"
)

// ErrClosed: the node is shutting down and accepts no more connections.
var ErrClosed = errors.New("server: node closed")

// Node is one presenced process: its actor system, its seams and its sockets.
type Node struct {
	cfg       Config
	log       *zap.Logger
	system    *actor.ActorSystem
	deps      *actors.Deps
	placement *cluster.LocalPlacement // nil in a cluster
	cluster   *member                 // nil on a single node
	follows   *follows
	pollOnce  sync.Once
	poller    *poll.Poller // made by the first socket that can be polled; nil: goroutines read
	wpoller   *poll.Poller // made with the poller: writers of full sockets wait on it
	flusher   *flusher     // made with the poller: writes polled sockets' frames

	mu        sync.Mutex
	closed    bool
	listeners map[net.Listener]struct{}
	conns     map[*conn]struct{}            // for shutdown only; no delivery path walks it
	wg        sync.WaitGroup                // accept loops and connection goroutines
	closers   []func(context.Context) error // bus, then Redis client: run after the actors stop
}

// New builds a node. It starts no goroutines until Serve or ServeConn.
func New(cfg Config) (*Node, error) {
	if err := cfg.setDefaults(); err != nil {
		return nil, err
	}
	log := cfg.Log
	slogger := slog.New(zapslog.NewHandler(log.Named("actor").Core()))
	system := actor.NewActorSystem(actor.WithLoggerFactory(func(*actor.ActorSystem) *slog.Logger { return slogger }))
	actors.CompactRegistry(system) // before anything registers: about 230 bytes less a connection
	n := &Node{cfg: cfg, log: log, system: system, listeners: map[net.Listener]struct{}{}, conns: map[*conn]struct{}{}}
	var store cluster.Store = cluster.NewMemoryStore()
	var followStore cluster.Follows = cluster.NewMemoryFollows()
	newBus := func(d cluster.Deliver) cluster.Bus { return cluster.NewMemoryBus(d) }
	if cfg.RedisURL != "" {
		rdb, err := cluster.NewRedisClient(cluster.RedisConfig{URL: cfg.RedisURL})
		if err != nil {
			return nil, err
		}
		n.closers = append(n.closers, func(context.Context) error { return rdb.Close() })
		store = cluster.NewRedisStore(rdb, cfg.Metrics)
		followStore = cluster.NewRedisFollows(rdb, cfg.Metrics)
		newBus = func(d cluster.Deliver) cluster.Bus {
			b := cluster.NewRedisBus(rdb, d, cluster.RedisBusOptions{OnResubscribed: n.resync, Metrics: cfg.Metrics})
			n.closers = append([]func(context.Context) error{b.Close}, n.closers...)
			return b
		}
	}
	if cfg.Cluster == nil {
		// Actor addresses must tell nodes apart even without remoting: user records in a shared
		// store name the connection actors that hold windows, and another node's must read as
		// unreachable, not as a local actor that happens to have the same id.
		system.ProcessRegistry.Address = "local-" + actors.RandomToken()[:12]
		n.deps, n.placement = actors.NewLocalDeps(system, store, newBus, cfg.User, log)
		n.deps.Metrics = cfg.Metrics // before any actor starts: they read it unguarded
		n.deps.Fanout.StampFlush = cfg.StampFlush
		n.withFollows(followStore)
		n.withMetrics()
		return n, nil
	}
	if cfg.RedisURL == "" {
		return nil, errors.New("server: a cluster needs Redis (--redis) for the shared bus and store")
	}
	if err := cfg.Cluster.setDefaults(); err != nil {
		return nil, err
	}
	n.deps = actors.NewDeps(system, store, newBus, cfg.User, log)
	n.deps.Metrics = cfg.Metrics // before the cluster can start grains: they read it unguarded
	n.deps.Fanout.StampFlush = cfg.StampFlush
	c, err := startCluster(cfg.Cluster, system, n.deps, n.membersLeft)
	if err != nil {
		// The bus and the Redis client exist already: close them, or their goroutines outlive
		// the refused node.
		for _, cl := range n.closers {
			_ = cl(context.Background())
		}
		if !system.IsStopped() { // a member that did not join has shut its system down already
			system.Shutdown()
		}
		return nil, err
	}
	n.cluster = c
	n.deps.Placement = cluster.NewGrainPlacement(c.c, log)
	n.withFollows(followStore)
	n.withMetrics()
	return n, nil
}

func (n *Node) withFollows(store cluster.Follows) {
	n.deps.Follows = store
	n.follows = newFollows(&n.cfg, store, n.system.Root, n.deps.Deadlines, n.log)
	n.follows.place = func() cluster.Placement { return n.deps.Placement }
}

// Serve accepts sockets on ln until Shutdown or a permanent accept error.
func (n *Node) Serve(ln net.Listener) error {
	n.mu.Lock()
	if n.closed {
		n.mu.Unlock()
		return ErrClosed
	}
	n.listeners[ln] = struct{}{}
	n.wg.Add(1)
	n.mu.Unlock()
	defer n.wg.Done()
	var backoff time.Duration
	for {
		nc, err := ln.Accept()
		if err != nil {
			n.mu.Lock()
			closed := n.closed
			n.mu.Unlock()
			if closed {
				return ErrClosed
			}
			var ne net.Error
			if errors.As(err, &ne) && ne.Timeout() || errors.Is(err, syscall.EMFILE) || errors.Is(err, syscall.ENFILE) {
				backoff = min(max(2*backoff, 5*time.Millisecond), time.Second)
				n.log.Warn("accept failed; retrying", zap.Error(err), zap.Duration("backoff", backoff))
				time.Sleep(backoff)
				continue
			}
			return fmt.Errorf("server: accept: %w", err)
		}
		backoff = 0
		if err := n.ServeConn(nc); err != nil {
			_ = nc.Close()
		}
	}
}

// ServeConn serves one accepted connection (the WebSocket upgrade included) on its own
// goroutines and returns at once. Tests hand it in-memory pipes.
func (n *Node) ServeConn(nc net.Conn) error {
	c := newConn(n, nc)
	n.mu.Lock()
	if n.closed {
		n.mu.Unlock()
		return ErrClosed
	}
	n.conns[c] = struct{}{}
	n.wg.Add(1)
	n.mu.Unlock()
	go c.serve()
	return nil
}

// pollerFor returns the node's epoll poller for nc, made on first use (so a node on in-memory
// pipes, as in synctest, never starts one), or nil when nc cannot be polled: then a goroutine
// reads it.
func (n *Node) pollerFor(nc net.Conn) *poll.Poller {
	if _, ok := nc.(syscall.Conn); !ok {
		return nil
	}
	n.pollOnce.Do(func() {
		n.mu.Lock()
		defer n.mu.Unlock()
		if n.closed {
			return
		}
		p, err := poll.New(runtime.GOMAXPROCS(0))
		var wp *poll.Poller
		if err == nil {
			// One worker: a full socket's writer only needs a wake-up from it.
			if wp, err = poll.New(1); err != nil {
				_ = p.Close()
			}
		}
		if err != nil {
			n.log.Warn("epoll is not available: every socket gets a reader goroutine", zap.Error(err))
			return
		}
		n.poller, n.wpoller = p, wp
		n.flusher = newFlusher(runtime.GOMAXPROCS(0), max(n.cfg.WriteDelay, 0), wp)
	})
	return n.poller
}

// connDone is called once per connection served, when it is finished.
func (n *Node) connDone(c *conn) {
	n.mu.Lock()
	delete(n.conns, c)
	n.mu.Unlock()
	n.wg.Done()
}

// Stats is a snapshot of the node for operators and tests.
type Stats struct {
	Conns      int // open sockets
	UserActors int // active user actors
	Fanout     actors.FanoutStats
}

// Stats returns the node's counts.
func (n *Node) Stats() Stats {
	n.mu.Lock()
	conns := len(n.conns)
	n.mu.Unlock()
	users := 0
	if n.placement != nil {
		users = n.placement.Active()
	} else {
		users = int(n.cluster.c.GetClusterKind(cluster.UserKind).Count())
	}
	return Stats{Conns: conns, UserActors: users, Fanout: n.deps.Fanout.Stats()}
}

// Shutdown stops accepting, tells every client to resume elsewhere (error server_restart, close
// 1012) in batches at Config.DrainRate, waits for the sockets to finish (or ctx), then stops the
// actors. Pass a fresh context, not the cancelled signal one. Later calls return at once.
func (n *Node) Shutdown(ctx context.Context) error {
	n.mu.Lock()
	if n.closed {
		n.mu.Unlock()
		return nil // shut down already (or being shut down by another caller)
	}
	n.closed = true
	for ln := range n.listeners {
		_ = ln.Close()
	}
	conns := make([]*conn, 0, len(n.conns))
	for c := range n.conns {
		conns = append(conns, c)
	}
	n.mu.Unlock()
	n.drain(ctx, conns)
	done := make(chan struct{})
	go func() { n.wg.Wait(); close(done) }()
	var err error
	select {
	case <-done:
	case <-ctx.Done():
		err = fmt.Errorf("server: shutdown: %w", ctx.Err())
		n.mu.Lock()
		for c := range n.conns {
			c.closeSocket()
		}
		n.mu.Unlock()
		<-done
	}
	n.follows.close()
	n.pollOnce.Do(func() {}) // no poller is made from here on
	if n.poller != nil {
		_ = n.poller.Close()
		n.flusher.close() // every socket is finished: nothing is listed for a live one
		_ = n.wpoller.Close()
	}
	n.stopActors()
	for _, c := range n.closers {
		if cerr := c(ctx); cerr != nil && err == nil {
			err = fmt.Errorf("server: shutdown: %w", cerr)
		}
	}
	return err
}

// drainTick is how often a drain closes its next batch of sockets.
const drainTick = 50 * time.Millisecond

// drain tells every socket to resume elsewhere (error server_restart, close 1012) at
// cfg.DrainRate sockets per second, in batches every drainTick, so the nodes that take the
// resumes get a steady stream instead of every client at once. Once ctx is done the rest are
// told at once.
func (n *Node) drain(ctx context.Context, conns []*conn) {
	batch := max(1, n.cfg.DrainRate*int(drainTick)/int(time.Second))
	t := time.NewTimer(drainTick)
	defer t.Stop()
	for i := 0; i < len(conns); i += batch {
		if i > 0 {
			t.Reset(drainTick)
			select {
			case <-t.C:
			case <-ctx.Done():
				batch = len(conns) // out of time: the rest now
			}
		}
		for _, c := range conns[i:min(i+batch, len(conns))] {
			c.out.Close(wire.CloseServiceRestart, wire.ErrServerRestart, "server restarting: reconnect and resume")
		}
	}
}

// membersLeft wakes the users whose actors lived on members that left, so they rebuild on a
// survivor and their dead windows expire like any drop. One survivor does it (the one with the
// smallest address), and the store hands each member's users out once.
func (n *Node) membersLeft(self string, members, left []string) {
	for _, m := range members {
		if m < self {
			return
		}
	}
	gt, ok := n.deps.Store.(cluster.GrainTracker)
	if !ok {
		return
	}
	n.mu.Lock()
	if n.closed {
		n.mu.Unlock()
		return
	}
	n.wg.Add(1)
	n.mu.Unlock()
	go func() {
		defer n.wg.Done()
		ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
		defer cancel()
		for _, m := range left {
			users, err := gt.TakeOrphans(ctx, m)
			if err != nil {
				n.log.Error("reading the users of a departed member failed; they wake on their next message", zap.String("member", m), zap.Error(err))
				continue
			}
			n.log.Info("member left: waking its users on the survivors", zap.String("member", m), zap.Int("users", len(users)))
			for _, u := range users {
				n.deps.Placement.Send(u, actors.WakeEnvelope(), nil)
			}
		}
	}()
}

// resync runs after the bus lost and regained its subscriptions: messages may have been missed,
// so every local view re-reads the store and user actors write their state again.
func (n *Node) resync() {
	n.log.Info("bus resubscribed: rewriting user state and resyncing local views")
	n.deps.BroadcastUsers(actors.Republish{})
	n.deps.Fanout.Resync()
}

// Ready is the AND of: the cluster was joined (in a cluster), the store and the bus work.
func (n *Node) Ready(ctx context.Context) error {
	if n.cluster != nil && n.cluster.members.Load() == 0 {
		return errors.New("server: not a member of the cluster yet")
	}
	for _, c := range []any{n.deps.Store, n.deps.Bus} {
		if r, ok := c.(interface{ Ready(context.Context) error }); ok {
			if err := r.Ready(ctx); err != nil {
				return err
			}
		}
	}
	return nil
}

// stopActors stops the user actors once every connection actor has gone (each connection
// goroutine waits for its actor), then the actor system.
func (n *Node) stopActors() {
	defer n.deps.Close() // after the actors: user actors release their leases as they stop
	if n.cluster != nil {
		n.cluster.c.Shutdown(true) // leaves the cluster and shuts the actor system down
		return
	}
	n.placement.Close()
	n.system.Shutdown()
}
