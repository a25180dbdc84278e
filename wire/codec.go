package wire

import (
	"encoding/json"
	"errors"
	"fmt"
	"reflect"
	"strconv"
	"unicode/utf8"
)

// clientFrame holds every field a client frame may carry; pointers tell absent from empty. Fields
// only server frames carry are not listed, so Decode ignores them like any unknown field.
type clientFrame struct {
	T      *string `json:"t"`
	Token  *string `json:"token"`
	Window *string `json:"window"`
	Resume *string `json:"resume"`
	A      *string `json:"a"`
	P      *string `json:"p"`
	L      *string `json:"l"`
	On     *bool   `json:"on"`

	VisibleTo     *string `json:"visible_to"`
	ShareProject  *bool   `json:"share_project"`
	ShareLanguage *bool   `json:"share_language"`
}

// serverFrame holds every field a server frame may carry.
type serverFrame struct {
	T       *string    `json:"t"`
	Resume  *string    `json:"resume"`
	A       *string    `json:"a"`
	P       *string    `json:"p"`
	L       *string    `json:"l"`
	ID      *string    `json:"id"`
	S       *string    `json:"s"`
	TS      *int64     `json:"ts"`
	FT      *int64     `json:"ft"`
	Resumed *bool      `json:"resumed"`
	Code    *string    `json:"code"`
	Msg     *string    `json:"msg"`
	Users   []syncUser `json:"users"`
}

type syncUser struct {
	Username string `json:"username"`
	S        string `json:"s"`
	A        string `json:"a"`
	P        string `json:"p"`
	L        string `json:"l"`
	TS       int64  `json:"ts"`
}

// parse unmarshals b into r (a *clientFrame or *serverFrame) and names what went wrong.
func parse(b []byte, r any) *Error {
	if err := json.Unmarshal(b, r); err != nil {
		var te *json.UnmarshalTypeError
		if errors.As(err, &te) {
			if te.Field == "" {
				return BadFrame("not a JSON object: got %s", te.Value)
			}
			return BadFrame("field %q has the wrong type (want %s)", te.Field, jsonType(te.Type))
		}
		return BadFrame("not a JSON object: %v", err)
	}
	return nil
}

// jsonType names the JSON type a Go type decodes from, for error messages.
func jsonType(t reflect.Type) string {
	switch t.Kind() {
	case reflect.String:
		return "string"
	case reflect.Bool:
		return "bool"
	case reflect.Int, reflect.Int8, reflect.Int16, reflect.Int32, reflect.Int64:
		return "integer"
	case reflect.Slice, reflect.Array:
		return "array"
	case reflect.Struct, reflect.Map:
		return "object"
	}
	return t.String()
}

func str(p *string) string {
	if p == nil {
		return ""
	}
	return *p
}

func limit(field string, v *string, max int) *Error {
	if v != nil && len(*v) > max {
		return BadFrame("field %q is %d bytes, over the limit of %d", field, len(*v), max)
	}
	return nil
}

// Decode parses one client → server frame strictly: unknown "t", wrong types, bad enums and
// over-long fields are a *Error with Code bad_frame and Close 1007. Unknown fields are ignored so
// that older servers accept newer clients.
func Decode(b []byte) (Frame, error) {
	if len(b) > MaxFrameBytes {
		return nil, &Error{Code: ErrTooBig, Msg: fmt.Sprintf("frame is %d bytes, over the limit of %d", len(b), MaxFrameBytes), Close: CloseTooBig}
	}
	var r clientFrame
	if e := parse(b, &r); e != nil {
		return nil, e
	}
	if r.T == nil {
		return nil, BadFrame("missing field \"t\"")
	}
	switch *r.T {
	case "hello":
		if r.Token == nil || *r.Token == "" {
			return nil, BadFrame("hello needs a non-empty \"token\"")
		}
		for _, c := range []struct {
			n string
			v *string
			m int
		}{{"token", r.Token, MaxTokenBytes}, {"window", r.Window, MaxWindowBytes}, {"resume", r.Resume, MaxResumeBytes}} {
			if e := limit(c.n, c.v, c.m); e != nil {
				return nil, e
			}
		}
		return Hello{Token: *r.Token, Window: str(r.Window), Resume: str(r.Resume)}, nil
	case "status":
		var s Status
		if r.A != nil {
			a, ok := ParseActivity(*r.A)
			if !ok {
				return nil, BadFrame("field \"a\" must be one of Coding, Debugging, Idle, not %q", *r.A)
			}
			s.Has |= FieldActivity
			s.Activity = a
		}
		if e := limit("p", r.P, MaxProjectBytes); e != nil {
			return nil, e
		}
		if e := limit("l", r.L, MaxLanguageBytes); e != nil {
			return nil, e
		}
		if r.P != nil {
			s.Has |= FieldProject
			s.Project = *r.P
		}
		if r.L != nil {
			s.Has |= FieldLanguage
			s.Language = *r.L
		}
		return s, nil
	case "invisible":
		if r.On == nil {
			return nil, BadFrame("invisible needs a boolean \"on\"")
		}
		return Invisible{On: *r.On}, nil
	case "privacy":
		var pv Privacy
		if r.VisibleTo != nil {
			a, ok := ParseAudience(*r.VisibleTo)
			if !ok {
				return nil, BadFrame("field \"visible_to\" must be followers or mutual, not %q", truncate(*r.VisibleTo, 32))
			}
			pv.Has |= PrivacyVisibleTo
			pv.VisibleTo = a
		}
		if r.ShareProject != nil {
			pv.Has |= PrivacyShareProject
			pv.ShareProject = *r.ShareProject
		}
		if r.ShareLanguage != nil {
			pv.Has |= PrivacyShareLanguage
			pv.ShareLanguage = *r.ShareLanguage
		}
		if pv.Has == 0 {
			return nil, BadFrame("privacy needs at least one of \"visible_to\", \"share_project\", \"share_language\"")
		}
		return pv, nil
	case "ping":
		return Ping{}, nil
	case "bye":
		return Bye{}, nil
	default:
		return nil, BadFrame("unknown frame type %q", truncate(*r.T, 32))
	}
}

func truncate(s string, n int) string {
	if len(s) <= n {
		return s
	}
	for n > 0 && !utf8.RuneStart(s[n]) {
		n--
	}
	return s[:n] + "…"
}

// DecodeServer parses one server → client frame; clients and tests use it.
func DecodeServer(b []byte) (Frame, error) {
	var r serverFrame
	if e := parse(b, &r); e != nil {
		return nil, e
	}
	if r.T == nil {
		return nil, BadFrame("missing field \"t\"")
	}
	presence := func(s, a, p, l string, ts int64) (Presence, error) {
		st, ok := ParseState(s)
		if !ok {
			return Presence{}, fmt.Errorf("wire: bad state %q", s)
		}
		act := Idle
		if a != "" {
			if act, ok = ParseActivity(a); !ok {
				return Presence{}, fmt.Errorf("wire: bad activity %q", a)
			}
		}
		return Presence{State: st, Activity: act, Project: p, Language: l, TS: ts}, nil
	}
	switch *r.T {
	case "welcome":
		return Welcome{ID: str(r.ID), Resume: str(r.Resume), Resumed: r.Resumed != nil && *r.Resumed}, nil
	case "sync":
		s := Sync{Users: make([]SyncUser, 0, len(r.Users))}
		for _, u := range r.Users {
			p, err := presence(u.S, u.A, u.P, u.L, u.TS)
			if err != nil {
				return nil, err
			}
			s.Users = append(s.Users, SyncUser{Username: u.Username, Presence: p})
		}
		return s, nil
	case "o":
		var ts int64
		p, err := presence(str(r.S), str(r.A), str(r.P), str(r.L), ts)
		if err != nil {
			return nil, err
		}
		return Online{ID: str(r.ID), Presence: p, FT: flushTime(r.FT)}, nil
	case "x":
		var ts int64
		if r.TS != nil {
			ts = *r.TS
		}
		return Offline{ID: str(r.ID), TS: ts, FT: flushTime(r.FT)}, nil
	case "u":
		u := Update{ID: str(r.ID), FT: flushTime(r.FT)}
		if r.S != nil {
			st, ok := ParseState(*r.S)
			if !ok {
				return nil, fmt.Errorf("wire: bad state %q", *r.S)
			}
			u.Has |= FieldState
			u.State = st
		}
		if r.A != nil {
			a, ok := ParseActivity(*r.A)
			if !ok {
				return nil, fmt.Errorf("wire: bad activity %q", *r.A)
			}
			u.Has |= FieldActivity
			u.Activity = a
		}
		if r.P != nil {
			u.Has |= FieldProject
			u.Project = *r.P
		}
		if r.L != nil {
			u.Has |= FieldLanguage
			u.Language = *r.L
		}
		return u, nil
	case "pong":
		return Pong{}, nil
	case "error":
		return ErrorFrame{Code: str(r.Code), Msg: str(r.Msg)}, nil
	default:
		return nil, fmt.Errorf("wire: unknown server frame %q", *r.T)
	}
}

// Append encodes f as JSON onto b. It encodes both directions; it allocates nothing beyond
// growing b.
func Append(b []byte, f Frame) []byte {
	switch f := f.(type) {
	case Welcome:
		b = append(b, `{"t":"welcome","id":`...)
		b = appendString(b, f.ID)
		b = append(b, `,"resume":`...)
		b = appendString(b, f.Resume)
		b = append(b, `,"resumed":`...)
		b = strconv.AppendBool(b, f.Resumed)
		return append(b, '}')
	case Sync:
		b = append(b, `{"t":"sync","users":[`...)
		for i, u := range f.Users {
			if i > 0 {
				b = append(b, ',')
			}
			b = append(b, `{"username":`...)
			b = appendString(b, u.Username)
			b = appendPresence(b, u.Presence)
			b = append(b, '}')
		}
		return append(b, "]}"...)
	case Update:
		b = append(b, `{"t":"u","id":`...)
		b = appendString(b, f.ID)
		if f.Has&FieldState != 0 {
			b = append(b, `,"s":`...)
			b = appendString(b, f.State.String())
		}
		b = appendFields(b, f.Has, f.Activity, f.Project, f.Language)
		return append(appendFlushTime(b, f.FT), '}')
	case Online:
		b = append(b, `{"t":"o","id":`...)
		b = appendString(b, f.ID)
		p := f.Presence
		p.TS = 0
		b = appendPresence(b, p)
		return append(appendFlushTime(b, f.FT), '}')
	case Offline:
		b = append(b, `{"t":"x","id":`...)
		b = appendString(b, f.ID)
		if f.TS != 0 {
			b = append(b, `,"ts":`...)
			b = strconv.AppendInt(b, f.TS, 10)
		}
		return append(appendFlushTime(b, f.FT), '}')
	case Pong:
		return append(b, `{"t":"pong"}`...)
	case ErrorFrame:
		b = append(b, `{"t":"error","code":`...)
		b = appendString(b, f.Code)
		b = append(b, `,"msg":`...)
		b = appendString(b, f.Msg)
		return append(b, '}')
	case Hello:
		b = append(b, `{"t":"hello","token":`...)
		b = appendString(b, f.Token)
		if f.Window != "" {
			b = append(b, `,"window":`...)
			b = appendString(b, f.Window)
		}
		if f.Resume != "" {
			b = append(b, `,"resume":`...)
			b = appendString(b, f.Resume)
		}
		return append(b, '}')
	case Status:
		b = append(b, `{"t":"status"`...)
		b = appendFields(b, f.Has, f.Activity, f.Project, f.Language)
		return append(b, '}')
	case Invisible:
		b = append(b, `{"t":"invisible","on":`...)
		b = strconv.AppendBool(b, f.On)
		return append(b, '}')
	case Privacy:
		b = append(b, `{"t":"privacy"`...)
		if f.Has&PrivacyVisibleTo != 0 {
			b = append(b, `,"visible_to":"`...)
			b = append(b, f.VisibleTo.String()...)
			b = append(b, '"')
		}
		if f.Has&PrivacyShareProject != 0 {
			b = append(b, `,"share_project":`...)
			b = strconv.AppendBool(b, f.ShareProject)
		}
		if f.Has&PrivacyShareLanguage != 0 {
			b = append(b, `,"share_language":`...)
			b = strconv.AppendBool(b, f.ShareLanguage)
		}
		return append(b, '}')
	case Ping:
		return append(b, `{"t":"ping"}`...)
	case Bye:
		return append(b, `{"t":"bye"}`...)
	}
	return b
}

// Encode is Append onto a new slice. A sync's slice is sized for its users first: one
// allocation instead of the nine a doubling slice took for a sync of 50, and every hello and
// resume sends one (a login storm encodes thousands a second).
func Encode(f Frame) []byte {
	n := 64
	if s, ok := f.(Sync); ok {
		n = s.sizeHint()
	}
	return Append(make([]byte, 0, n), f)
}

// syncUserMax is the most a sync user's entry takes beyond its three strings' bytes: an online
// entry's keys and quotes with the longest state and activity, and the comma (an offline entry
// with a 19-digit last seen takes 55).
const syncUserMax = len(`{"username":"","s":"Offline","a":"Debugging","p":"","l":""},`)

// sizeHint is at least s's encoded length unless a string needs escapes (append grows then).
func (s Sync) sizeHint() int {
	n := len(`{"t":"sync","users":[]}`)
	for _, u := range s.Users {
		n += syncUserMax + len(u.Username) + len(u.Presence.Project) + len(u.Presence.Language)
	}
	return n
}

// appendFlushTime writes the test-only "ft" field, last, when it is set.
func appendFlushTime(b []byte, ft FlushTime) []byte {
	if ft == 0 {
		return b
	}
	b = append(b, `,"ft":`...)
	return strconv.AppendInt(b, int64(ft), 10)
}

func flushTime(v *int64) FlushTime {
	if v == nil {
		return 0
	}
	return FlushTime(*v)
}

// appendFields writes the a, p and l fields that has names (u and status frames).
func appendFields(b []byte, has Fields, a Activity, p, l string) []byte {
	if has&FieldActivity != 0 {
		b = append(b, `,"a":`...)
		b = appendString(b, a.String())
	}
	if has&FieldProject != 0 {
		b = append(b, `,"p":`...)
		b = appendString(b, p)
	}
	if has&FieldLanguage != 0 {
		b = append(b, `,"l":`...)
		b = appendString(b, l)
	}
	return b
}

// appendPresence writes ,"s":…[,"a"…][,"p"…][,"l"…] for a user that is online or away, or
// ,"s":"Offline"[,"ts":…] for one that is offline. Empty fields are omitted.
func appendPresence(b []byte, p Presence) []byte {
	b = append(b, `,"s":`...)
	b = appendString(b, p.State.String())
	if p.State == StateOffline {
		if p.TS != 0 {
			b = append(b, `,"ts":`...)
			b = strconv.AppendInt(b, p.TS, 10)
		}
		return b
	}
	b = append(b, `,"a":`...)
	b = appendString(b, p.Activity.String())
	if p.Project != "" {
		b = append(b, `,"p":`...)
		b = appendString(b, p.Project)
	}
	if p.Language != "" {
		b = append(b, `,"l":`...)
		b = appendString(b, p.Language)
	}
	return b
}

const hexDigits = "0123456789abcdef"

// appendString writes s as a JSON string. Invalid UTF-8 becomes U+FFFD, as encoding/json does.
func appendString(b []byte, s string) []byte {
	b = append(b, '"')
	start := 0
	for i := 0; i < len(s); {
		c := s[i]
		if c < utf8.RuneSelf {
			if c >= 0x20 && c != '"' && c != '\\' {
				i++
				continue
			}
			b = append(b, s[start:i]...)
			switch c {
			case '"', '\\':
				b = append(b, '\\', c)
			case '\b':
				b = append(b, '\\', 'b')
			case '\f':
				b = append(b, '\\', 'f')
			case '\n':
				b = append(b, '\\', 'n')
			case '\r':
				b = append(b, '\\', 'r')
			case '\t':
				b = append(b, '\\', 't')
			default:
				b = append(b, '\\', 'u', '0', '0', hexDigits[c>>4], hexDigits[c&0xf])
			}
			i++
			start = i
			continue
		}
		r, size := utf8.DecodeRuneInString(s[i:])
		if r == utf8.RuneError && size == 1 {
			b = append(b, s[start:i]...)
			b = append(b, `\ufffd`...)
			i += size
			start = i
			continue
		}
		if r == '\u2028' || r == '\u2029' {
			b = append(b, s[start:i]...)
			b = append(b, '\\', 'u', '2', '0', '2', hexDigits[r&0xf])
			i += size
			start = i
			continue
		}
		i += size
	}
	b = append(b, s[start:]...)
	return append(b, '"')
}
