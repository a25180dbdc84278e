package main

import (
	"bufio"
	"context"
	"errors"
	"os/exec"
	"path/filepath"
	"regexp"
	"strings"
	"syscall"
	"testing"
	"testing/synctest"
	"time"

	"go.uber.org/zap"
	"go.uber.org/zap/zaptest/observer"

	"github.com/presenced/presenced/client"
	"github.com/presenced/presenced/wire"
)

func TestParseFlagsAndEnv(t *testing.T) {
	t.Setenv("PRESENCED_AWAY_AFTER", "7m")
	t.Setenv("PRESENCED_LISTEN", ":9999")
	o, err := parse([]string{"--listen", "127.0.0.1:1", "--debounce", "3s"})
	if err != nil {
		t.Fatal(err)
	}
	if o.listen != "127.0.0.1:1" || o.awayAfter != 7*time.Minute || o.debounce != 3*time.Second || o.resumeWindow != 60*time.Second || o.authMode != "github" {
		t.Fatalf("options = %+v (flags win over env, env over defaults)", o)
	}
	t.Setenv("PRESENCED_DEBOUNCE", "soon")
	if _, err := parse(nil); err == nil || !strings.Contains(err.Error(), "PRESENCED_DEBOUNCE") {
		t.Fatalf("bad env: err = %v, want it to name PRESENCED_DEBOUNCE", err)
	}
}

func TestNodeConfigRefusals(t *testing.T) {
	base, _ := parse(nil)
	cases := map[string]struct {
		mode, graph, want string
	}{
		"dev without graph": {"dev", "", "--auth dev needs --graph FILE"},
		"github with graph": {"github", "x.json", "--graph is for --auth dev"},
		"unknown auth":      {"ldap", "", `--auth must be github or dev, not "ldap"`},
		"missing graph":     {"dev", "/nonexistent/graph.json", "no such file"},
	}
	for name, tc := range cases {
		o := base
		o.authMode, o.graph = tc.mode, tc.graph
		if _, err := nodeConfig(o, zap.NewNop()); err == nil || !strings.Contains(err.Error(), tc.want) {
			t.Errorf("%s: err = %v, want %q", name, err, tc.want)
		}
	}
	// Dev auth cannot be combined with GitHub auth's settings.
	o, err := parse([]string{"--auth", "dev", "--graph", "../../examples/graph.json", "--github-api", "https://example.com"})
	if err != nil {
		t.Fatal(err)
	}
	if _, err := nodeConfig(o, zap.NewNop()); err == nil || !strings.Contains(err.Error(), "cannot be combined with GitHub auth") {
		t.Errorf("dev + --github-api: err = %v", err)
	}
	o, _ = parse([]string{"--github-api", "ftp://x"})
	if _, err := nodeConfig(o, zap.NewNop()); err == nil || !strings.Contains(err.Error(), "--github-api must be an http(s) URL") {
		t.Errorf("bad --github-api: err = %v", err)
	}
	// GitHub auth is the default and needs nothing else.
	o, _ = parse(nil)
	cfg, err := nodeConfig(o, zap.NewNop())
	if err != nil || cfg.Auth == nil || cfg.Graph == nil {
		t.Fatalf("default github auth: %v", err)
	}
}

// TestDevAuthWarnsEveryPeriod: the dev warning repeats while the server runs, and stops with it.
func TestDevAuthWarnsEveryPeriod(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		core, logs := observer.New(zap.WarnLevel)
		ctx, cancel := context.WithCancel(context.Background())
		done := make(chan struct{})
		go func() { warnDevAuth(ctx, zap.New(core), time.Minute); close(done) }()
		time.Sleep(3*time.Minute + time.Second)
		if n := logs.FilterMessageSnippet("DEV AUTH").Len(); n != 3 {
			t.Fatalf("%d warnings in 3 minutes, want 3", n)
		}
		cancel()
		<-done
	})
}

// TestProcess runs the real binary the way the README does, serves a client, and checks that
// SIGTERM tells the client to resume elsewhere (1012) and exits 0.
func TestProcess(t *testing.T) {
	bin := filepath.Join(t.TempDir(), "presenced")
	if out, err := exec.Command("go", "build", "-o", bin, ".").CombinedOutput(); err != nil {
		t.Fatalf("build: %v\n%s", err, out)
	}
	cmd := exec.Command(bin, "--auth", "dev", "--graph", "../../examples/graph.json", "--listen", "127.0.0.1:0", "--log-format", "json")
	stderr, _ := cmd.StderrPipe()
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = cmd.Process.Kill(); _ = cmd.Wait() })
	addr := make(chan string, 1)
	go func() {
		re := regexp.MustCompile(`"addr":"([^"]+)"`)
		sc := bufio.NewScanner(stderr)
		for sc.Scan() {
			if m := re.FindStringSubmatch(sc.Text()); m != nil {
				addr <- m[1]
			}
		}
	}()
	var a string
	select {
	case a = <-addr:
	case <-time.After(30 * time.Second):
		t.Fatal("no listening log line")
	}
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	c, err := client.Dial(ctx, "ws://"+a+"/ws", client.Options{})
	if err != nil {
		t.Fatal(err)
	}
	w, s, err := c.Hello(wire.Hello{Token: "bob"})
	if err != nil || w.ID != "bob" || len(s.Users) != 3 {
		t.Fatalf("hello: %+v %+v %v", w, s, err)
	}
	if err := cmd.Process.Signal(syscall.SIGTERM); err != nil {
		t.Fatal(err)
	}
	f, _, err := c.Read()
	if e, ok := f.(wire.ErrorFrame); !ok || e.Code != wire.ErrServerRestart {
		t.Fatalf("want error server_restart, got %#v %v", f, err)
	}
	_, _, err = c.Read()
	var ce *client.CloseError
	if !errors.As(err, &ce) || ce.Code != wire.CloseServiceRestart || ce.Advice() != wire.AdviceResume {
		t.Fatalf("want close 1012 (resume), got %v", err)
	}
	if err := cmd.Wait(); err != nil {
		t.Fatalf("exit: %v", err)
	}
}
