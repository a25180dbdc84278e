package actors

import "iter"

// windowSet is a user's windows by id. A user has one window or a few: a slice costs a few
// words per window where a map allocates a whole group of 8 slots for the first, and a scan of
// a few entries is as fast as a lookup. The zero value is empty.
type windowSet struct {
	entries []windowEntry
}

type windowEntry struct {
	id string
	w  *window
}

func (s *windowSet) len() int { return len(s.entries) }

// get returns the window id, nil when there is none.
func (s *windowSet) get(id string) *window {
	for _, e := range s.entries {
		if e.id == id {
			return e.w
		}
	}
	return nil
}

// put sets window id to w.
func (s *windowSet) put(id string, w *window) {
	for i := range s.entries {
		if s.entries[i].id == id {
			s.entries[i].w = w
			return
		}
	}
	s.entries = append(s.entries, windowEntry{id, w})
}

// del removes window id, if there.
func (s *windowSet) del(id string) {
	for i := range s.entries {
		if s.entries[i].id == id {
			last := len(s.entries) - 1
			s.entries[i] = s.entries[last]
			s.entries[last] = windowEntry{}
			s.entries = s.entries[:last]
			if last == 0 {
				s.entries = nil // give the array back: an idle user actor may live on
			}
			return
		}
	}
}

// all yields the windows in no promised order; the set must not change while it yields.
func (s *windowSet) all() iter.Seq2[string, *window] {
	return func(yield func(string, *window) bool) {
		for _, e := range s.entries {
			if !yield(e.id, e.w) {
				return
			}
		}
	}
}
