package testkit

import (
	"bufio"
	"fmt"
	"net"
	"os/exec"
	"strconv"
	"strings"
	"testing"
	"time"
)

// Redis is a redis-server process started for one test on a free loopback port, with nothing
// kept on disk. t.Cleanup stops it.
type Redis struct {
	Addr string
	cmd  *exec.Cmd
	port int
	tb   testing.TB
}

// URL is the redis:// URL of the server (database 0).
func (r *Redis) URL() string { return "redis://" + r.Addr + "/0" }

// RequireRedis starts a redis-server on 127.0.0.1. A machine without redis-server fails the test
// with what to install: .ci/run installs it.
func RequireRedis(tb testing.TB) *Redis {
	tb.Helper()
	path, err := exec.LookPath("redis-server")
	if err != nil {
		tb.Fatalf("testkit: redis-server not found: install it (Debian: apt-get install redis-server)")
	}
	r := &Redis{tb: tb, port: FreePorts(tb, 1)[0]}
	r.Addr = net.JoinHostPort("127.0.0.1", strconv.Itoa(r.port))
	r.start(path)
	tb.Cleanup(r.Stop)
	return r
}

func (r *Redis) start(path string) {
	r.tb.Helper()
	r.cmd = exec.Command(path, "--bind", "127.0.0.1", "--port", strconv.Itoa(r.port), "--save", "",
		"--appendonly", "no", "--daemonize", "no", "--loglevel", "warning", "--dir", r.tb.TempDir())
	out, _ := r.cmd.StdoutPipe()
	if err := r.cmd.Start(); err != nil {
		r.tb.Fatalf("testkit: start redis-server: %v", err)
	}
	go func() { // drain its output so it never blocks on a full pipe
		sc := bufio.NewScanner(out)
		for sc.Scan() {
		}
	}()
	deadline := time.Now().Add(10 * time.Second)
	for {
		if c, err := net.DialTimeout("tcp", r.Addr, time.Second); err == nil {
			ok := ping(c)
			_ = c.Close()
			if ok {
				return
			}
		}
		if time.Now().After(deadline) {
			r.tb.Fatalf("testkit: redis-server on %s did not answer within 10 s", r.Addr)
		}
		time.Sleep(10 * time.Millisecond) // polling a process start: there is nothing to wait on
	}
}

func ping(c net.Conn) bool {
	_ = c.SetDeadline(time.Now().Add(time.Second))
	if _, err := c.Write([]byte("PING\r\n")); err != nil {
		return false
	}
	line, err := bufio.NewReader(c).ReadString('\n')
	return err == nil && strings.HasPrefix(line, "+PONG")
}

// Stop kills the server (nothing is kept: it comes back empty).
func (r *Redis) Stop() {
	if r.cmd == nil || r.cmd.Process == nil {
		return
	}
	_ = r.cmd.Process.Kill()
	_ = r.cmd.Wait()
	r.cmd = nil
}

// Restart stops the server and starts a new empty one on the same port.
func (r *Redis) Restart() {
	r.tb.Helper()
	r.Stop()
	r.Start()
}

// Start starts a new empty server on the same port after Stop.
func (r *Redis) Start() {
	r.tb.Helper()
	path, _ := exec.LookPath("redis-server")
	r.start(path)
}

// String names the server in failures.
func (r *Redis) String() string { return fmt.Sprintf("redis(%s)", r.Addr) }
