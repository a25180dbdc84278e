package wire_test

import (
	"fmt"
	"maps"
	"math/rand/v2"
	"reflect"
	"testing"

	"github.com/presenced/presenced/wire"
)

var (
	pOnline = func(a wire.Activity, p, l string) wire.Presence {
		return wire.Presence{State: wire.StateOnline, Activity: a, Project: p, Language: l}
	}
	pAway = func(a wire.Activity, p, l string) wire.Presence {
		return wire.Presence{State: wire.StateAway, Activity: a, Project: p, Language: l}
	}
	pOffline = func(ts int64) wire.Presence { return wire.Presence{State: wire.StateOffline, TS: ts} }
)

func TestDiff(t *testing.T) {
	cases := []struct {
		name  string
		prev  wire.Presence
		known bool
		next  wire.Presence
		want  wire.Frame // nil: nothing to send
		wire  string     // the encoded frame
	}{
		// → offline
		{"unknown → offline with ts", wire.Presence{}, false, pOffline(100),
			wire.Offline{ID: "alice", TS: 100}, `{"t":"x","id":"alice","ts":100}`},
		{"unknown → offline without ts", wire.Presence{}, false, pOffline(0),
			wire.Offline{ID: "alice"}, `{"t":"x","id":"alice"}`},
		{"online → offline", pOnline(wire.Coding, "MyApp", "Go"), true, pOffline(100),
			wire.Offline{ID: "alice", TS: 100}, `{"t":"x","id":"alice","ts":100}`},
		{"away → offline", pAway(wire.Idle, "", ""), true, pOffline(100),
			wire.Offline{ID: "alice", TS: 100}, `{"t":"x","id":"alice","ts":100}`},
		{"online → offline without ts", pOnline(wire.Idle, "", ""), true, pOffline(0),
			wire.Offline{ID: "alice"}, `{"t":"x","id":"alice"}`},
		{"offline → offline same ts", pOffline(100), true, pOffline(100), nil, ""},
		{"offline → offline same ts, other fields ignored", wire.Presence{State: wire.StateOffline, Activity: wire.Coding, Project: "a", TS: 100}, true,
			wire.Presence{State: wire.StateOffline, Activity: wire.Idle, Language: "b", TS: 100}, nil, ""},
		{"offline → offline new ts", pOffline(100), true, pOffline(200),
			wire.Offline{ID: "alice", TS: 200}, `{"t":"x","id":"alice","ts":200}`},
		{"offline → offline ts lost", pOffline(100), true, pOffline(0),
			wire.Offline{ID: "alice"}, `{"t":"x","id":"alice"}`},
		{"offline without ts → offline with ts", pOffline(0), true, pOffline(100),
			wire.Offline{ID: "alice", TS: 100}, `{"t":"x","id":"alice","ts":100}`},

		// unknown or offline → online/away
		{"unknown → online", wire.Presence{}, false, pOnline(wire.Coding, "MyApp", "Go"),
			wire.Online{ID: "alice", Presence: pOnline(wire.Coding, "MyApp", "Go")}, `{"t":"o","id":"alice","s":"Online","a":"Coding","p":"MyApp","l":"Go"}`},
		{"unknown → online drops ts", wire.Presence{}, false, wire.Presence{State: wire.StateOnline, Activity: wire.Idle, TS: 100},
			wire.Online{ID: "alice", Presence: pOnline(wire.Idle, "", "")}, `{"t":"o","id":"alice","s":"Online","a":"Idle"}`},
		{"unknown → away", wire.Presence{}, false, pAway(wire.Idle, "", "Go"),
			wire.Online{ID: "alice", Presence: pAway(wire.Idle, "", "Go")}, `{"t":"o","id":"alice","s":"Away","a":"Idle","l":"Go"}`},
		{"offline → online", pOffline(100), true, pOnline(wire.Debugging, "MyApp", ""),
			wire.Online{ID: "alice", Presence: pOnline(wire.Debugging, "MyApp", "")}, `{"t":"o","id":"alice","s":"Online","a":"Debugging","p":"MyApp"}`},
		{"prev is ignored when unknown", pOnline(wire.Coding, "MyApp", "Go"), false, pOnline(wire.Coding, "MyApp", "Go"),
			wire.Online{ID: "alice", Presence: pOnline(wire.Coding, "MyApp", "Go")}, `{"t":"o","id":"alice","s":"Online","a":"Coding","p":"MyApp","l":"Go"}`},

		// online/away → online/away
		{"online → online activity only", pOnline(wire.Coding, "MyApp", "Go"), true, pOnline(wire.Debugging, "MyApp", "Go"),
			wire.Update{ID: "alice", Has: wire.FieldActivity, State: wire.StateOnline, Activity: wire.Debugging, Project: "MyApp", Language: "Go"},
			`{"t":"u","id":"alice","a":"Debugging"}`},
		{"online → online project only", pOnline(wire.Coding, "MyApp", "Go"), true, pOnline(wire.Coding, "Other", "Go"),
			wire.Update{ID: "alice", Has: wire.FieldProject, State: wire.StateOnline, Activity: wire.Coding, Project: "Other", Language: "Go"},
			`{"t":"u","id":"alice","p":"Other"}`},
		{"online → online language only", pOnline(wire.Coding, "MyApp", "Go"), true, pOnline(wire.Coding, "MyApp", "Rust"),
			wire.Update{ID: "alice", Has: wire.FieldLanguage, State: wire.StateOnline, Activity: wire.Coding, Project: "MyApp", Language: "Rust"},
			`{"t":"u","id":"alice","l":"Rust"}`},
		{"online → online project cleared", pOnline(wire.Coding, "MyApp", "Go"), true, pOnline(wire.Coding, "", "Go"),
			wire.Update{ID: "alice", Has: wire.FieldProject, State: wire.StateOnline, Activity: wire.Coding, Language: "Go"},
			`{"t":"u","id":"alice","p":""}`},
		{"online → online several fields", pOnline(wire.Coding, "MyApp", "Go"), true, pOnline(wire.Idle, "", "Rust"),
			wire.Update{ID: "alice", Has: wire.FieldActivity | wire.FieldProject | wire.FieldLanguage, State: wire.StateOnline, Activity: wire.Idle, Language: "Rust"},
			`{"t":"u","id":"alice","a":"Idle","p":"","l":"Rust"}`},
		{"online → online no change", pOnline(wire.Coding, "MyApp", "Go"), true, pOnline(wire.Coding, "MyApp", "Go"), nil, ""},
		{"online → online only ts differs", wire.Presence{State: wire.StateOnline, Activity: wire.Coding, TS: 1}, true,
			wire.Presence{State: wire.StateOnline, Activity: wire.Coding, TS: 2}, nil, ""},
		{"online → away", pOnline(wire.Coding, "MyApp", "Go"), true, pAway(wire.Coding, "MyApp", "Go"),
			wire.Update{ID: "alice", Has: wire.FieldState, State: wire.StateAway, Activity: wire.Coding, Project: "MyApp", Language: "Go"},
			`{"t":"u","id":"alice","s":"Away"}`},
		{"away → online", pAway(wire.Coding, "MyApp", "Go"), true, pOnline(wire.Coding, "MyApp", "Go"),
			wire.Update{ID: "alice", Has: wire.FieldState, State: wire.StateOnline, Activity: wire.Coding, Project: "MyApp", Language: "Go"},
			`{"t":"u","id":"alice","s":"Online"}`},
		{"away → online with new activity", pAway(wire.Idle, "MyApp", "Go"), true, pOnline(wire.Coding, "MyApp", "Go"),
			wire.Update{ID: "alice", Has: wire.FieldState | wire.FieldActivity, State: wire.StateOnline, Activity: wire.Coding, Project: "MyApp", Language: "Go"},
			`{"t":"u","id":"alice","s":"Online","a":"Coding"}`},
		{"away → away no change", pAway(wire.Idle, "", ""), true, pAway(wire.Idle, "", ""), nil, ""},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			got, ok := wire.Diff("alice", tc.prev, tc.known, tc.next)
			if ok != (tc.want != nil) || !reflect.DeepEqual(got, tc.want) {
				t.Fatalf("Diff = %#v, %v; want %#v, %v", got, ok, tc.want, tc.want != nil)
			}
			if tc.want != nil {
				if enc := string(wire.Encode(got)); enc != tc.wire {
					t.Fatalf("Encode(Diff) = %s, want %s", enc, tc.wire)
				}
			}
		})
	}
}

func TestApply(t *testing.T) {
	carol := pOffline(1703789400000)
	cases := []struct {
		name   string
		view   map[string]wire.Presence
		f      wire.Frame
		want   map[string]wire.Presence
		wantOK bool
	}{
		{"sync replaces the whole view",
			map[string]wire.Presence{"alice": pOnline(wire.Debugging, "Old", "Old"), "zed": pAway(wire.Idle, "", "")},
			wire.Sync{Users: []wire.SyncUser{
				{Username: "alice", Presence: pOnline(wire.Coding, "", "")},
				{Username: "carol", Presence: carol},
			}},
			map[string]wire.Presence{"alice": pOnline(wire.Coding, "", ""), "carol": carol}, true},
		{"empty sync", map[string]wire.Presence{"alice": carol}, wire.Sync{},
			map[string]wire.Presence{}, true},
		{"o sets the whole state",
			map[string]wire.Presence{"alice": {State: wire.StateOffline, Project: "stale", TS: 5}},
			wire.Online{ID: "alice", Presence: pAway(wire.Idle, "", "Go")},
			map[string]wire.Presence{"alice": pAway(wire.Idle, "", "Go")}, true},
		{"o for a new user",
			map[string]wire.Presence{},
			wire.Online{ID: "bob", Presence: pOnline(wire.Coding, "MyApp", "")},
			map[string]wire.Presence{"bob": pOnline(wire.Coding, "MyApp", "")}, true},
		{"x marks offline with ts and forgets the rest",
			map[string]wire.Presence{"alice": pOnline(wire.Coding, "MyApp", "Go"), "bob": pOnline(wire.Idle, "", "")},
			wire.Offline{ID: "alice", TS: 100},
			map[string]wire.Presence{"alice": pOffline(100), "bob": pOnline(wire.Idle, "", "")}, true},
		{"x without ts", map[string]wire.Presence{"alice": pOffline(100)}, wire.Offline{ID: "alice"},
			map[string]wire.Presence{"alice": pOffline(0)}, true},
		{"u overwrites only the listed fields",
			map[string]wire.Presence{"alice": pOnline(wire.Coding, "MyApp", "Go")},
			wire.Update{ID: "alice", Has: wire.FieldActivity, State: wire.StateAway, Activity: wire.Debugging, Project: "ignored", Language: "ignored"},
			map[string]wire.Presence{"alice": pOnline(wire.Debugging, "MyApp", "Go")}, true},
		{"u clears a field",
			map[string]wire.Presence{"alice": pOnline(wire.Coding, "MyApp", "Go")},
			wire.Update{ID: "alice", Has: wire.FieldProject | wire.FieldLanguage},
			map[string]wire.Presence{"alice": pOnline(wire.Coding, "", "")}, true},
		{"u state",
			map[string]wire.Presence{"alice": pOnline(wire.Coding, "MyApp", "Go")},
			wire.Update{ID: "alice", Has: wire.FieldState, State: wire.StateAway},
			map[string]wire.Presence{"alice": pAway(wire.Coding, "MyApp", "Go")}, true},
		{"u all fields",
			map[string]wire.Presence{"alice": pAway(wire.Idle, "", "")},
			wire.Update{ID: "alice", Has: wire.FieldState | wire.FieldActivity | wire.FieldProject | wire.FieldLanguage, State: wire.StateOnline, Activity: wire.Coding, Project: "p", Language: "l"},
			map[string]wire.Presence{"alice": pOnline(wire.Coding, "p", "l")}, true},
		{"welcome is not about a user", map[string]wire.Presence{"alice": carol}, wire.Welcome{ID: "alice"},
			map[string]wire.Presence{"alice": carol}, false},
		{"pong is not about a user", map[string]wire.Presence{}, wire.Pong{}, map[string]wire.Presence{}, false},
		{"error is not about a user", map[string]wire.Presence{}, wire.ErrorFrame{Code: "x"}, map[string]wire.Presence{}, false},
		{"client frames are not about a user", map[string]wire.Presence{}, wire.Status{Has: wire.FieldActivity}, map[string]wire.Presence{}, false},
		{"nil frame", map[string]wire.Presence{}, nil, map[string]wire.Presence{}, false},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			view := maps.Clone(tc.view)
			if ok := wire.Apply(view, tc.f); ok != tc.wantOK {
				t.Fatalf("Apply = %v, want %v", ok, tc.wantOK)
			}
			if !reflect.DeepEqual(view, tc.want) {
				t.Fatalf("view = %#v\nwant %#v", view, tc.want)
			}
		})
	}
}

// same says whether a follower's view v shows presence p: offline presences compare by State and
// TS only, online and away ones by State, Activity, Project and Language.
func viewShows(v, p wire.Presence) bool {
	if p.State == wire.StateOffline {
		return v.State == wire.StateOffline && v.TS == p.TS
	}
	return v.State == p.State && v.Activity == p.Activity && v.Project == p.Project && v.Language == p.Language
}

func randomPresence(r *rand.Rand) wire.Presence {
	texts := []string{"", "", "MyApp", "Other", "é\"\\\n😀"}
	return wire.Presence{
		State:    wire.State(r.IntN(3)),
		Activity: wire.Activity(r.IntN(3)),
		Project:  texts[r.IntN(len(texts))],
		Language: texts[r.IntN(len(texts))],
		TS:       []int64{0, 100, 200, 1703789400000}[r.IntN(4)],
	}
}

// TestDiffApplyProperty: for random sequences of presences of a few users, the frames Diff emits,
// applied with Apply (directly and after an encode/decode round trip), always make the client's
// view show the latest presence, and Diff stays silent exactly when the view already shows it.
func TestDiffApplyProperty(t *testing.T) {
	r := rand.New(rand.NewPCG(3, 4))
	ids := []string{"alice", "bob", "carol"}
	for seq := range 2000 {
		sent := map[string]wire.Presence{} // what the server last sent per user
		direct := map[string]wire.Presence{}
		decoded := map[string]wire.Presence{}
		var trace []string
		for step := range 1 + r.IntN(30) {
			id := ids[r.IntN(len(ids))]
			prev, known := sent[id]
			next := randomPresence(r)
			f, ok := wire.Diff(id, prev, known, next)
			trace = append(trace, fmt.Sprintf("%s %+v → %v", id, next, string(wire.Encode(f))))
			fail := func(format string, args ...any) {
				t.Helper()
				t.Fatalf("sequence %d step %d: %s\ntrace:\n%v", seq, step, fmt.Sprintf(format, args...), trace)
			}
			if !ok {
				if f != nil {
					fail("Diff returned frame %#v with false", f)
				}
				if !known || !viewShows(direct[id], next) {
					fail("Diff sent nothing but the view shows %+v, want %+v", direct[id], next)
				}
			} else {
				if known && viewShows(direct[id], next) {
					fail("Diff sent %#v but the view already shows %+v", f, next)
				}
				if u, isU := f.(wire.Update); isU {
					// Only the differing fields, and at least one.
					v := direct[id]
					diff := wire.Fields(0)
					if v.State != next.State {
						diff |= wire.FieldState
					}
					if v.Activity != next.Activity {
						diff |= wire.FieldActivity
					}
					if v.Project != next.Project {
						diff |= wire.FieldProject
					}
					if v.Language != next.Language {
						diff |= wire.FieldLanguage
					}
					if u.Has != diff || diff == 0 {
						fail("u carries fields %04b, want exactly the differing ones %04b", u.Has, diff)
					}
				}
				if !wire.Apply(direct, f) {
					fail("Apply(%#v) = false", f)
				}
				g, err := wire.DecodeServer(wire.Encode(f))
				if err != nil {
					fail("DecodeServer(Encode(%#v)): %v", f, err)
				}
				if !wire.Apply(decoded, g) {
					fail("Apply(%#v) = false", g)
				}
			}
			sent[id] = next
			if !viewShows(direct[id], next) {
				fail("view shows %+v, want %+v", direct[id], next)
			}
			if !viewShows(decoded[id], next) {
				fail("view through the wire shows %+v, want %+v", decoded[id], next)
			}
		}
	}
}
