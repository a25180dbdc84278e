package cluster

import (
	"context"
	"fmt"
	"sync"
)

var _ Follows = (*MemoryFollows)(nil)

// MemoryFollows is the embedded single-node Follows. Lists live as long as the process (the
// TTL matters for Redis, whose memory is shared and long-lived).
type MemoryFollows struct {
	mu   sync.Mutex
	recs map[string][]byte
	sets map[string]map[string]struct{}
}

// NewMemoryFollows makes an empty cache.
func NewMemoryFollows() *MemoryFollows {
	return &MemoryFollows{recs: map[string][]byte{}, sets: map[string]map[string]struct{}{}}
}

func (m *MemoryFollows) LoadFollowing(_ context.Context, user string) ([]byte, error) {
	m.mu.Lock()
	defer m.mu.Unlock()
	rec, ok := m.recs[user]
	if !ok {
		return nil, fmt.Errorf("follows: %s: %w", user, ErrNotFound)
	}
	return rec, nil
}

func (m *MemoryFollows) SaveFollowing(_ context.Context, user string, rec []byte, ids []string) error {
	set := make(map[string]struct{}, len(ids))
	for _, id := range ids {
		set[id] = struct{}{}
	}
	m.mu.Lock()
	defer m.mu.Unlock()
	m.recs[user] = append([]byte(nil), rec...)
	m.sets[user] = set
	return nil
}

func (m *MemoryFollows) TouchFollowing(_ context.Context, user string, rec []byte) error {
	m.mu.Lock()
	defer m.mu.Unlock()
	m.recs[user] = append([]byte(nil), rec...)
	return nil
}

func (m *MemoryFollows) FollowedBy(_ context.Context, user string, candidates []string) ([]bool, error) {
	m.mu.Lock()
	defer m.mu.Unlock()
	out := make([]bool, len(candidates))
	for i, c := range candidates {
		_, out[i] = m.sets[c][user]
	}
	return out, nil
}
