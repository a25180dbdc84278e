package wire_test

import (
	"fmt"
	"testing"

	"github.com/presenced/presenced/wire"
)

func BenchmarkDecodeStatus(b *testing.B) {
	in := []byte(`{"t":"status","a":"Coding","p":"MyApp","l":"TypeScript"}`)
	b.ReportAllocs()
	b.SetBytes(int64(len(in)))
	for b.Loop() {
		if _, err := wire.Decode(in); err != nil {
			b.Fatal(err)
		}
	}
}

func BenchmarkDecodeHello(b *testing.B) {
	in := []byte(`{"t":"hello","token":"gho_16C7e42F292c6912E7710c838347Ae178B4a","window":"vscode-3f9a2c","resume":"Jb3kQ9xW2mZr7TtY1uVhN5cL0pAsDfGe8iOqRnKwXyM"}`)
	b.ReportAllocs()
	b.SetBytes(int64(len(in)))
	for b.Loop() {
		if _, err := wire.Decode(in); err != nil {
			b.Fatal(err)
		}
	}
}

func BenchmarkEncodeUpdate(b *testing.B) {
	var f wire.Frame = wire.Update{ID: "alice", Has: wire.FieldActivity | wire.FieldProject, Activity: wire.Coding, Project: "MyApp"}
	buf := make([]byte, 0, 256)
	b.ReportAllocs()
	for b.Loop() {
		buf = wire.Append(buf[:0], f)
	}
	b.SetBytes(int64(len(buf)))
}

func BenchmarkEncodeSync50(b *testing.B) {
	users := make([]wire.SyncUser, 50)
	for i := range users {
		p := wire.Presence{State: wire.StateOffline, TS: 1703789400000 + int64(i)}
		switch i % 3 {
		case 0:
			p = wire.Presence{State: wire.StateOnline, Activity: wire.Coding, Project: fmt.Sprintf("project-%d", i), Language: "TypeScript"}
		case 1:
			p = wire.Presence{State: wire.StateAway, Activity: wire.Idle, Language: "Go"}
		}
		users[i] = wire.SyncUser{Username: fmt.Sprintf("user%02d", i), Presence: p}
	}
	var f wire.Frame = wire.Sync{Users: users}
	buf := make([]byte, 0, 8192)
	b.ReportAllocs()
	for b.Loop() {
		buf = wire.Append(buf[:0], f)
	}
	b.SetBytes(int64(len(buf)))
}

func BenchmarkDiff(b *testing.B) {
	// One sub-benchmark per kind of transition, so allocs/op is exact for each.
	cases := []struct {
		name  string
		prev  wire.Presence
		known bool
		next  wire.Presence
	}{
		{"u", wire.Presence{State: wire.StateOnline, Activity: wire.Coding, Project: "MyApp", Language: "Go"}, true,
			wire.Presence{State: wire.StateOnline, Activity: wire.Debugging, Project: "MyApp", Language: "Go"}},
		{"o", wire.Presence{State: wire.StateOffline, TS: 1}, true,
			wire.Presence{State: wire.StateOnline, Activity: wire.Idle, Project: "MyApp", Language: "Go"}},
		{"x", wire.Presence{State: wire.StateAway, Activity: wire.Idle}, true,
			wire.Presence{State: wire.StateOffline, TS: 1703789400000}},
		{"none", wire.Presence{State: wire.StateOnline, Activity: wire.Coding, Project: "MyApp", Language: "Go"}, true,
			wire.Presence{State: wire.StateOnline, Activity: wire.Coding, Project: "MyApp", Language: "Go"}},
	}
	for _, c := range cases {
		b.Run(c.name, func(b *testing.B) {
			b.ReportAllocs()
			for b.Loop() {
				wire.Diff("alice", c.prev, c.known, c.next)
			}
		})
	}
}
