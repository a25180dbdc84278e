package wire_test

import (
	"errors"
	"strings"
	"testing"

	"github.com/presenced/presenced/wire"
)

// FuzzDecode: Decode never panics; a frame it accepts encodes to bytes that decode to the same
// frame; a frame it rejects gets a *wire.Error whose Close is a row of wire.Codes with that error
// code.
func FuzzDecode(f *testing.F) {
	for _, s := range []string{
		// valid
		`{"t":"hello","token":"tok"}`,
		`{"t":"hello","token":"tok","window":"w1","resume":"r1"}`,
		`{"t":"status"}`,
		`{"t":"status","a":"Coding","p":"MyApp","l":"TypeScript"}`,
		`{"t":"status","a":"Idle","p":"","l":""}`,
		`{"t":"status","p":"\u00e9\"\\\u2028\ud83d\ude00"}`,
		`{"t":"invisible","on":true}`,
		`{"t":"invisible","on":false}`,
		`{"t":"privacy","visible_to":"mutual","share_project":false}`,
		`{"t":"ping"}`,
		`{"t":"bye","x":[1,{"y":null}]}`,
		`{"t":"status","p":"` + strings.Repeat("p", 128) + `"}`,
		// invalid
		``,
		`garbage`,
		`[{"t":"ping"}]`,
		`null`,
		`{}`,
		`{"t":5}`,
		`{"t":"dance"}`,
		`{"t":"status","a":"coding"}`,
		`{"t":"status","a":1}`,
		`{"t":"invisible","on":"yes"}`,
		`{"t":"invisible"}`,
		`{"t":"hello"}`,
		`{"t":"hello","token":5}`,
		`{"t":"status","l":"` + strings.Repeat("l", 33) + `"}`,
		`{"t":"status","p":"` + "\xff\xfe" + `"}`,
		`{"t":"ping"}{}`,
		`{"t":"ping","pad":"` + strings.Repeat("x", 4080) + `"}`,
	} {
		f.Add([]byte(s))
	}
	closes := map[int]string{}
	for _, c := range wire.Codes {
		closes[c.Close] = c.Error
	}
	f.Fuzz(func(t *testing.T, b []byte) {
		fr, err := wire.Decode(b)
		if err != nil {
			if fr != nil {
				t.Fatalf("Decode(%q) = %#v with error %v", b, fr, err)
			}
			var e *wire.Error
			if !errors.As(err, &e) {
				t.Fatalf("Decode(%q) error %#v is not a *wire.Error", b, err)
			}
			if e.Code == "" || e.Msg == "" {
				t.Fatalf("Decode(%q) error %#v has an empty code or message", b, e)
			}
			code, ok := closes[e.Close]
			if !ok {
				t.Fatalf("Decode(%q) error %#v: close %d is not in wire.Codes", b, e, e.Close)
			}
			if code != e.Code {
				t.Fatalf("Decode(%q) error %#v: wire.Codes pairs close %d with %q", b, e, e.Close, code)
			}
			return
		}
		enc := wire.Encode(fr)
		again, err := wire.Decode(enc)
		if err != nil {
			t.Fatalf("Decode(%q) = %#v, but its encoding %s does not decode: %v", b, fr, enc, err)
		}
		if again != fr {
			t.Fatalf("Decode(%q) = %#v, but its encoding %s decodes to %#v", b, fr, enc, again)
		}
	})
}
