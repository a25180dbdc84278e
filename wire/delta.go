package wire

// Presence is what a follower knows of one user.
type Presence struct {
	State    State
	Activity Activity // meaningful only when State != StateOffline
	Project  string
	Language string
	TS       int64 // last seen (ms since epoch); shown only while Offline; 0 = unknown
}

// Diff returns the frame that moves a follower from prev (known=false: nothing seen yet) to next,
// and false when the follower already sees next. It is the one delta rule of the protocol:
//   - offline → x, and x again when the last seen moved while already offline;
//   - offline or unknown → online/away: o with the whole state;
//   - online/away → online/away: u with only the differing fields ("" clears a field).
func Diff(id string, prev Presence, known bool, next Presence) (Frame, bool) {
	if next.State == StateOffline {
		if known && prev.State == StateOffline && prev.TS == next.TS {
			return nil, false
		}
		return Offline{ID: id, TS: next.TS}, true
	}
	if !known || prev.State == StateOffline {
		next.TS = 0
		return Online{ID: id, Presence: next}, true
	}
	u := Update{ID: id, State: next.State, Activity: next.Activity, Project: next.Project, Language: next.Language}
	if prev.State != next.State {
		u.Has |= FieldState
	}
	if prev.Activity != next.Activity {
		u.Has |= FieldActivity
	}
	if prev.Project != next.Project {
		u.Has |= FieldProject
	}
	if prev.Language != next.Language {
		u.Has |= FieldLanguage
	}
	if u.Has == 0 {
		return nil, false
	}
	return u, true
}

// Apply merges a server frame about one user into a client's view of it, the way a client should.
// It returns false for frames that are not about a user.
func Apply(view map[string]Presence, f Frame) bool {
	switch f := f.(type) {
	case Sync:
		// A sync lists every followed user: it replaces the view.
		clear(view)
		for _, u := range f.Users {
			view[u.Username] = u.Presence
		}
	case Online:
		view[f.ID] = f.Presence
	case Offline:
		view[f.ID] = Presence{State: StateOffline, TS: f.TS}
	case Update:
		p := view[f.ID]
		if f.Has&FieldState != 0 {
			p.State = f.State
		}
		if f.Has&FieldActivity != 0 {
			p.Activity = f.Activity
		}
		if f.Has&FieldProject != 0 {
			p.Project = f.Project
		}
		if f.Has&FieldLanguage != 0 {
			p.Language = f.Language
		}
		view[f.ID] = p
	default:
		return false
	}
	return true
}
