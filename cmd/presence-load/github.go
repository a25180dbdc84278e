package main

import (
	"context"
	"encoding/json"
	"flag"
	"fmt"
	"io"
	"net"
	"time"

	"github.com/presenced/presenced/testkit"
)

// githubCmd serves the load graph as a fake GitHub API (testkit.FakeGitHub: GET /user and
// GET /user/following with pages, ETags and rate-limit headers), so presenced can run its real
// --auth github path under load. User i is GitHub id i+1 with login u<i> and token
// <prefix>u<i>. It serves until --for has passed or a signal arrives, then prints the request
// counts: what presenced asked of "GitHub" for the connected users.
func githubCmd(ctx context.Context, args []string, stdout, stderr io.Writer) error {
	fs := flag.NewFlagSet("presence-load github", flag.ContinueOnError)
	fs.SetOutput(stderr)
	var p GraphParams
	graphFlags(fs, &p)
	file := fs.String("graph", "", "serve this dev-auth graph file instead of generating one")
	listen := fs.String("listen", "127.0.0.1:8090", "address to serve the fake API on (loopback only)")
	prefix := fs.String("token-prefix", "tok-", "user u<i>'s token is this prefix + u<i> (give the same to run --token-prefix)")
	serveFor := fs.Duration("for", time.Hour, "stop serving after this long (a bound, so a forgotten fake ends by itself)")
	fs.Usage = func() {
		fmt.Fprintln(stderr, "usage: presence-load github [flags]\n\nServes the graph as a fake GitHub API for presenced --auth github --github-api http://ADDR.")
		fs.PrintDefaults()
	}
	if err := fs.Parse(args); err != nil {
		return err
	}
	g, err := loadGraph(*file, p)
	if err != nil {
		return err
	}
	host, _, err := net.SplitHostPort(*listen)
	if err != nil {
		return fmt.Errorf("--listen: %w", err)
	}
	if ip := net.ParseIP(host); ip == nil || !ip.IsLoopback() {
		return fmt.Errorf("--listen %s: the fake GitHub serves on loopback addresses only", *listen)
	}
	ln, err := net.Listen("tcp", *listen)
	if err != nil {
		return fmt.Errorf("listen on %s: %w", *listen, err)
	}
	f := serveGitHub(g, ln, *prefix)
	defer f.Close()
	fmt.Fprintf(stdout, "fake GitHub API for %d users at %s (tokens %su<i>)\n", len(g.Names), f.URL(), *prefix)
	start := time.Now()
	select {
	case <-ctx.Done():
	case <-time.After(*serveFor):
	}
	st := f.Requests()
	out := struct {
		Seconds float64                 `json:"seconds"`
		Stats   testkit.FakeGitHubStats `json:"requests"`
	}{time.Since(start).Seconds(), st}
	b, err := json.Marshal(out)
	if err != nil {
		return err
	}
	fmt.Fprintf(stdout, "%s\n", b)
	return nil
}

// serveGitHub serves g on ln as a fake GitHub API: user i is id i+1, login g.Names[i], token
// prefix+login, following g.Follows[i] in order.
func serveGitHub(g *Graph, ln net.Listener, prefix string) *testkit.FakeGitHub {
	f := testkit.ServeFakeGitHub(ln)
	for i, name := range g.Names {
		f.AddUser(int64(i+1), name, prefix+name)
	}
	for i, follows := range g.Follows {
		ids := make([]int64, len(follows))
		for j, v := range follows {
			ids[j] = int64(v) + 1
		}
		f.SetFollowing(int64(i+1), ids...)
	}
	return f
}
