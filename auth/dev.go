package auth

import (
	"context"
	"encoding/json"
	"fmt"
	"os"
	"slices"
	"sort"
)

var (
	_ Authenticator = DevAuth{}
	_ Graph         = StaticGraph{}
)

// DevAuth trusts the token as the username: for local development only. Any valid GitHub-style
// login is accepted, including users absent from the graph (they follow no one).
type DevAuth struct{}

func (DevAuth) Authenticate(_ context.Context, token string) (Identity, error) {
	if !ValidLogin(token) {
		return Identity{}, fmt.Errorf("%w: dev auth takes a username (letters, digits, single hyphens, at most 39)", ErrUnauthorized)
	}
	return Identity{ID: token, Login: token}, nil
}

// ValidLogin reports whether s is shaped like a GitHub login: 1–39 ASCII letters, digits and
// hyphens, not starting or ending with a hyphen, no double hyphen.
func ValidLogin(s string) bool {
	if len(s) == 0 || len(s) > 39 || s[0] == '-' || s[len(s)-1] == '-' {
		return false
	}
	for i := 0; i < len(s); i++ {
		c := s[i]
		switch {
		case c >= 'a' && c <= 'z', c >= 'A' && c <= 'Z', c >= '0' && c <= '9':
		case c == '-' && s[i-1] != '-':
		default:
			return false
		}
	}
	return true
}

// StaticGraph is a follow graph fixed at start: user → users they follow.
type StaticGraph map[string][]string

// Fetch returns the file's list; changed is false when prev holds the same users.
func (g StaticGraph) Fetch(_ context.Context, who Identity, _ string, prev *FollowList) (*FollowList, bool, error) {
	names := g[who.ID]
	l := &FollowList{Users: make([]Followee, len(names))}
	for i, n := range names {
		l.Users[i] = Followee{ID: n, Login: n}
	}
	if prev != nil && slices.Equal(prev.Users, l.Users) {
		return prev, false, nil
	}
	return l, true, nil
}

// LoadGraphFile reads a JSON object {"bob": ["alice", "carol"]} (bob follows alice and carol).
// Names must be valid logins; duplicates and self-follows are removed.
func LoadGraphFile(path string) (StaticGraph, error) {
	b, err := os.ReadFile(path)
	if err != nil {
		return nil, fmt.Errorf("graph file: %w", err)
	}
	return ParseGraph(b)
}

// ParseGraph parses the graph file format (see LoadGraphFile).
func ParseGraph(b []byte) (StaticGraph, error) {
	var raw map[string][]string
	if err := json.Unmarshal(b, &raw); err != nil {
		return nil, fmt.Errorf("graph file: want a JSON object of username → [usernames it follows]: %w", err)
	}
	g := make(StaticGraph, len(raw))
	for user, follows := range raw {
		if !ValidLogin(user) {
			return nil, fmt.Errorf("graph file: %q is not a valid username", user)
		}
		seen := map[string]bool{user: true}
		out := make([]string, 0, len(follows))
		for _, f := range follows {
			if !ValidLogin(f) {
				return nil, fmt.Errorf("graph file: %q (followed by %q) is not a valid username", f, user)
			}
			if !seen[f] {
				seen[f] = true
				out = append(out, f)
			}
		}
		sort.Strings(out)
		g[user] = out
	}
	return g, nil
}
