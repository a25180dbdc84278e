package auth

import (
	"context"
	"errors"
	"os"
	"path/filepath"
	"reflect"
	"strings"
	"testing"
)

func TestValidLogin(t *testing.T) {
	for s, want := range map[string]bool{
		"alice": true, "a": true, "bob-smith": true, "A1-b2": true, strings.Repeat("x", 39): true,
		"": false, "-bob": false, "bob-": false, "bo--b": false, "bob smith": false, "bob!": false,
		strings.Repeat("x", 40): false, "ünïcode": false,
	} {
		if got := ValidLogin(s); got != want {
			t.Errorf("ValidLogin(%q) = %v, want %v", s, got, want)
		}
	}
}

func TestDevAuth(t *testing.T) {
	id, err := DevAuth{}.Authenticate(context.Background(), "alice")
	if err != nil || id != (Identity{ID: "alice", Login: "alice"}) {
		t.Fatalf("Authenticate(alice) = %+v, %v", id, err)
	}
	if _, err := (DevAuth{}).Authenticate(context.Background(), "not a user"); !errors.Is(err, ErrUnauthorized) {
		t.Fatalf("err = %v, want ErrUnauthorized", err)
	}
}

func TestParseGraph(t *testing.T) {
	g, err := ParseGraph([]byte(`{"bob": ["carol", "alice", "alice", "bob"], "carol": []}`))
	if err != nil {
		t.Fatal(err)
	}
	want := StaticGraph{"bob": {"alice", "carol"}, "carol": {}}
	if !reflect.DeepEqual(g, want) {
		t.Fatalf("graph = %v, want %v (sorted, deduplicated, no self-follow)", g, want)
	}
	if f, changed, _ := g.Fetch(context.Background(), Identity{ID: "nobody"}, "", nil); len(f.Users) != 0 || !changed {
		t.Fatalf("unknown user follows %v", f)
	}
	bob, changed, _ := g.Fetch(context.Background(), Identity{ID: "bob", Login: "bob"}, "", nil)
	if want := []Followee{{"alice", "alice"}, {"carol", "carol"}}; !reflect.DeepEqual(bob.Users, want) || !changed {
		t.Fatalf("bob follows %v (changed %v), want %v", bob.Users, changed, want)
	}
	if again, changed, _ := g.Fetch(context.Background(), Identity{ID: "bob"}, "", bob); changed || again != bob {
		t.Fatalf("a second fetch of the same list reports a change")
	}
	for in, msg := range map[string]string{
		`[]`:               "want a JSON object",
		`{"bad name": []}`: `"bad name" is not a valid username`,
		`{"bob": ["-x"]}`:  `"-x" (followed by "bob") is not a valid username`,
		`{"bob": "alice"}`: "want a JSON object",
	} {
		if _, err := ParseGraph([]byte(in)); err == nil || !strings.Contains(err.Error(), msg) {
			t.Errorf("ParseGraph(%s) = %v, want an error containing %q", in, err, msg)
		}
	}
}

func TestLoadGraphFile(t *testing.T) {
	g, err := LoadGraphFile("../examples/graph.json")
	if err != nil || len(g["bob"]) == 0 {
		t.Fatalf("examples/graph.json: %v, %v", g, err)
	}
	missing := filepath.Join(t.TempDir(), "nope.json")
	if _, err := LoadGraphFile(missing); !errors.Is(err, os.ErrNotExist) {
		t.Fatalf("err = %v, want ErrNotExist wrapped", err)
	}
}
