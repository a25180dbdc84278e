package cluster

import (
	"context"
	"sync"
)

var _ Bus = (*MemoryBus)(nil)

// MemoryBus is the embedded single-node bus: Publish delivers synchronously, on the publisher's
// goroutine, to this node when it subscribes to the channel.
type MemoryBus struct {
	deliver Deliver
	mu      sync.RWMutex
	subs    map[string]struct{}
}

// NewMemoryBus returns a bus that hands deliveries to deliver.
func NewMemoryBus(deliver Deliver) *MemoryBus {
	return &MemoryBus{deliver: deliver, subs: map[string]struct{}{}}
}

func (b *MemoryBus) Publish(_ context.Context, user string, payload []byte) error {
	b.mu.RLock()
	_, ok := b.subs[user]
	b.mu.RUnlock()
	if ok {
		b.deliver(user, payload)
	}
	return nil
}

func (b *MemoryBus) Subscribe(_ context.Context, user string) error {
	b.mu.Lock()
	b.subs[user] = struct{}{}
	b.mu.Unlock()
	return nil
}

func (b *MemoryBus) Unsubscribe(_ context.Context, user string) error {
	b.mu.Lock()
	delete(b.subs, user)
	b.mu.Unlock()
	return nil
}
