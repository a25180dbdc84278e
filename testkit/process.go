package testkit

import (
	"bufio"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"go.uber.org/goleak"

	"github.com/presenced/presenced/client"
	"github.com/presenced/presenced/testkit/leak"
)

var (
	buildOnce sync.Once
	buildDir  string
	buildPath string
	buildErr  error
	buildOut  []byte
)

// removeBuild deletes the binary BuildPresenced made.
func removeBuild() {
	if buildDir != "" {
		_ = os.RemoveAll(buildDir)
	}
}

// VerifyTestMain is the TestMain of a package whose tests run nodes or processes: it runs the
// tests, fails them if any goroutine outlives them (goleak, with leak.Options), and removes the
// binary BuildPresenced made.
func VerifyTestMain(m *testing.M) {
	goleak.VerifyTestMain(m, append(leak.Options(), goleak.Cleanup(func(code int) {
		removeBuild()
		os.Exit(code)
	}))...)
}

// BuildPresenced builds cmd/presenced once per test binary and returns the binary's path.
func BuildPresenced(tb testing.TB) string {
	tb.Helper()
	buildOnce.Do(func() {
		root, err := exec.Command("go", "list", "-m", "-f", "{{.Dir}}").Output()
		if err != nil {
			buildErr = err
			return
		}
		dir, err := os.MkdirTemp("", "presenced-test-")
		if err != nil {
			buildErr = err
			return
		}
		buildDir, buildPath = dir, filepath.Join(dir, "presenced")
		cmd := exec.Command("go", "build", "-o", buildPath, "./cmd/presenced")
		cmd.Dir = strings.TrimSpace(string(root))
		buildOut, buildErr = cmd.CombinedOutput()
	})
	if buildErr != nil {
		tb.Fatalf("testkit: build presenced: %v\n%s", buildErr, buildOut)
	}
	return buildPath
}

// Proc is a presenced process started for one test; t.Cleanup kills it.
type Proc struct {
	*Node
	cmd  *exec.Cmd
	args []string
	done chan struct{}
	err  error

	mu      sync.Mutex
	members int      // latest cluster topology size it logged
	tail    []string // its last lines that are not JSON logs (a panic, a runtime error), at most tailLines
	warns   []string // its last warning and error log lines, at most tailLines
	changed chan struct{}
}

// tailLines is how much of a process's non-JSON output is kept, to say why it exited.
const tailLines = 40

// StartProcess runs the binary with args plus --listen on a free loopback port and JSON logs,
// and returns once it listens.
func StartProcess(tb testing.TB, bin string, args ...string) *Proc {
	tb.Helper()
	p, err := StartProcessE(tb, bin, args...)
	if err != nil {
		tb.Fatal(err)
	}
	return p
}

// defaultProcArgs end every process's arguments: free loopback ports for both listeners (several
// processes share one machine), no drain delay (tests stop processes often) and JSON logs (the
// harness reads the listening address from them).
var defaultProcArgs = []string{"--listen", "127.0.0.1:0", "--internal-listen", "127.0.0.1:0", "--drain-delay", "0", "--log-format", "json"}

// StartProcessE is StartProcess returning its error, for callers on other goroutines (which
// must not call t.Fatal). t.Cleanup still kills the process.
func StartProcessE(tb testing.TB, bin string, args ...string) (*Proc, error) {
	args = append(args, defaultProcArgs...)
	p := &Proc{cmd: exec.Command(bin, args...), args: args, done: make(chan struct{}), changed: make(chan struct{}, 1)}
	stderr, err := p.cmd.StderrPipe()
	if err != nil {
		return nil, fmt.Errorf("testkit: %w", err)
	}
	if err := p.cmd.Start(); err != nil {
		return nil, fmt.Errorf("testkit: start %s: %w", bin, err)
	}
	addr := make(chan string, 1)
	logsRead := make(chan struct{})
	go func() { p.readLogs(stderr, addr); close(logsRead) }()
	// Wait closes the pipe: only once everything is read, or a panic's trace could be lost.
	go func() { <-logsRead; p.err = p.cmd.Wait(); close(p.done) }()
	tb.Cleanup(p.Kill)
	select {
	case a := <-addr:
		p.Node = &Node{URL: "ws://" + a + "/ws", opts: client.Options{}}
		return p, nil
	case <-p.done:
		p.mu.Lock()
		defer p.mu.Unlock()
		return nil, fmt.Errorf("testkit: presenced exited before listening: %v; its last output that is not a log line:\n%s", p.err, strings.Join(p.tail, "\n"))
	case <-time.After(60 * time.Second):
		return nil, errors.New("testkit: presenced did not listen within 60 s")
	}
}

func (p *Proc) readLogs(r interface{ Read([]byte) (int, error) }, addr chan<- string) {
	sc := bufio.NewScanner(r)
	sc.Buffer(make([]byte, 64<<10), 1<<20)
	for sc.Scan() {
		var line struct {
			Level   string `json:"level"`
			Msg     string `json:"msg"`
			Addr    string `json:"addr"`
			Members *int   `json:"members"`
		}
		if json.Unmarshal(sc.Bytes(), &line) != nil {
			p.mu.Lock()
			p.tail = keepLast(p.tail, sc.Text())
			p.mu.Unlock()
			continue
		}
		if line.Level == "warn" || line.Level == "error" {
			p.mu.Lock()
			p.warns = keepLast(p.warns, sc.Text())
			p.mu.Unlock()
		}
		switch {
		case line.Msg == "presenced listening":
			addr <- line.Addr
		case line.Members != nil:
			p.mu.Lock()
			p.members = *line.Members
			p.mu.Unlock()
			select {
			case p.changed <- struct{}{}:
			default:
			}
		}
	}
	// A line too long for the scanner ends the loop: drain the rest, so that the process
	// never blocks on a full pipe and Wait (which closes the pipe) runs only after its exit.
	_, _ = io.Copy(io.Discard, r)
}

// keepLast appends line to lines, keeping the last tailLines.
func keepLast(lines []string, line string) []string {
	if len(lines) == tailLines {
		lines = append(lines[:0], lines[1:]...)
	}
	return append(lines, line)
}

// WaitMembers waits until the process has logged a cluster topology of n members.
func (p *Proc) WaitMembers(tb testing.TB, n int) {
	tb.Helper()
	deadline := time.After(60 * time.Second)
	for {
		p.mu.Lock()
		got := p.members
		p.mu.Unlock()
		if got == n {
			return
		}
		select {
		case <-p.changed:
		case <-deadline:
			p.mu.Lock()
			warns := strings.Join(p.warns, "\n")
			p.mu.Unlock()
			tb.Fatalf("testkit: cluster topology has %d members, want %d; its last warnings and errors:\n%s", got, n, warns)
		}
	}
}

// Kill ends the process with SIGKILL (a node that dies).
func (p *Proc) Kill() {
	_ = p.cmd.Process.Signal(syscall.SIGKILL)
	<-p.done
}

// Stop sends SIGTERM (a graceful drain) and waits for the exit.
func (p *Proc) Stop(tb testing.TB) {
	tb.Helper()
	_ = p.cmd.Process.Signal(syscall.SIGTERM)
	select {
	case <-p.done:
	case <-time.After(60 * time.Second):
		tb.Fatal("testkit: presenced did not exit within 60 s of SIGTERM")
	}
}

// Restart starts the binary again with the same arguments (after Stop or Kill) and returns the
// new process.
func (p *Proc) Restart(tb testing.TB) *Proc {
	tb.Helper()
	<-p.done
	// The arguments end with the defaultProcArgs StartProcess added.
	return StartProcess(tb, p.cmd.Path, p.args[:len(p.args)-len(defaultProcArgs)]...)
}
