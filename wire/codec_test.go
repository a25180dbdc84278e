package wire

import (
	"bytes"
	"encoding/json"
	"errors"
	"fmt"
	"math"
	"math/rand/v2"
	"reflect"
	"strings"
	"testing"
	"unicode/utf8"
)

// frameOfSize returns a valid ping frame of exactly n bytes (n ≥ 23), padded in an ignored field.
func frameOfSize(n int) []byte {
	const head, tail = `{"t":"ping","pad":"`, `"}`
	return []byte(head + strings.Repeat("x", n-len(head)-len(tail)) + tail)
}

func TestDecodeValid(t *testing.T) {
	cases := []struct {
		name string
		in   string
		want Frame
	}{
		// hello
		{"hello token only", `{"t":"hello","token":"tok"}`, Hello{Token: "tok"}},
		{"hello with window", `{"t":"hello","token":"tok","window":"w1"}`, Hello{Token: "tok", Window: "w1"}},
		{"hello with resume", `{"t":"hello","token":"tok","resume":"r1"}`, Hello{Token: "tok", Resume: "r1"}},
		{"hello with window and resume", `{"t":"hello","token":"tok","window":"w1","resume":"r1"}`, Hello{Token: "tok", Window: "w1", Resume: "r1"}},
		{"hello fields in any order", `{"resume":"r1","window":"w1","token":"tok","t":"hello"}`, Hello{Token: "tok", Window: "w1", Resume: "r1"}},
		{"hello empty window and resume", `{"t":"hello","token":"tok","window":"","resume":""}`, Hello{Token: "tok"}},
		{"hello null window and resume", `{"t":"hello","token":"tok","window":null,"resume":null}`, Hello{Token: "tok"}},
		{"hello escaped token", `{"t":"hello","token":"a\"b\\c\u00e9\n"}`, Hello{Token: "a\"b\\cé\n"}},
		{"hello token at limit", `{"t":"hello","token":"` + strings.Repeat("t", 256) + `"}`, Hello{Token: strings.Repeat("t", 256)}},
		{"hello window at limit", `{"t":"hello","token":"tok","window":"` + strings.Repeat("w", 64) + `"}`, Hello{Token: "tok", Window: strings.Repeat("w", 64)}},
		{"hello resume at limit", `{"t":"hello","token":"tok","resume":"` + strings.Repeat("r", 128) + `"}`, Hello{Token: "tok", Resume: strings.Repeat("r", 128)}},

		// status: every subset of a/p/l
		{"status empty", `{"t":"status"}`, Status{}},
		{"status a", `{"t":"status","a":"Coding"}`, Status{Has: FieldActivity, Activity: Coding}},
		{"status a Idle", `{"t":"status","a":"Idle"}`, Status{Has: FieldActivity, Activity: Idle}},
		{"status a Debugging", `{"t":"status","a":"Debugging"}`, Status{Has: FieldActivity, Activity: Debugging}},
		{"status p", `{"t":"status","p":"MyApp"}`, Status{Has: FieldProject, Project: "MyApp"}},
		{"status l", `{"t":"status","l":"Go"}`, Status{Has: FieldLanguage, Language: "Go"}},
		{"status a p", `{"t":"status","a":"Coding","p":"MyApp"}`, Status{Has: FieldActivity | FieldProject, Activity: Coding, Project: "MyApp"}},
		{"status a l", `{"t":"status","a":"Debugging","l":"Go"}`, Status{Has: FieldActivity | FieldLanguage, Activity: Debugging, Language: "Go"}},
		{"status p l", `{"t":"status","p":"MyApp","l":"Go"}`, Status{Has: FieldProject | FieldLanguage, Project: "MyApp", Language: "Go"}},
		{"status a p l", `{"t":"status","a":"Coding","p":"MyApp","l":"TypeScript"}`,
			Status{Has: FieldActivity | FieldProject | FieldLanguage, Activity: Coding, Project: "MyApp", Language: "TypeScript"}},
		{"status p clears", `{"t":"status","p":""}`, Status{Has: FieldProject}},
		{"status l clears", `{"t":"status","l":""}`, Status{Has: FieldLanguage}},
		{"status p and l clear", `{"t":"status","a":"Idle","p":"","l":""}`, Status{Has: FieldActivity | FieldProject | FieldLanguage, Activity: Idle}},
		{"status null counts as absent", `{"t":"status","a":null,"p":null,"l":null}`, Status{}},
		{"status p at limit", `{"t":"status","p":"` + strings.Repeat("p", 128) + `"}`, Status{Has: FieldProject, Project: strings.Repeat("p", 128)}},
		{"status l at limit", `{"t":"status","l":"` + strings.Repeat("l", 32) + `"}`, Status{Has: FieldLanguage, Language: strings.Repeat("l", 32)}},
		{"status p at limit in multibyte runes", `{"t":"status","p":"` + strings.Repeat("é", 64) + `"}`, Status{Has: FieldProject, Project: strings.Repeat("é", 64)}},
		{"status p limit counts decoded bytes", `{"t":"status","p":"` + strings.Repeat(`\u0041`, 128) + `"}`, Status{Has: FieldProject, Project: strings.Repeat("A", 128)}},

		// invisible, ping, bye
		{"invisible on", `{"t":"invisible","on":true}`, Invisible{On: true}},
		{"invisible off", `{"t":"invisible","on":false}`, Invisible{On: false}},
		{"privacy mutual", `{"t":"privacy","visible_to":"mutual"}`, Privacy{Has: PrivacyVisibleTo, VisibleTo: AudienceMutual}},
		{"privacy fields", `{"t":"privacy","share_project":false,"share_language":true}`,
			Privacy{Has: PrivacyShareProject | PrivacyShareLanguage, ShareLanguage: true}},
		{"privacy all", `{"t":"privacy","visible_to":"followers","share_project":true,"share_language":false}`,
			Privacy{Has: PrivacyVisibleTo | PrivacyShareProject | PrivacyShareLanguage, VisibleTo: AudienceFollowers, ShareProject: true}},
		{"ping", `{"t":"ping"}`, Ping{}},
		{"bye", `{"t":"bye"}`, Bye{}},
		{"whitespace around", " \t\r\n{ \"t\" : \"ping\" }\n", Ping{}},

		// unknown fields are ignored (older servers accept newer clients), including fields that
		// only server frames carry and fields of other client frames
		{"unknown field", `{"t":"ping","x":1}`, Ping{}},
		{"unknown nested field", `{"t":"status","a":"Coding","future":{"nested":[1,{"a":2}]}}`, Status{Has: FieldActivity, Activity: Coding}},
		{"server-only fields of any type", `{"t":"bye","id":7,"s":false,"ts":"x","users":5,"resumed":"no","code":[],"msg":{}}`, Bye{}},
		{"status with on", `{"t":"status","on":true}`, Status{}},
		{"ping with token", `{"t":"ping","token":"tok"}`, Ping{}},
		{"duplicate key: last wins", `{"t":"status","a":"Coding","a":"Idle"}`, Status{Has: FieldActivity, Activity: Idle}},
		{"frame of exactly 4096 bytes", string(frameOfSize(MaxFrameBytes)), Ping{}},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			got, err := Decode([]byte(tc.in))
			if err != nil {
				t.Fatalf("Decode(%q) error %v", tc.in, err)
			}
			if got != tc.want {
				t.Fatalf("Decode(%q) = %#v, want %#v", tc.in, got, tc.want)
			}
		})
	}
}

func TestDecodeInvalid(t *testing.T) {
	bad := func(msg string) Error { return Error{Code: ErrBadFrame, Msg: msg, Close: CloseInvalidPayload} }
	cases := []struct {
		name string
		in   string
		want Error
	}{
		// not JSON, not an object
		{"not JSON", `garbage`, bad("not a JSON object: invalid character 'g' looking for beginning of value")},
		{"empty", ``, bad("not a JSON object: unexpected end of JSON input")},
		{"truncated", `{"t":"ping"`, bad("not a JSON object: unexpected end of JSON input")},
		{"unquoted key", `{t:"ping"}`, bad("not a JSON object: invalid character 't' looking for beginning of object key string")},
		{"trailing comma", `{"t":"ping",}`, bad("not a JSON object: invalid character '}' looking for beginning of object key string")},
		{"two objects", `{"t":"ping"}{"t":"ping"}`, bad("not a JSON object: invalid character '{' after top-level value")},
		{"JSON array", `[{"t":"ping"}]`, bad("not a JSON object: got array")},
		{"empty JSON array", `[]`, bad("not a JSON object: got array")},
		{"JSON string", `"ping"`, bad("not a JSON object: got string")},
		{"JSON number", `42`, bad("not a JSON object: got number")},
		{"JSON bool", `true`, bad("not a JSON object: got bool")},

		// t
		{"JSON null", `null`, bad(`missing field "t"`)},
		{"missing t", `{}`, bad(`missing field "t"`)},
		{"missing t with fields", `{"token":"tok"}`, bad(`missing field "t"`)},
		{"null t", `{"t":null}`, bad(`missing field "t"`)},
		{"t wrong type", `{"t":5}`, bad(`field "t" has the wrong type (want string)`)},
		{"unknown t", `{"t":"dance"}`, bad(`unknown frame type "dance"`)},
		{"empty t", `{"t":""}`, bad(`unknown frame type ""`)},
		{"t is case-sensitive", `{"t":"Ping"}`, bad(`unknown frame type "Ping"`)},
		{"server frame t", `{"t":"pong"}`, bad(`unknown frame type "pong"`)},
		{"long t truncated", `{"t":"` + strings.Repeat("d", 40) + `"}`, bad(`unknown frame type "` + strings.Repeat("d", 32) + `…"`)},
		{"long t truncated on a rune boundary", `{"t":"a` + strings.Repeat("é", 20) + `"}`, bad(`unknown frame type "a` + strings.Repeat("é", 15) + `…"`)},

		// wrong types
		{"a number", `{"t":"status","a":1}`, bad(`field "a" has the wrong type (want string)`)},
		{"a bool", `{"t":"status","a":true}`, bad(`field "a" has the wrong type (want string)`)},
		{"a array", `{"t":"status","a":["Coding"]}`, bad(`field "a" has the wrong type (want string)`)},
		{"p number", `{"t":"status","p":5}`, bad(`field "p" has the wrong type (want string)`)},
		{"l object", `{"t":"status","l":{}}`, bad(`field "l" has the wrong type (want string)`)},
		{"on string", `{"t":"invisible","on":"yes"}`, bad(`field "on" has the wrong type (want bool)`)},
		{"on number", `{"t":"invisible","on":1}`, bad(`field "on" has the wrong type (want bool)`)},
		{"token number", `{"t":"hello","token":5}`, bad(`field "token" has the wrong type (want string)`)},
		{"window number", `{"t":"hello","token":"tok","window":5}`, bad(`field "window" has the wrong type (want string)`)},
		{"resume bool", `{"t":"hello","token":"tok","resume":false}`, bad(`field "resume" has the wrong type (want string)`)},
		{"client field of another frame is still typed", `{"t":"ping","token":5}`, bad(`field "token" has the wrong type (want string)`)},

		// bad enums
		{"a lowercase", `{"t":"status","a":"coding"}`, bad(`field "a" must be one of Coding, Debugging, Idle, not "coding"`)},
		{"a unknown", `{"t":"status","a":"Sleeping"}`, bad(`field "a" must be one of Coding, Debugging, Idle, not "Sleeping"`)},
		{"a empty does not clear", `{"t":"status","a":""}`, bad(`field "a" must be one of Coding, Debugging, Idle, not ""`)},
		{"a checked before p", `{"t":"status","a":"x","p":"` + strings.Repeat("p", 129) + `"}`, bad(`field "a" must be one of Coding, Debugging, Idle, not "x"`)},

		// over-long fields
		{"p 129 bytes", `{"t":"status","p":"` + strings.Repeat("p", 129) + `"}`, bad(`field "p" is 129 bytes, over the limit of 128`)},
		{"p 129 bytes multibyte", `{"t":"status","p":"` + strings.Repeat("é", 64) + `x"}`, bad(`field "p" is 129 bytes, over the limit of 128`)},
		{"l 33 bytes", `{"t":"status","l":"` + strings.Repeat("l", 33) + `"}`, bad(`field "l" is 33 bytes, over the limit of 32`)},
		{"window 65 bytes", `{"t":"hello","token":"tok","window":"` + strings.Repeat("w", 65) + `"}`, bad(`field "window" is 65 bytes, over the limit of 64`)},
		{"token 257 bytes", `{"t":"hello","token":"` + strings.Repeat("t", 257) + `"}`, bad(`field "token" is 257 bytes, over the limit of 256`)},
		{"resume 129 bytes", `{"t":"hello","token":"tok","resume":"` + strings.Repeat("r", 129) + `"}`, bad(`field "resume" is 129 bytes, over the limit of 128`)},
		{"invalid UTF-8 counts as U+FFFD", `{"t":"status","l":"` + strings.Repeat("\xff", 11) + `"}`, bad(`field "l" is 33 bytes, over the limit of 32`)},

		// required fields
		{"hello without token", `{"t":"hello"}`, bad(`hello needs a non-empty "token"`)},
		{"hello with empty token", `{"t":"hello","token":""}`, bad(`hello needs a non-empty "token"`)},
		{"hello with null token", `{"t":"hello","token":null,"window":"w1"}`, bad(`hello needs a non-empty "token"`)},
		{"invisible without on", `{"t":"invisible"}`, bad(`invisible needs a boolean "on"`)},
		{"invisible with null on", `{"t":"invisible","on":null}`, bad(`invisible needs a boolean "on"`)},
		{"privacy empty", `{"t":"privacy"}`, bad(`privacy needs at least one of "visible_to", "share_project", "share_language"`)},
		{"privacy bad audience", `{"t":"privacy","visible_to":"everyone"}`, bad(`field "visible_to" must be followers or mutual, not "everyone"`)},
		{"privacy share string", `{"t":"privacy","share_project":"no"}`, bad(`field "share_project" has the wrong type (want bool)`)},

		// size
		{"frame of 4097 bytes", string(frameOfSize(MaxFrameBytes + 1)),
			Error{Code: ErrTooBig, Msg: "frame is 4097 bytes, over the limit of 4096", Close: CloseTooBig}},
		{"size is checked before syntax", strings.Repeat("x", 5000),
			Error{Code: ErrTooBig, Msg: "frame is 5000 bytes, over the limit of 4096", Close: CloseTooBig}},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			f, err := Decode([]byte(tc.in))
			if f != nil {
				t.Errorf("Decode(%q) frame = %#v, want nil", tc.in, f)
			}
			var e *Error
			if !errors.As(err, &e) {
				t.Fatalf("Decode(%q) error = %#v, want a *wire.Error", tc.in, err)
			}
			if *e != tc.want {
				t.Fatalf("Decode(%q) error = %#v\nwant %#v", tc.in, *e, tc.want)
			}
			if got, want := e.Error(), tc.want.Code+": "+tc.want.Msg; got != want {
				t.Fatalf("Error() = %q, want %q", got, want)
			}
		})
	}
}

// clientFrames is every kind of client frame, with the optional fields present and absent.
var clientFrames = []Frame{
	Hello{Token: "tok"},
	Hello{Token: "tok", Window: "w1"},
	Hello{Token: "tok", Resume: "r1"},
	Hello{Token: "t\"o\\k\u2028\x01", Window: "w\n1", Resume: "r😀"},
	Hello{Token: strings.Repeat("t", MaxTokenBytes), Window: strings.Repeat("w", MaxWindowBytes), Resume: strings.Repeat("r", MaxResumeBytes)},
	Status{},
	Status{Has: FieldActivity, Activity: Idle},
	Status{Has: FieldActivity, Activity: Coding},
	Status{Has: FieldActivity, Activity: Debugging},
	Status{Has: FieldProject, Project: "MyApp"},
	Status{Has: FieldProject},
	Status{Has: FieldLanguage, Language: "Go"},
	Status{Has: FieldLanguage},
	Status{Has: FieldActivity | FieldProject, Activity: Coding, Project: "MyApp"},
	Status{Has: FieldActivity | FieldLanguage, Activity: Coding, Language: "Go"},
	Status{Has: FieldProject | FieldLanguage, Project: "MyApp"},
	Status{Has: FieldActivity | FieldProject | FieldLanguage, Activity: Debugging, Project: strings.Repeat("é", 64), Language: strings.Repeat("l", 32)},
	Invisible{On: true},
	Invisible{On: false},
	Ping{},
	Bye{},
}

func TestClientFrameRoundTrip(t *testing.T) {
	for _, f := range clientFrames {
		b := Encode(f)
		got, err := Decode(b)
		if err != nil {
			t.Errorf("Decode(Encode(%#v)) = %s: %v", f, b, err)
			continue
		}
		if got != f {
			t.Errorf("Decode(Encode(%#v)) = %#v (wire %s)", f, got, b)
		}
		// Append keeps what b already held.
		prefixed := Append([]byte("prefix"), f)
		if want := "prefix" + string(b); string(prefixed) != want {
			t.Errorf("Append onto prefix = %q, want %q", prefixed, want)
		}
	}
}

// serverFrames is every kind of server frame, as DecodeServer gives it back.
var serverFrames = []Frame{
	Welcome{ID: "bob", Resume: "r1", Resumed: false},
	Welcome{ID: "bob", Resume: "r2", Resumed: true},
	Sync{Users: []SyncUser{}},
	Sync{Users: []SyncUser{
		{Username: "alice", Presence: Presence{State: StateOnline, Activity: Coding, Project: "MyApp", Language: "TypeScript"}},
		{Username: "bob", Presence: Presence{State: StateAway, Activity: Idle}},
		{Username: "carol", Presence: Presence{State: StateOffline, TS: 1703789400000}},
		{Username: "dave", Presence: Presence{State: StateOffline}},
		{Username: "erin", Presence: Presence{State: StateOnline, Activity: Debugging, Language: "Go"}},
	}},
	Update{ID: "alice"},
	Update{ID: "alice", Has: FieldState, State: StateAway},
	Update{ID: "alice", Has: FieldState, State: StateOnline},
	Update{ID: "alice", Has: FieldActivity, Activity: Debugging},
	Update{ID: "alice", Has: FieldProject, Project: "MyApp"},
	Update{ID: "alice", Has: FieldProject},
	Update{ID: "alice", Has: FieldLanguage, Language: "Go"},
	Update{ID: "alice", Has: FieldLanguage},
	Update{ID: "alice", Has: FieldState | FieldActivity | FieldProject | FieldLanguage, State: StateOnline, Activity: Idle, Project: "p\"\\\x00", Language: "l\u2029"},
	Online{ID: "alice", Presence: Presence{State: StateOnline, Activity: Idle, Project: "NewProject", Language: "Go"}},
	Online{ID: "alice", Presence: Presence{State: StateOnline, Activity: Coding}},
	Online{ID: "alice", Presence: Presence{State: StateAway, Activity: Debugging, Language: "Go"}},
	Offline{ID: "alice"},
	Offline{ID: "alice", TS: 1703789400000},
	// The test-only flush time (--stamp-flush) on each of the three frames that carry it.
	Update{ID: "alice", Has: FieldActivity, Activity: Coding, FT: 946684802000000},
	Online{ID: "alice", Presence: Presence{State: StateOnline, Activity: Coding}, FT: 946684802000000},
	Offline{ID: "alice", TS: 1703789400000, FT: 946684802000000},
	Pong{},
	ErrorFrame{Code: ErrBadFrame, Msg: `field "a" has the wrong type (want string)`},
	ErrorFrame{},
}

func TestServerFrameRoundTrip(t *testing.T) {
	for _, f := range serverFrames {
		b := Encode(f)
		got, err := DecodeServer(b)
		if err != nil {
			t.Errorf("DecodeServer(Encode(%#v)) = %s: %v", f, b, err)
			continue
		}
		if !reflect.DeepEqual(got, f) {
			t.Errorf("DecodeServer(Encode(%#v)) = %#v (wire %s)", f, got, b)
		}
	}
}

func TestServerFrameRoundTripLosses(t *testing.T) {
	// What the encoding leaves out on purpose: Online's TS, an online sync user's TS, an offline
	// user's activity, project and language, fields an Update does not list, and a nil Sync.Users
	// (decoded as empty).
	cases := []struct {
		in, want Frame
	}{
		{Online{ID: "alice", Presence: Presence{State: StateOnline, Activity: Coding, TS: 42}},
			Online{ID: "alice", Presence: Presence{State: StateOnline, Activity: Coding}}},
		{Sync{Users: []SyncUser{{Username: "alice", Presence: Presence{State: StateAway, TS: 42}}}},
			Sync{Users: []SyncUser{{Username: "alice", Presence: Presence{State: StateAway}}}}},
		{Sync{Users: []SyncUser{{Username: "carol", Presence: Presence{State: StateOffline, Activity: Coding, Project: "p", Language: "l", TS: 7}}}},
			Sync{Users: []SyncUser{{Username: "carol", Presence: Presence{State: StateOffline, TS: 7}}}}},
		{Update{ID: "alice", Has: FieldActivity, State: StateAway, Activity: Coding, Project: "p", Language: "l"},
			Update{ID: "alice", Has: FieldActivity, Activity: Coding}},
		{Sync{}, Sync{Users: []SyncUser{}}},
	}
	for _, tc := range cases {
		got, err := DecodeServer(Encode(tc.in))
		if err != nil {
			t.Fatalf("DecodeServer(Encode(%#v)): %v", tc.in, err)
		}
		if !reflect.DeepEqual(got, tc.want) {
			t.Errorf("DecodeServer(Encode(%#v)) = %#v, want %#v", tc.in, got, tc.want)
		}
	}
}

func TestEncodeExact(t *testing.T) {
	cases := []struct {
		f    Frame
		want string
	}{
		// server frames
		{Welcome{ID: "bob", Resume: "r1", Resumed: false}, `{"t":"welcome","id":"bob","resume":"r1","resumed":false}`},
		{Welcome{ID: "bob", Resume: "r2", Resumed: true}, `{"t":"welcome","id":"bob","resume":"r2","resumed":true}`},
		{Sync{Users: []SyncUser{
			{Username: "alice", Presence: Presence{State: StateOnline, Activity: Coding, Project: "MyApp", Language: "TypeScript"}},
			{Username: "carol", Presence: Presence{State: StateOffline, TS: 1703789400000}},
		}}, `{"t":"sync","users":[{"username":"alice","s":"Online","a":"Coding","p":"MyApp","l":"TypeScript"},{"username":"carol","s":"Offline","ts":1703789400000}]}`},
		{Sync{}, `{"t":"sync","users":[]}`},
		{Sync{Users: []SyncUser{
			{Username: "bob", Presence: Presence{State: StateAway, Activity: Idle, TS: 5}},
			{Username: "dave", Presence: Presence{State: StateOffline, Activity: Coding, Project: "p", Language: "l"}},
		}}, `{"t":"sync","users":[{"username":"bob","s":"Away","a":"Idle"},{"username":"dave","s":"Offline"}]}`},
		{Update{ID: "alice", Has: FieldActivity, Activity: Coding}, `{"t":"u","id":"alice","a":"Coding"}`},
		{Update{ID: "alice", Has: FieldProject}, `{"t":"u","id":"alice","p":""}`},
		{Update{ID: "alice", Has: FieldLanguage}, `{"t":"u","id":"alice","l":""}`},
		{Update{ID: "alice", Has: FieldState, State: StateAway}, `{"t":"u","id":"alice","s":"Away"}`},
		{Update{ID: "alice", Has: FieldActivity, State: StateAway, Activity: Debugging, Project: "p", Language: "l"}, `{"t":"u","id":"alice","a":"Debugging"}`},
		{Update{ID: "alice", Has: FieldState | FieldActivity | FieldProject | FieldLanguage, State: StateOnline, Activity: Idle, Project: "MyApp", Language: "Go"},
			`{"t":"u","id":"alice","s":"Online","a":"Idle","p":"MyApp","l":"Go"}`},
		{Update{ID: "alice"}, `{"t":"u","id":"alice"}`},
		{Online{ID: "alice", Presence: Presence{State: StateOnline, Activity: Idle, Project: "NewProject", Language: "Go"}},
			`{"t":"o","id":"alice","s":"Online","a":"Idle","p":"NewProject","l":"Go"}`},
		{Online{ID: "alice", Presence: Presence{State: StateOnline, Activity: Coding, TS: 1703789400000}}, `{"t":"o","id":"alice","s":"Online","a":"Coding"}`},
		{Online{ID: "alice", Presence: Presence{State: StateAway, Activity: Idle, Language: "Go"}}, `{"t":"o","id":"alice","s":"Away","a":"Idle","l":"Go"}`},
		{Offline{ID: "alice"}, `{"t":"x","id":"alice"}`},
		{Offline{ID: "alice", TS: 1703789400000}, `{"t":"x","id":"alice","ts":1703789400000}`},
		{Offline{ID: "alice", TS: -1}, `{"t":"x","id":"alice","ts":-1}`},
		// The test-only flush time comes last, only when set.
		{Update{ID: "alice", Has: FieldActivity, Activity: Coding, FT: 946684802000000}, `{"t":"u","id":"alice","a":"Coding","ft":946684802000000}`},
		{Online{ID: "alice", Presence: Presence{State: StateOnline, Activity: Coding}, FT: 7}, `{"t":"o","id":"alice","s":"Online","a":"Coding","ft":7}`},
		{Offline{ID: "alice", TS: 1703789400000, FT: 7}, `{"t":"x","id":"alice","ts":1703789400000,"ft":7}`},
		{Offline{ID: "alice", FT: 7}, `{"t":"x","id":"alice","ft":7}`},
		{Pong{}, `{"t":"pong"}`},
		{ErrorFrame{Code: ErrBadFrame, Msg: `field "a" is bad`}, `{"t":"error","code":"bad_frame","msg":"field \"a\" is bad"}`},
		// client frames
		{Hello{Token: "tok"}, `{"t":"hello","token":"tok"}`},
		{Hello{Token: "tok", Window: "w1"}, `{"t":"hello","token":"tok","window":"w1"}`},
		{Hello{Token: "tok", Resume: "r1"}, `{"t":"hello","token":"tok","resume":"r1"}`},
		{Hello{Token: "tok", Window: "w1", Resume: "r1"}, `{"t":"hello","token":"tok","window":"w1","resume":"r1"}`},
		{Status{}, `{"t":"status"}`},
		{Status{Has: FieldActivity | FieldProject | FieldLanguage, Activity: Coding, Project: "MyApp", Language: "Go"}, `{"t":"status","a":"Coding","p":"MyApp","l":"Go"}`},
		{Status{Has: FieldProject | FieldLanguage}, `{"t":"status","p":"","l":""}`},
		{Status{Activity: Debugging, Project: "p"}, `{"t":"status"}`},
		{Invisible{On: true}, `{"t":"invisible","on":true}`},
		{Invisible{On: false}, `{"t":"invisible","on":false}`},
		{Privacy{Has: PrivacyVisibleTo, VisibleTo: AudienceMutual}, `{"t":"privacy","visible_to":"mutual"}`},
		{Privacy{Has: PrivacyShareProject | PrivacyShareLanguage, ShareLanguage: true}, `{"t":"privacy","share_project":false,"share_language":true}`},
		{Ping{}, `{"t":"ping"}`},
		{Bye{}, `{"t":"bye"}`},
	}
	for _, tc := range cases {
		if got := string(Encode(tc.f)); got != tc.want {
			t.Errorf("Encode(%#v)\n got %s\nwant %s", tc.f, got, tc.want)
		}
		if got := string(Append([]byte("≫"), tc.f)); got != "≫"+tc.want {
			t.Errorf("Append(≫, %#v) = %s", tc.f, got)
		}
	}
	if got := string(Append([]byte("keep"), nil)); got != "keep" {
		t.Errorf("Append(keep, nil) = %q, want %q", got, "keep")
	}
}

func TestAppendUpdateAllocatesNothing(t *testing.T) {
	buf := make([]byte, 0, 256)
	var f Frame = Update{ID: "alice", Has: FieldActivity | FieldProject, Activity: Coding, Project: "MyApp"}
	if n := testing.AllocsPerRun(100, func() { buf = Append(buf[:0], f) }); n != 0 {
		t.Fatalf("Append(Update) into a reused buffer allocates %v times, want 0", n)
	}
	if got, want := string(buf), `{"t":"u","id":"alice","a":"Coding","p":"MyApp"}`; got != want {
		t.Fatalf("buffer = %s, want %s", got, want)
	}
}

// TestEncodeSyncAllocatesOnce: Encode sizes a sync's slice before it writes, whatever its
// users' presences, and the bytes are Append's.
func TestEncodeSyncAllocatesOnce(t *testing.T) {
	users := make([]SyncUser, 50)
	for i := range users {
		p := Presence{State: StateOffline, TS: math.MaxInt64}
		switch i % 3 {
		case 0:
			p = Presence{State: StateOnline, Activity: Debugging, Project: fmt.Sprintf("project-%d", i), Language: "TypeScript"}
		case 1:
			p = Presence{State: StateAway, Activity: Idle, Language: "Go"}
		}
		users[i] = SyncUser{Username: fmt.Sprintf("user%02d", i), Presence: p}
	}
	for _, s := range []Sync{{}, {Users: users}, {Users: users[:1]}, {Users: users[1:2]}, {Users: users[2:3]}} {
		var b []byte
		if n := testing.AllocsPerRun(100, func() { b = Encode(s) }); n != 1 {
			t.Errorf("Encode(sync of %d) allocates %v times, want 1", len(s.Users), n)
		}
		if want := Append(nil, s); string(b) != string(want) {
			t.Errorf("Encode(sync of %d) = %s, want %s", len(s.Users), b, want)
		}
	}
}

// stdlibString is encoding/json's encoding of s without HTML escaping, which appendString matches
// byte for byte.
func stdlibString(t testing.TB, s string) string {
	var buf bytes.Buffer
	enc := json.NewEncoder(&buf)
	enc.SetEscapeHTML(false)
	if err := enc.Encode(s); err != nil {
		t.Fatalf("json encode %q: %v", s, err)
	}
	return strings.TrimSuffix(buf.String(), "\n")
}

// sanitize is what a JSON string decodes back to: every byte of invalid UTF-8 becomes U+FFFD.
func sanitize(s string) string {
	var b strings.Builder
	for i := 0; i < len(s); {
		r, size := utf8.DecodeRuneInString(s[i:])
		if r == utf8.RuneError && size == 1 {
			b.WriteRune(utf8.RuneError)
		} else {
			b.WriteString(s[i : i+size])
		}
		i += size
	}
	return b.String()
}

func TestAppendStringExact(t *testing.T) {
	cases := []struct{ in, want string }{
		{"", `""`},
		{"plain", `"plain"`},
		{`say "hi"`, `"say \"hi\""`},
		{`back\slash`, `"back\\slash"`},
		{"\n\r\t", `"\n\r\t"`},
		{"\b\f", `"\b\f"`},
		{"\x00\x01\x1f", `"\u0000\u0001\u001f"`},
		{"\x7f", "\"\x7f\""},
		{"<>&", `"<>&"`},
		{"/", `"/"`},
		{"a\u2028b\u2029c", `"a\u2028b\u2029c"`},
		{"é😀\ufffd", "\"é😀\ufffd\""},
		{"a\xffb", `"a\ufffdb"`},
		{"\xed\xa0\x80", `"\ufffd\ufffd\ufffd"`}, // an encoded surrogate half is invalid UTF-8
		{"\xe2\x82", `"\ufffd\ufffd"`},           // truncated rune
		{"\xc0\xaf", `"\ufffd\ufffd"`},           // overlong encoding
	}
	for _, tc := range cases {
		got := string(appendString(nil, tc.in))
		if got != tc.want {
			t.Errorf("appendString(%q) = %s, want %s", tc.in, got, tc.want)
		}
		if std := stdlibString(t, tc.in); got != std {
			t.Errorf("appendString(%q) = %s, encoding/json gives %s", tc.in, got, std)
		}
	}
	// Without <, > and & the default json.Marshal (which escapes HTML) agrees too.
	for _, s := range []string{"\"\\\x00\b\f\n\r\t\x1f\u2028\u2029😀\xff"} {
		std, err := json.Marshal(s)
		if err != nil {
			t.Fatal(err)
		}
		if got := appendString(nil, s); !bytes.Equal(got, std) {
			t.Errorf("appendString(%q) = %s, json.Marshal gives %s", s, got, std)
		}
	}
}

// randomString draws from pieces that exercise every branch of appendString.
func randomString(r *rand.Rand) string {
	pieces := []string{
		"a", "Z", " ", "~", "\x7f", `"`, `\`, "/", "<", ">", "&",
		"\x00", "\x01", "\b", "\t", "\n", "\f", "\r", "\x1b", "\x1f",
		"é", "ß", "€", "\u2027", "\u2028", "\u2029", "\u202a", "😀", "\U0010ffff", "\ufffd", "\ufeff",
		"\xff", "\xfe", "\x80", "\xc3", "\xe2\x80", "\xed\xa0\x80", "\xf0\x9f\x98", "\xc0\x80",
	}
	var b strings.Builder
	n := r.IntN(24)
	for range n {
		if r.IntN(4) == 0 {
			b.WriteByte(byte(r.IntN(256))) // any byte at all
		} else {
			b.WriteString(pieces[r.IntN(len(pieces))])
		}
	}
	return b.String()
}

func TestAppendStringProperty(t *testing.T) {
	r := rand.New(rand.NewPCG(1, 2))
	for i := range 20000 {
		s := randomString(r)
		enc := appendString([]byte("x"), s)[1:]
		if std := stdlibString(t, s); string(enc) != std {
			t.Fatalf("#%d appendString(%q) = %s, encoding/json gives %s", i, s, enc, std)
		}
		var back string
		if err := json.Unmarshal(enc, &back); err != nil {
			t.Fatalf("#%d appendString(%q) = %s is not a JSON string: %v", i, s, enc, err)
		}
		if want := sanitize(s); back != want {
			t.Fatalf("#%d appendString(%q) decodes to %q, want %q", i, s, back, want)
		}
		// Through a whole frame too.
		f, err := DecodeServer(Append(nil, ErrorFrame{Code: s, Msg: s}))
		if err != nil {
			t.Fatalf("#%d DecodeServer(error frame of %q): %v", i, s, err)
		}
		if want := (ErrorFrame{Code: sanitize(s), Msg: sanitize(s)}); f != want {
			t.Fatalf("#%d error frame of %q decodes to %#v, want %#v", i, s, f, want)
		}
	}
}

func TestDecodeServerErrors(t *testing.T) {
	cases := []struct{ in, want string }{
		{`[]`, "bad_frame: not a JSON object: got array"},
		{`{}`, `bad_frame: missing field "t"`},
		{`{"t":"dance"}`, `wire: unknown server frame "dance"`},
		{`{"t":"u","id":"alice","s":"online"}`, `wire: bad state "online"`},
		{`{"t":"u","id":"alice","a":"coding"}`, `wire: bad activity "coding"`},
		{`{"t":"o","id":"alice","s":"Busy"}`, `wire: bad state "Busy"`},
		{`{"t":"sync","users":[{"username":"alice"}]}`, `wire: bad state ""`},
		{`{"t":"sync","users":[{"username":"alice","s":"Online","a":"Sleeping"}]}`, `wire: bad activity "Sleeping"`},
		{`{"t":"sync","users":5}`, `bad_frame: field "users" has the wrong type (want array)`},
		{`{"t":"sync","users":[5]}`, `bad_frame: field "users" has the wrong type (want object)`},
		{`{"t":"sync","users":[{"username":5}]}`, `bad_frame: field "users.username" has the wrong type (want string)`},
		{`{"t":"x","id":"alice","ts":1.5}`, `bad_frame: field "ts" has the wrong type (want integer)`},
		{`{"t":"welcome","resumed":"yes"}`, `bad_frame: field "resumed" has the wrong type (want bool)`},
	}
	for _, tc := range cases {
		f, err := DecodeServer([]byte(tc.in))
		if f != nil || err == nil || err.Error() != tc.want {
			t.Errorf("DecodeServer(%s) = %#v, %v; want error %q", tc.in, f, err, tc.want)
		}
	}
}
