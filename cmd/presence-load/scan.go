package main

import (
	"bytes"
	"strconv"
	"time"
)

// The fast path reads server frames by scanning bytes instead of decoding JSON: the load tool
// shares two cores with the server, and a JSON decode per delivery would cost more than the
// server's own work per delivery. This relies on the exact layout wire.Append writes:
//
//	{"t":"welcome","id":"u1","resume":"<token>","resumed":true}
//	{"t":"u","id":"u7"[,"s":"Online"][,"a":"Coding"][,"p":"…"][,"l":"…"]}
//	{"t":"o","id":"u7","s":"Online","a":"Coding"[,"p":"…"][,"l":"…"]}
//	{"t":"x","id":"u7"[,"ts":1703789400000]}
//	{"t":"error","code":"rate_limited","msg":"…"}
//
// Ids are logins and s/a are enum names, none of which can hold a quote, so the first `,"p":"`
// in a u or o frame is the project. --check decodes every frame with wire.DecodeServer instead,
// which also proves this scanner's assumptions on every run that uses it.

// kind is a server frame type.
type kind uint8

const (
	kOther kind = iota
	kWelcome
	kSync
	kU
	kO
	kX
	kPong
	kError
	numKinds
)

var kindNames = [numKinds]string{"other", "welcome", "sync", "u", "o", "x", "pong", "error"}

func (k kind) String() string { return kindNames[k] }

var typePrefix = []byte(`{"t":"`)

// frameKind reads the "t" value at the start of a frame.
func frameKind(b []byte) kind {
	if !bytes.HasPrefix(b, typePrefix) {
		return kOther
	}
	b = b[len(typePrefix):]
	end := bytes.IndexByte(b, '"')
	if end < 0 {
		return kOther
	}
	switch string(b[:end]) { // no allocation: the compiler compares in place
	case "u":
		return kU
	case "o":
		return kO
	case "x":
		return kX
	case "sync":
		return kSync
	case "welcome":
		return kWelcome
	case "pong":
		return kPong
	case "error":
		return kError
	}
	return kOther
}

// stringField returns the raw value of the first "key":"value" in b (key given as `"key":"`),
// nil when absent. Values the tool scans never hold escapes.
func stringField(b, key []byte) []byte {
	i := bytes.Index(b, key)
	if i < 0 {
		return nil
	}
	b = b[i+len(key):]
	end := bytes.IndexByte(b, '"')
	if end < 0 {
		return nil
	}
	return b[:end]
}

var (
	keyFT      = []byte(`,"ft":`)
	keyP       = []byte(`,"p":"`)
	keyResume  = []byte(`"resume":"`)
	keyCode    = []byte(`"code":"`)
	keyResumed = []byte(`"resumed":true`)
)

// flushTime reads the test-only "ft" field (unix µs) that a server run with --stamp-flush puts
// last in u, o and x frames, without allocating; false when the frame has none.
func flushTime(b []byte) (time.Time, bool) {
	i := bytes.LastIndex(b, keyFT)
	if i < 0 {
		return time.Time{}, false
	}
	b = b[i+len(keyFT):]
	var us int64
	n := 0
	// At most 18 digits, which cannot overflow an int64 (unix µs have 16): a longer number is
	// refused below, since the digit after them is not the closing brace.
	for ; n < len(b) && b[n] >= '0' && b[n] <= '9' && n < 18; n++ {
		us = us*10 + int64(b[n]-'0')
	}
	if n == 0 || n == len(b) || b[n] != '}' {
		return time.Time{}, false
	}
	return time.UnixMicro(us), true
}

// stamp is the project value a status carries: "t" and the send time in unix nanoseconds, base 36
// (14 bytes, far below the 128-byte project limit).
func stamp(t time.Time) string { return "t" + strconv.FormatInt(t.UnixNano(), 36) }

// parseStamp is the inverse of stamp, without allocating; false for any other project.
func parseStamp(p []byte) (time.Time, bool) {
	if len(p) < 2 || len(p) > 14 || p[0] != 't' {
		return time.Time{}, false
	}
	var n int64
	for _, c := range p[1:] {
		var d byte
		switch {
		case c >= '0' && c <= '9':
			d = c - '0'
		case c >= 'a' && c <= 'z':
			d = c - 'a' + 10
		default:
			return time.Time{}, false
		}
		n = n*36 + int64(d)
		if n < 0 {
			return time.Time{}, false
		}
	}
	return time.Unix(0, n), true
}
