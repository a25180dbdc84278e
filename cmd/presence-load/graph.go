package main

import (
	"bufio"
	"errors"
	"fmt"
	"io"
	"math"
	"math/rand/v2"
	"os"
	"slices"
	"sort"
	"strconv"
	"strings"

	"github.com/presenced/presenced/auth"
)

// Graph is a follow graph over users numbered 0..N-1: Follows[u] lists whom u follows (sorted,
// distinct, never u). Numbers instead of names keep a 100k-user graph in a few tens of MB and let
// the readers check isolation with a binary search.
type Graph struct {
	Names   []string
	Follows [][]int32
	index   map[string]int32
}

// GraphParams are the generator's inputs; the same values always give the same graph.
type GraphParams struct {
	Users   int
	Follows int
	Seed    uint64
	Alpha   float64
}

// Validate rejects parameters the generator cannot satisfy.
func (p GraphParams) Validate() error {
	switch {
	case p.Users < 1:
		return fmt.Errorf("--users must be at least 1, got %d", p.Users)
	case p.Follows < 0:
		return fmt.Errorf("--follows must not be negative, got %d", p.Follows)
	case p.Follows > p.Users-1:
		return fmt.Errorf("--follows %d: each user can follow at most the %d other users", p.Follows, p.Users-1)
	case p.Alpha < 0 || math.IsNaN(p.Alpha) || math.IsInf(p.Alpha, 0):
		return fmt.Errorf("--alpha must be a finite number ≥ 0, got %v", p.Alpha)
	}
	return nil
}

// GenerateGraph builds the graph: users u0..u{N-1}, each following exactly K distinct others.
// Followees are drawn with probability ∝ 1/(rank+1)^alpha, where the rank is the user's number
// (u0 is the most popular), so a few users collect most follows and most have few, like GitHub.
// Drawing is rejection sampling (repeat until K distinct); when K is close to N the rare tail is
// hard to hit by chance, so after a bounded number of draws the remaining slots are filled with
// the most popular users not yet chosen, keeping the run time O(N·K·log N).
func GenerateGraph(p GraphParams) (*Graph, error) {
	if err := p.Validate(); err != nil {
		return nil, err
	}
	n := p.Users
	cdf := make([]float64, n)
	sum := 0.0
	for r := range n {
		sum += math.Pow(float64(r+1), -p.Alpha)
		cdf[r] = sum
	}
	rng := rand.New(rand.NewPCG(p.Seed, p.Seed^0x9e3779b97f4a7c15))
	g := &Graph{Names: make([]string, n), Follows: make([][]int32, n)}
	for u := range n {
		g.Names[u] = "u" + strconv.Itoa(u)
	}
	seen := make(map[int32]bool, p.Follows)
	maxDraws := 8*p.Follows + 64
	for u := range n {
		clear(seen)
		out := make([]int32, 0, p.Follows)
		for draws := 0; len(out) < p.Follows && draws < maxDraws; draws++ {
			x := rng.Float64() * sum
			v := int32(sort.SearchFloat64s(cdf, x))
			if int(v) >= n {
				v = int32(n - 1)
			}
			if int(v) == u || seen[v] {
				continue
			}
			seen[v] = true
			out = append(out, v)
		}
		for v := int32(0); len(out) < p.Follows; v++ {
			if int(v) != u && !seen[v] {
				seen[v] = true
				out = append(out, v)
			}
		}
		slices.Sort(out)
		g.Follows[u] = out
	}
	g.buildIndex()
	return g, nil
}

func (g *Graph) buildIndex() {
	g.index = make(map[string]int32, len(g.Names))
	for i, n := range g.Names {
		g.index[n] = int32(i)
	}
}

// ID returns the number of a user name, false if the graph does not know it.
func (g *Graph) ID(name string) (int32, bool) {
	i, ok := g.index[name]
	return i, ok
}

// FollowsUser reports whether u follows v.
func (g *Graph) FollowsUser(u, v int32) bool {
	_, ok := slices.BinarySearch(g.Follows[u], v)
	return ok
}

// Followers counts each user's followers.
func (g *Graph) Followers() []int {
	c := make([]int, len(g.Names))
	for _, fs := range g.Follows {
		for _, v := range fs {
			c[v]++
		}
	}
	return c
}

// Summary is the one line printed after generating: it says whether the graph is as skewed as
// intended before anyone spends a load run on it.
func (g *Graph) Summary() string {
	c := g.Followers()
	edges, maxU := 0, 0
	for u, n := range c {
		edges += n
		if n > c[maxU] {
			maxU = u
		}
	}
	s := slices.Clone(c)
	slices.Sort(s)
	return fmt.Sprintf("graph: %d users, %d follows; followers max %d (%s), p99 %d, median %d, min %d",
		len(c), edges, c[maxU], g.Names[maxU], s[len(s)*99/100], s[len(s)/2], s[0])
}

// WriteJSON writes the dev-auth graph file format {"u1": ["u0", "u7"], ...}, streaming so a large
// graph does not need a second copy in memory.
func (g *Graph) WriteJSON(w io.Writer) error {
	bw := bufio.NewWriterSize(w, 64<<10)
	bw.WriteString("{")
	for u, fs := range g.Follows {
		if u > 0 {
			bw.WriteString(",\n")
		}
		// Names are logins (letters, digits, hyphens): nothing to escape.
		bw.WriteString(`"` + g.Names[u] + `":[`)
		for i, v := range fs {
			if i > 0 {
				bw.WriteByte(',')
			}
			bw.WriteByte('"')
			bw.WriteString(g.Names[v])
			bw.WriteByte('"')
		}
		bw.WriteString("]")
	}
	bw.WriteString("}\n")
	if err := bw.Flush(); err != nil {
		return fmt.Errorf("write graph: %w", err)
	}
	return nil
}

// WriteFile writes the graph file to path.
func (g *Graph) WriteFile(path string) error {
	f, err := os.Create(path)
	if err != nil {
		return fmt.Errorf("graph: %w", err)
	}
	if err := g.WriteJSON(f); err != nil {
		_ = f.Close()
		return err
	}
	if err := f.Close(); err != nil {
		return fmt.Errorf("graph: %w", err)
	}
	return nil
}

// Map returns the graph as the server's dev-auth graph (user → names followed).
func (g *Graph) Map() map[string][]string {
	m := make(map[string][]string, len(g.Names))
	for u, fs := range g.Follows {
		names := make([]string, len(fs))
		for i, v := range fs {
			names[i] = g.Names[v]
		}
		m[g.Names[u]] = names
	}
	return m
}

// LoadGraph reads a dev-auth graph file (auth.ParseGraph's rules). Every name that appears, as a
// follower or a followee, becomes a user; names of the form u<number> are numbered by their number
// (so a file written by `graph` maps back to the same numbering), the others follow in name order.
func LoadGraph(path string) (*Graph, error) {
	b, err := os.ReadFile(path)
	if err != nil {
		return nil, fmt.Errorf("graph: %w", err)
	}
	sg, err := auth.ParseGraph(b)
	if err != nil {
		return nil, fmt.Errorf("graph %s: %w", path, err)
	}
	return graphFromMap(sg)
}

func graphFromMap(m map[string][]string) (*Graph, error) {
	set := map[string]bool{}
	for u, fs := range m {
		set[u] = true
		for _, f := range fs {
			set[f] = true
		}
	}
	if len(set) == 0 {
		return nil, errors.New("graph: the file names no users")
	}
	names := make([]string, 0, len(set))
	for n := range set {
		names = append(names, n)
	}
	num := func(s string) (int, bool) {
		if !strings.HasPrefix(s, "u") || len(s) < 2 || (s[1] == '0' && len(s) > 2) {
			return 0, false
		}
		n, err := strconv.Atoi(s[1:])
		return n, err == nil
	}
	sort.Slice(names, func(i, j int) bool {
		a, aok := num(names[i])
		b, bok := num(names[j])
		switch {
		case aok && bok:
			return a < b
		case aok != bok:
			return aok
		}
		return names[i] < names[j]
	})
	g := &Graph{Names: names, Follows: make([][]int32, len(names))}
	g.buildIndex()
	for u, fs := range m {
		ui := g.index[u]
		out := make([]int32, 0, len(fs))
		for _, f := range fs {
			out = append(out, g.index[f])
		}
		slices.Sort(out)
		g.Follows[ui] = slices.Compact(out)
	}
	return g, nil
}
