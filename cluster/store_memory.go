package cluster

import (
	"context"
	"sync"
)

var _ Store = (*MemoryStore)(nil)

// MemoryStore is the embedded single-node store. It copies what it is given so no caller can
// change a stored value behind its back.
type MemoryStore struct {
	mu       sync.RWMutex
	records  map[string][]byte
	presence map[string][]byte
	epochs   map[string]uint64
}

// NewMemoryStore returns an empty store.
func NewMemoryStore() *MemoryStore {
	return &MemoryStore{records: map[string][]byte{}, presence: map[string][]byte{}, epochs: map[string]uint64{}}
}

func (s *MemoryStore) LoadUser(_ context.Context, user string) ([]byte, error) {
	s.mu.RLock()
	defer s.mu.RUnlock()
	r, ok := s.records[user]
	if !ok {
		return nil, ErrNotFound
	}
	return append([]byte(nil), r...), nil
}

func (s *MemoryStore) Acquire(_ context.Context, user string) (uint64, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.epochs[user]++
	return s.epochs[user], nil
}

func (s *MemoryStore) SaveUser(_ context.Context, user string, epoch uint64, record, presence []byte) error {
	r, p := append([]byte(nil), record...), append([]byte(nil), presence...)
	s.mu.Lock()
	if cur := s.epochs[user]; cur == 0 {
		s.epochs[user] = epoch // no activation acquired the user: the first writer claims it
	} else if cur != epoch {
		s.mu.Unlock()
		return ErrFenced
	}
	s.records[user] = r
	s.presence[user] = p
	s.mu.Unlock()
	return nil
}

func (s *MemoryStore) Presences(_ context.Context, users []string) ([][]byte, error) {
	out := make([][]byte, len(users))
	s.mu.RLock()
	defer s.mu.RUnlock()
	for i, u := range users {
		if p, ok := s.presence[u]; ok {
			out[i] = append([]byte(nil), p...)
		}
	}
	return out, nil
}
