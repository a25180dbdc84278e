package server

import "sync"

// signal is a done channel that exists only once someone waits for it. Every socket had two
// done channels for its whole life (96 bytes each) although they are waited on only while the
// socket ends; a signal is a lock and a flag until then.
type signal struct {
	mu   sync.Mutex
	ch   chan struct{} // made by the first wait
	done bool
}

// fire marks the signal done and wakes its waiters; later calls do nothing.
func (s *signal) fire() {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.done {
		return
	}
	s.done = true
	if s.ch != nil {
		close(s.ch)
	}
}

// wait returns a channel that is closed once fire has run (at once if it has).
func (s *signal) wait() <-chan struct{} {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.ch == nil {
		s.ch = make(chan struct{})
		if s.done {
			close(s.ch)
		}
	}
	return s.ch
}
