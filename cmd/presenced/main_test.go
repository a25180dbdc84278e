package main

import (
	"bufio"
	"context"
	"encoding/json"
	"errors"
	"net/http"
	"os/exec"
	"strings"
	"syscall"
	"testing"
	"testing/synctest"
	"time"

	"go.uber.org/zap"
	"go.uber.org/zap/zaptest/observer"

	"github.com/presenced/presenced/client"
	"github.com/presenced/presenced/server"
	"github.com/presenced/presenced/testkit"
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
		if _, err := nodeConfig(o, zap.NewNop(), nil); err == nil || !strings.Contains(err.Error(), tc.want) {
			t.Errorf("%s: err = %v, want %q", name, err, tc.want)
		}
	}
	// Dev auth cannot be combined with GitHub auth's settings.
	o, err := parse([]string{"--auth", "dev", "--graph", "../../examples/graph.json", "--github-api", "https://example.com"})
	if err != nil {
		t.Fatal(err)
	}
	if _, err := nodeConfig(o, zap.NewNop(), nil); err == nil || !strings.Contains(err.Error(), "cannot be combined with GitHub auth") {
		t.Errorf("dev + --github-api: err = %v", err)
	}
	o, _ = parse([]string{"--github-api", "ftp://x"})
	if _, err := nodeConfig(o, zap.NewNop(), nil); err == nil || !strings.Contains(err.Error(), "--github-api must be an http(s) URL") {
		t.Errorf("bad --github-api: err = %v", err)
	}
	// GitHub auth is the default and needs nothing else.
	o, _ = parse(nil)
	cfg, err := nodeConfig(o, zap.NewNop(), nil)
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

// TestProcess runs the real binary the way the README does, serves a client, and checks the
// drain: SIGTERM turns /readyz off at once while the client stays connected, a second SIGTERM
// skips the rest of the drain delay, the client is told to resume elsewhere (1012), and the
// process exits 0. `presenced healthcheck` probes the running process.
func TestProcess(t *testing.T) {
	bin := testkit.BuildPresenced(t)
	cmd := exec.Command(bin, "--auth", "dev", "--graph", "../../examples/graph.json", "--listen", "127.0.0.1:0",
		"--internal-listen", "127.0.0.1:0", "--drain-delay", "1h", "--shutdown-timeout", "2h", "--log-format", "json")
	stderr, _ := cmd.StderrPipe()
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = cmd.Process.Kill(); _ = cmd.Wait() })
	type logLine struct{ Msg, Addr, Internal string }
	lines := make(chan logLine, 16)
	logsDone := make(chan struct{})
	go func() {
		defer close(logsDone)
		sc := bufio.NewScanner(stderr)
		for sc.Scan() {
			var l logLine
			if json.Unmarshal(sc.Bytes(), &l) == nil {
				select {
				case lines <- l:
				default: // nobody waits for this many lines
				}
			}
		}
	}()
	waitLog := func(msg string) logLine {
		t.Helper()
		deadline := time.After(30 * time.Second)
		for {
			select {
			case l := <-lines:
				if strings.HasPrefix(l.Msg, msg) {
					return l
				}
			case <-deadline:
				t.Fatalf("no %q log line", msg)
			}
		}
	}
	l := waitLog("presenced listening")
	in := "http://" + l.Internal
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	c, err := client.Dial(ctx, "ws://"+l.Addr+"/ws", client.Options{})
	if err != nil {
		t.Fatal(err)
	}
	w, s, err := c.Hello(wire.Hello{Token: "bob"})
	if err != nil || w.ID != "bob" || len(s.Users) != 3 {
		t.Fatalf("hello: %+v %+v %v", w, s, err)
	}
	expect(t, in+"/readyz", http.StatusOK, "ok")
	if out, err := exec.Command(bin, "healthcheck", in+"/healthz").CombinedOutput(); err != nil {
		t.Fatalf("presenced healthcheck: %v\n%s", err, out)
	}

	if err := cmd.Process.Signal(syscall.SIGTERM); err != nil {
		t.Fatal(err)
	}
	waitLog("draining")
	expect(t, in+"/readyz", http.StatusServiceUnavailable, "draining")
	expect(t, in+"/healthz", http.StatusOK, "ok")
	if err := cmd.Process.Signal(syscall.SIGTERM); err != nil { // skips the hour
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
	<-logsDone // stderr is at EOF: the process has exited
	if err := cmd.Wait(); err != nil {
		t.Fatalf("exit: %v", err)
	}
}

// TestClusterProvider: the k8s provider refuses the automanaged settings, an unknown provider
// is named, and outside a pod the k8s provider fails at start saying where it works.
func TestClusterProvider(t *testing.T) {
	dev := []string{"--auth", "dev", "--graph", "../../examples/graph.json", "--redis", "redis://127.0.0.1:1/0", "--cluster-port", "7100"}
	for _, tc := range []struct {
		args []string
		want string
	}{
		{[]string{"--cluster-provider", "k8s", "--cluster-members", "a:1"}, "drop --cluster-automanage-port and --cluster-members"},
		{[]string{"--cluster-provider", "consul"}, `--cluster-provider "consul": want automanaged or k8s`},
		{nil, "--cluster-port needs --cluster-automanage-port and --cluster-members"},
	} {
		o, err := parse(append(append([]string{}, dev...), tc.args...))
		if err != nil {
			t.Fatal(err)
		}
		if _, err := nodeConfig(o, zap.NewNop(), nil); err == nil || !strings.Contains(err.Error(), tc.want) {
			t.Errorf("%v: err = %v, want %q", tc.args, err, tc.want)
		}
	}
	t.Setenv("KUBERNETES_SERVICE_HOST", "")
	o, err := parse(append(dev, "--cluster-provider", "k8s"))
	if err != nil {
		t.Fatal(err)
	}
	cfg, err := nodeConfig(o, zap.NewNop(), nil)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := server.New(cfg); err == nil || !strings.Contains(err.Error(), "it works only inside a Kubernetes pod") {
		t.Fatalf("k8s provider outside a pod: err = %v", err)
	}
}
