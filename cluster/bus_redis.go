package cluster

import (
	"context"
	"errors"
	"fmt"
	"net"
	"strings"
	"sync"
	"time"

	"github.com/redis/go-redis/v9"

	"github.com/presenced/presenced/metrics"
)

var _ Bus = (*RedisBus)(nil)

// RedisBus is the bus over Redis pub/sub: one PUBLISH per change on presence:<user>, and ONE
// subscription connection per node that carries every channel the node needs. Its reader
// goroutine hands each message to Deliver, which must not block: a slow reader would stall every
// channel of the node (go-redis queues nothing for us).
type RedisBus struct {
	rdb       *redis.Client
	ps        *redis.PubSub
	deliver   Deliver
	onResume  func()
	cancel    context.CancelFunc
	done      chan struct{}
	published uint64
	m         *metrics.Metrics

	mu   sync.Mutex
	down error // non-nil while the subscription connection is broken
}

// RedisBusOptions tune a RedisBus.
type RedisBusOptions struct {
	// OnResubscribed is called (on the reader goroutine; it must not block) when the subscription
	// connection came back after a failure: messages may have been lost while it was down, so
	// the node re-syncs its views.
	OnResubscribed func()
	// Metrics counts publishes, subscriptions and errors; nil counts nothing.
	Metrics *metrics.Metrics
}

// NewRedisBus starts the subscription reader. Close stops it.
func NewRedisBus(rdb *redis.Client, deliver Deliver, opt RedisBusOptions) *RedisBus {
	ctx, cancel := context.WithCancel(context.Background())
	b := &RedisBus{rdb: rdb, ps: rdb.Subscribe(ctx), deliver: deliver, onResume: opt.OnResubscribed, cancel: cancel, done: make(chan struct{}), m: opt.Metrics}
	go b.read(ctx)
	return b
}

func (b *RedisBus) Publish(ctx context.Context, user string, payload []byte) error {
	if err := b.rdb.Publish(ctx, Channel(user), payload).Err(); err != nil {
		b.m.RedisError("publish")
		return fmt.Errorf("bus: publish %s: %w", user, err)
	}
	b.m.RedisPublished()
	return nil
}

func (b *RedisBus) Subscribe(ctx context.Context, user string) error {
	if err := b.ps.Subscribe(ctx, Channel(user)); err != nil {
		// go-redis remembers the channel and subscribes again on reconnect, so the node keeps
		// working once Redis is back; the caller learns that it is degraded now.
		b.setDown(err)
		b.m.RedisError("subscribe")
		return fmt.Errorf("bus: subscribe %s: %w", user, err)
	}
	b.m.RedisSubscribed()
	return nil
}

func (b *RedisBus) Unsubscribe(ctx context.Context, user string) error {
	if err := b.ps.Unsubscribe(ctx, Channel(user)); err != nil {
		b.m.RedisError("unsubscribe")
		return fmt.Errorf("bus: unsubscribe %s: %w", user, err)
	}
	return nil
}

// Ready reports whether the subscription connection works.
func (b *RedisBus) Ready(context.Context) error {
	b.mu.Lock()
	defer b.mu.Unlock()
	if b.down != nil {
		return fmt.Errorf("bus: subscription connection down: %w", b.down)
	}
	return nil
}

// Close stops the reader and closes the subscription connection (not the client).
func (b *RedisBus) Close(context.Context) error {
	b.cancel()
	err := b.ps.Close()
	<-b.done
	return err
}

func (b *RedisBus) setDown(err error) {
	b.mu.Lock()
	if b.down == nil {
		b.down = err
	}
	b.mu.Unlock()
}

// read is the subscription reader: the only goroutine that reads the pub/sub connection.
func (b *RedisBus) read(ctx context.Context) {
	defer close(b.done)
	const health = 15 * time.Second
	backoff := 50 * time.Millisecond
	for {
		msg, err := b.ps.ReceiveTimeout(ctx, health)
		if ctx.Err() != nil {
			return
		}
		if err != nil {
			var ne net.Error
			if errors.As(err, &ne) && ne.Timeout() {
				// Quiet for a while: ping so a dead connection shows up as an error.
				if perr := b.ps.Ping(ctx); perr == nil {
					continue
				}
			}
			b.setDown(err)
			b.m.RedisError("receive")
			select {
			case <-ctx.Done():
				return
			case <-time.After(backoff):
			}
			backoff = min(2*backoff, 5*time.Second)
			// Probe: with no channels to resubscribe, the pong is what says the connection is back.
			_ = b.ps.Ping(ctx)
			continue
		}
		backoff = 50 * time.Millisecond
		switch m := msg.(type) {
		case *redis.Message:
			b.deliver(strings.TrimPrefix(m.Channel, "presence:"), []byte(m.Payload))
		case *redis.Subscription, *redis.Pong:
			b.mu.Lock()
			wasDown := b.down != nil
			b.down = nil
			b.mu.Unlock()
			if wasDown && b.onResume != nil {
				b.onResume()
			}
		}
	}
}
