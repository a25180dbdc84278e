package main

import (
	"bufio"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"os"
	"os/exec"
	"strconv"
	"sync"
	"time"
)

// The coordinator drives shards with commands: directly with --procs 1, and as JSON lines on a
// worker's stdin otherwise (replies come back one JSON line each on its stdout; a worker's logs go
// to stderr). One process may hold at most ~20k open files, so a 100k-client run needs workers;
// keeping the in-process path identical to the worker path means the test covers both.

// command is one step of a run. Times are unix nanoseconds, so every worker starts a phase at the
// same instant.
type command struct {
	Op string `json:"op"` // init, connect, count, status, storm, truth, check, report, close

	Config   *Config `json:"config,omitempty"`   // init
	Deadline int64   `json:"deadline,omitempty"` // init: the run's end; the worker stops by itself then
	Lo       int     `json:"lo,omitempty"`       // init: the client numbers [Lo, Hi) this shard owns
	Hi       int     `json:"hi,omitempty"`

	Start      int64   `json:"start,omitempty"` // status, storm
	Dur        int64   `json:"dur,omitempty"`   // status: sending time; storm: the window
	Rate       float64 `json:"rate,omitempty"`  // status: this shard's changes per second
	SteadyFrom int64   `json:"steady_from,omitempty"`
	SteadyTo   int64   `json:"steady_to,omitempty"`
	Truth      []Truth `json:"truth,omitempty"` // check
}

// reply answers one command.
type reply struct {
	Err     string         `json:"err,omitempty"`
	Connect *ConnectResult `json:"connect,omitempty"`
	Frames  int64          `json:"frames,omitempty"` // count: every frame received so far
	Storm   *StormResult   `json:"storm,omitempty"`
	Truth   []Truth        `json:"truth,omitempty"`
	Check   *CheckResult   `json:"check,omitempty"`
	Report  *ShardReport   `json:"report,omitempty"`
}

// shardAPI is a shard, local or in a worker.
type shardAPI interface {
	do(ctx context.Context, cmd command) (reply, error)
	stop() error // after close: release the worker
}

// localShard runs commands in this process.
type localShard struct{ sh *shard }

func (l localShard) do(ctx context.Context, cmd command) (reply, error) {
	r := l.sh.handle(ctx, cmd)
	if r.Err != "" {
		return r, errors.New(r.Err)
	}
	return r, nil
}

func (localShard) stop() error { return nil }

// handle runs one command.
func (sh *shard) handle(ctx context.Context, cmd command) reply {
	switch cmd.Op {
	case "connect":
		return reply{Connect: sh.connectAll(ctx)}
	case "count":
		var n int64
		for p := range sh.stats.frames {
			for k := range sh.stats.frames[p] {
				n += sh.stats.frames[p][k].Load()
			}
		}
		return reply{Frames: n}
	case "status":
		sh.steadyFrom.Store(cmd.SteadyFrom)
		sh.steadyTo.Store(cmd.SteadyTo)
		if err := sh.statusPhase(ctx, time.Unix(0, cmd.Start), time.Duration(cmd.Dur), cmd.Rate); err != nil {
			return reply{Err: fmt.Sprintf("status phase: %v", err)}
		}
		return reply{}
	case "storm":
		return reply{Storm: sh.storm(ctx, time.Unix(0, cmd.Start), time.Duration(cmd.Dur))}
	case "truth":
		return reply{Truth: sh.truth()}
	case "check":
		if len(cmd.Truth) != len(sh.g.Names) {
			return reply{Err: fmt.Sprintf("check: truth for %d users, graph has %d", len(cmd.Truth), len(sh.g.Names))}
		}
		return reply{Check: sh.check(ctx, cmd.Truth, sh.cfg.CheckWait)}
	case "report":
		return reply{Report: sh.report()}
	case "close":
		sh.closeAll()
		return reply{}
	}
	return reply{Err: fmt.Sprintf("unknown command %q", cmd.Op)}
}

// remoteShard is a worker process: this binary re-executed with the hidden --worker flag.
type remoteShard struct {
	cmd     *exec.Cmd
	in      io.WriteCloser
	enc     *json.Encoder
	replies chan reply
	readErr error // set before replies is closed
	once    sync.Once
}

// startWorker starts worker i of p and sends it its config and client slice.
func startWorker(ctx context.Context, exe string, cfg *Config, i, p, lo, hi int) (*remoteShard, error) {
	// Not CommandContext: a cancelled run still asks its workers for their counters and lets
	// them close their sockets. A worker ends at end of input or at the deadline it is given.
	cmd := exec.Command(exe, "run", "--worker", strconv.Itoa(i)+"/"+strconv.Itoa(p))
	cmd.Stderr = os.Stderr
	in, err := cmd.StdinPipe()
	if err != nil {
		return nil, fmt.Errorf("worker %d: %w", i, err)
	}
	out, err := cmd.StdoutPipe()
	if err != nil {
		return nil, fmt.Errorf("worker %d: %w", i, err)
	}
	if err := cmd.Start(); err != nil {
		return nil, fmt.Errorf("worker %d: start %s: %w", i, exe, err)
	}
	r := &remoteShard{cmd: cmd, in: in, enc: json.NewEncoder(in), replies: make(chan reply)}
	go r.read(out)
	init := command{Op: "init", Config: cfg, Lo: lo, Hi: hi}
	if d, ok := ctx.Deadline(); ok {
		init.Deadline = d.UnixNano()
	}
	if _, err := r.do(ctx, init); err != nil {
		_ = r.stop()
		return nil, fmt.Errorf("worker %d: %w", i, err)
	}
	return r, nil
}

func (r *remoteShard) read(out io.Reader) {
	dec := json.NewDecoder(bufio.NewReaderSize(out, 64<<10))
	for {
		var rp reply
		if err := dec.Decode(&rp); err != nil {
			r.readErr = err
			close(r.replies)
			return
		}
		r.replies <- rp
	}
}

func (r *remoteShard) do(ctx context.Context, cmd command) (reply, error) {
	if err := r.enc.Encode(cmd); err != nil {
		return reply{}, fmt.Errorf("worker %d: send %s: %w", r.cmd.Process.Pid, cmd.Op, err)
	}
	select {
	case rp, ok := <-r.replies:
		if !ok {
			return reply{}, fmt.Errorf("worker %d: no reply to %s: %w", r.cmd.Process.Pid, cmd.Op, r.readErr)
		}
		if rp.Err != "" {
			return rp, fmt.Errorf("worker %d: %s", r.cmd.Process.Pid, rp.Err)
		}
		return rp, nil
	case <-ctx.Done():
		return reply{}, ctx.Err()
	}
}

// stop closes the worker's stdin (a worker exits at end of input, closing its clients) and
// waits; a worker still busy after stopGrace is killed.
func (r *remoteShard) stop() error {
	var err error
	r.once.Do(func() {
		_ = r.in.Close()
		done := make(chan error, 1)
		go func() {
			for range r.replies { // drain until the worker's stdout closes
			}
			done <- r.cmd.Wait()
		}()
		tm := time.NewTimer(stopGrace)
		defer tm.Stop()
		select {
		case err = <-done:
		case <-tm.C:
			_ = r.cmd.Process.Kill()
			err = fmt.Errorf("killed after %v: %w", stopGrace, <-done)
		}
	})
	if err != nil {
		return fmt.Errorf("worker %d: %w", r.cmd.Process.Pid, err)
	}
	return nil
}

const stopGrace = 30 * time.Second

// serveWorker is the worker's side: init, then one reply per command until stdin ends.
func serveWorker(ctx context.Context, in io.Reader, out io.Writer) error {
	dec := json.NewDecoder(bufio.NewReaderSize(in, 64<<10))
	enc := json.NewEncoder(out)
	var sh *shard
	defer func() {
		if sh != nil {
			sh.closeAll()
		}
	}()
	for {
		var cmd command
		if err := dec.Decode(&cmd); err != nil {
			if errors.Is(err, io.EOF) {
				return nil
			}
			return fmt.Errorf("worker: read command: %w", err)
		}
		var rp reply
		switch {
		case cmd.Op == "init" && sh != nil:
			rp.Err = "init twice"
		case cmd.Op == "init":
			if cmd.Config == nil || cmd.Lo < 0 || cmd.Hi < cmd.Lo {
				rp.Err = "init: bad config or client range"
				break
			}
			cfg := cmd.Config
			g, err := loadGraph(cfg.GraphFile, cfg.GraphParams)
			if err != nil {
				rp.Err = err.Error()
				break
			}
			sh = newShard(cfg, g, cmd.Lo, min(cmd.Hi, cfg.Clients))
			if cmd.Deadline > 0 {
				var cancel context.CancelFunc
				ctx, cancel = context.WithDeadline(ctx, time.Unix(0, cmd.Deadline))
				defer cancel()
			}
		case sh == nil:
			rp.Err = cmd.Op + " before init"
		default:
			rp = sh.handle(ctx, cmd)
		}
		if err := enc.Encode(rp); err != nil {
			return fmt.Errorf("worker: write reply: %w", err)
		}
	}
}
