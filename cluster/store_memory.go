package cluster

import (
	"context"
	"sync"
	"time"
)

var _ Store = (*MemoryStore)(nil)

// MemoryStore is the embedded single-node store. It copies what it is given so no caller can
// change a stored value behind its back.
type MemoryStore struct {
	mu       sync.RWMutex
	records  map[string][]byte
	presence map[string][]byte
	epochs   map[string]uint64 // newest epoch handed out
	leases   map[string]lease
}

type lease struct {
	epoch   uint64
	expires time.Time
}

// NewMemoryStore returns an empty store.
func NewMemoryStore() *MemoryStore {
	return &MemoryStore{records: map[string][]byte{}, presence: map[string][]byte{}, epochs: map[string]uint64{}, leases: map[string]lease{}}
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
	e := s.epochs[user]
	s.leases[user] = lease{e, time.Now().Add(LeaseTTL)}
	return e, nil
}

// hold checks (and extends) epoch's lease, with mu held: the same rule as the Redis scripts.
func (s *MemoryStore) hold(user string, epoch uint64) bool {
	l, ok := s.leases[user]
	if !ok || time.Now().After(l.expires) {
		switch last := s.epochs[user]; {
		case last == 0:
			s.epochs[user] = epoch // nobody ever acquired the user: the writer claims it
		case last != epoch:
			return false
		}
	} else if l.epoch != epoch {
		return false
	}
	s.leases[user] = lease{epoch, time.Now().Add(LeaseTTL)}
	return true
}

func (s *MemoryStore) RenewMany(_ context.Context, leases []Lease) ([]bool, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	fenced := make([]bool, len(leases))
	for i, l := range leases {
		fenced[i] = !s.hold(l.User, l.Epoch)
	}
	return fenced, nil
}

func (s *MemoryStore) SaveUser(_ context.Context, user string, epoch uint64, record, presence []byte) error {
	r, p := append([]byte(nil), record...), append([]byte(nil), presence...)
	s.mu.Lock()
	if !s.hold(user, epoch) {
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
