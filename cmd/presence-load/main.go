// Command presence-load is presenced's load tool: it writes follow graphs and drives a server
// with thousands of WebSocket clients to measure idle memory per connection, fan-out throughput
// and latency, and the login storm after a mass disconnect.
//
//	presence-load graph --users 100000 --follows 50 --out graph.json
//	presence-load run --url ws://127.0.0.1:8080/ws --users 100000 --follows 50 --procs 6 --pid PID
//	presence-load loopback   # what one small frame costs this machine's loopback TCP path
//
// `presence-load graph --help` and `presence-load run --help` document every flag.
package main

import (
	"context"
	"encoding/json"
	"errors"
	"flag"
	"fmt"
	"io"
	"net"
	"net/url"
	"os"
	"os/signal"
	"syscall"
	"time"

	"github.com/presenced/presenced/server"
)

// Config is one run. It travels to workers as JSON, so it holds only plain values.
type Config struct {
	GraphParams
	GraphFile string `json:"graph_file,omitempty"`

	URL             string        `json:"url"`
	Clients         int           `json:"clients"`
	Rate            float64       `json:"rate"`
	Duration        time.Duration `json:"duration"`
	Debounce        time.Duration `json:"debounce"`
	Period          time.Duration `json:"period"`
	Idle            time.Duration `json:"idle"`
	Sources         int           `json:"sources"`
	Procs           int           `json:"procs"`
	PID             int           `json:"pid"`
	JSON            string        `json:"json,omitempty"`
	Check           bool          `json:"check"`
	Storm           bool          `json:"storm"`
	StormWindow     time.Duration `json:"storm_window"`
	Observers       float64       `json:"observers"`
	DialConcurrency int           `json:"dial_concurrency"`
	HelloTimeout    time.Duration `json:"hello_timeout"`
	ReadBuffer      int           `json:"read_buffer"`
	CheckWait       time.Duration `json:"check_wait"`
	AwayAfter       time.Duration `json:"away_after"`
	Bye             bool          `json:"bye"`
	Timeout         time.Duration `json:"timeout"`
	TokenPrefix     string        `json:"token_prefix,omitempty"`

	// Exe is the binary started as workers (default: this one); tests point it at the test binary.
	Exe string `json:"-"`
}

func main() { os.Exit(mainArgs(os.Args[1:], os.Stdout, os.Stderr)) }

// mainArgs runs one subcommand and returns the exit code: 0 success, 1 the run found errors,
// 2 bad usage, setup, or a run phase that failed (Run returned an error).
func mainArgs(args []string, stdout, stderr io.Writer) int {
	if len(args) == 0 || args[0] == "help" || args[0] == "-h" || args[0] == "--help" {
		fmt.Fprintln(stderr, "usage: presence-load graph|github|run|loopback [flags]   (presence-load CMD --help)")
		if len(args) == 0 {
			return 2
		}
		return 0
	}
	ctx, stop := signal.NotifyContext(context.Background(), syscall.SIGINT, syscall.SIGTERM)
	defer stop()
	var err error
	switch args[0] {
	case "graph":
		err = graphCmd(args[1:], stdout, stderr)
	case "github":
		err = githubCmd(ctx, args[1:], stdout, stderr)
	case "loopback":
		err = loopbackCmd(args[1:], stdout, stderr)
	case "run":
		var rep *Report
		rep, err = runCmd(ctx, args[1:], stdout, stderr)
		if err == nil && rep != nil && !rep.OK {
			return 1
		}
	default:
		err = fmt.Errorf("unknown command %q: want graph, github, run or loopback", args[0])
	}
	switch {
	case errors.Is(err, flag.ErrHelp):
		return 0
	case err != nil:
		fmt.Fprintln(stderr, "presence-load:", err)
		return 2
	}
	return 0
}

func graphFlags(fs *flag.FlagSet, p *GraphParams) {
	fs.IntVar(&p.Users, "users", 1000, "number of users, named u0..u{N-1}")
	fs.IntVar(&p.Follows, "follows", 20, "how many distinct other users each user follows (K; 0: nobody follows anyone)")
	fs.Uint64Var(&p.Seed, "seed", 1, "random seed: the same flags always give the same graph")
	fs.Float64Var(&p.Alpha, "alpha", 1.0, "Zipf exponent of the preference for popular users (0: uniform; larger: more skewed)")
}

func graphCmd(args []string, stdout, stderr io.Writer) error {
	fs := flag.NewFlagSet("presence-load graph", flag.ContinueOnError)
	fs.SetOutput(stderr)
	var p GraphParams
	graphFlags(fs, &p)
	out := fs.String("out", "graph.json", "where to write the dev-auth graph file (- for stdout)")
	fs.Usage = func() {
		fmt.Fprintln(stderr, "usage: presence-load graph [flags]\n\nWrites a dev-auth graph file {\"u1\": [\"u0\", ...]} (u1 follows u0) for presenced --auth dev --graph FILE.")
		fs.PrintDefaults()
	}
	if err := fs.Parse(args); err != nil {
		return err
	}
	if fs.NArg() > 0 {
		return fmt.Errorf("unexpected arguments %q", fs.Args())
	}
	g, err := GenerateGraph(p)
	if err != nil {
		return err
	}
	w := stdout // where the summary goes
	if *out == "-" {
		w = stderr // stdout holds the graph
		err = g.WriteJSON(stdout)
	} else {
		err = g.WriteFile(*out)
	}
	if err != nil {
		return err
	}
	fmt.Fprintln(w, g.Summary())
	return nil
}

// runFlags defines the run flags on fs.
func runFlags(fs *flag.FlagSet, c *Config) *string {
	graphFlags(fs, &c.GraphParams)
	fs.StringVar(&c.TokenPrefix, "token-prefix", "", "hello tokens are this prefix + the user name (dev auth: none; against presence-load github: its --token-prefix)")
	fs.StringVar(&c.GraphFile, "graph", "", "read the follow graph from this dev-auth file instead of generating it (--users/--follows/--seed/--alpha then ignored)")
	fs.StringVar(&c.URL, "url", "ws://127.0.0.1:8080/ws", "presenced WebSocket URL")
	fs.IntVar(&c.Clients, "clients", 0, "number of WebSockets; client i is user u{i mod users} (0: one per user)")
	fs.Float64Var(&c.Rate, "rate", 0, "status changes per second, all users together (0: no status phase); capped so no user changes more than once per --period")
	fs.DurationVar(&c.Duration, "duration", 10*time.Second, "length of the status phase")
	fs.DurationVar(&c.Debounce, "debounce", 2*time.Second, "the server's --debounce: subtracted from latencies, and the spacing of one user's changes")
	fs.DurationVar(&c.Period, "period", 0, "each user changes at most once per period (0: debounce + 500ms, so the debounce never merges two changes)")
	fs.DurationVar(&c.Idle, "idle", 0, "hold the connections idle this long after connecting and sample the server's RSS (the idle-memory measurement)")
	fs.IntVar(&c.Sources, "sources", 4, "spread local addresses over 127.0.0.1..127.0.0.N (each has ~28k ports); 0: let the kernel choose")
	fs.IntVar(&c.Procs, "procs", 1, "worker processes, each owning a slice of the clients (one process holds at most ~20k sockets)")
	fs.IntVar(&c.PID, "pid", 0, "server process id, for VmRSS from /proc/PID/status (0: no memory figures)")
	fs.StringVar(&c.JSON, "json", "", "also write the report as JSON to this file")
	fs.BoolVar(&c.Check, "check", false, "decode every frame: count isolation violations and, at the end, wait until every view equals the truth")
	fs.BoolVar(&c.Storm, "storm", false, "login storm: drop every connection without a close frame, then resume them all within --storm-window")
	fs.DurationVar(&c.StormWindow, "storm-window", 10*time.Second, "the storm's reconnects are spread evenly over this")
	fs.Float64Var(&c.Observers, "observers", 0.05, "fraction of the clients that stay connected through the storm and watch for x/o frames")
	fs.IntVar(&c.DialConcurrency, "dial-concurrency", 200, "at most this many handshakes and hellos in flight per process")
	fs.DurationVar(&c.HelloTimeout, "hello-timeout", 20*time.Second, "the dial must finish within this, and then the hello must reach the sync within this")
	fs.IntVar(&c.ReadBuffer, "read-buffer", 4096, "bufio.Reader size per connection")
	fs.DurationVar(&c.CheckWait, "check-wait", 0, "--check: how long views may take to converge after the last change (0: debounce + 5s)")
	fs.DurationVar(&c.AwayAfter, "away-after", 5*time.Minute, "the server's --away-after: users quiet this long may be seen Away by --check")
	fs.BoolVar(&c.Bye, "bye", true, "say bye before closing at the end, so the server frees the windows at once")
	fs.DurationVar(&c.Timeout, "timeout", 0, "hard limit on the whole run (0: computed from the phases)")
	return fs.String("worker", "", "internal: run as worker i/P, driven over stdin/stdout")
}

// parseRun parses the run flags; worker is the hidden --worker value.
func parseRun(args []string, stderr io.Writer) (cfg *Config, worker string, err error) {
	fs := flag.NewFlagSet("presence-load run", flag.ContinueOnError)
	fs.SetOutput(stderr)
	cfg = &Config{}
	w := runFlags(fs, cfg)
	fs.Usage = func() {
		fmt.Fprint(stderr, `usage: presence-load run [flags]

Connects the clients, optionally holds them idle (--idle), sends status changes (--rate,
--duration), optionally runs a login storm (--storm), checks correctness (--check), and prints
a table (and --json). Exits 1 when the run saw errors, 2 on bad flags, a failed setup or a
phase that could not finish (the table is printed all the same).

`)
		fs.VisitAll(func(f *flag.Flag) {
			if f.Name == "worker" {
				return
			}
			name, usage := flag.UnquoteUsage(f)
			if name != "" {
				name = " " + name
			}
			fmt.Fprintf(stderr, "  --%s%s\n    \t%s", f.Name, name, usage)
			if f.DefValue != "" && f.DefValue != "0" && f.DefValue != "false" && f.DefValue != "0s" {
				fmt.Fprintf(stderr, " (default %s)", f.DefValue)
			}
			fmt.Fprintln(stderr)
		})
	}
	if err := fs.Parse(args); err != nil {
		return nil, "", err
	}
	if fs.NArg() > 0 {
		return nil, "", fmt.Errorf("unexpected arguments %q", fs.Args())
	}
	return cfg, *w, nil
}

func runCmd(ctx context.Context, args []string, stdout, stderr io.Writer) (*Report, error) {
	cfg, worker, err := parseRun(args, stderr)
	if err != nil {
		return nil, err
	}
	if worker != "" {
		// Run raises the coordinator's open-file limit; a worker holds sockets too.
		if _, err := server.RaiseOpenFiles(); err != nil {
			fmt.Fprintln(stderr, "presence-load: warning:", err)
		}
		// Everything a worker needs arrives in its init command.
		return nil, serveWorker(ctx, os.Stdin, stdout)
	}
	rep, err := Run(ctx, cfg, stderr)
	if rep != nil {
		rep.Print(stdout)
		if cfg.JSON != "" {
			if werr := writeJSON(cfg.JSON, rep); werr != nil && err == nil {
				err = werr
			}
		}
	}
	return rep, err
}

func writeJSON(path string, v any) error {
	b, err := json.MarshalIndent(v, "", "  ")
	if err != nil {
		return fmt.Errorf("json report: %w", err)
	}
	if err := os.WriteFile(path, append(b, '\n'), 0o644); err != nil {
		return fmt.Errorf("json report: %w", err)
	}
	return nil
}

// loadGraph reads the graph file, or generates the graph from p when file is "".
func loadGraph(file string, p GraphParams) (*Graph, error) {
	if file != "" {
		return LoadGraph(file)
	}
	return GenerateGraph(p)
}

// finish fills the defaults that depend on other flags and rejects impossible combinations.
func (c *Config) finish() error {
	if c.Clients == 0 {
		c.Clients = c.Users
	}
	if c.Period == 0 {
		c.Period = c.Debounce + 500*time.Millisecond
	}
	if c.CheckWait == 0 {
		c.CheckWait = c.Debounce + 5*time.Second
	}
	if c.Procs == 0 {
		c.Procs = 1
	}
	u, err := url.Parse(c.URL)
	switch {
	case err != nil:
		return fmt.Errorf("--url: %w", err)
	case u.Scheme != "ws" || u.Host == "":
		return fmt.Errorf("--url %q: want ws://host:port/ws", c.URL)
	case c.Clients < 1:
		return fmt.Errorf("--clients must be at least 1, got %d", c.Clients)
	case c.Procs < 1 || c.Procs > c.Clients:
		return fmt.Errorf("--procs must be between 1 and --clients, got %d", c.Procs)
	case c.Rate < 0 || c.Duration < 0 || c.Idle < 0 || c.Debounce < 0 || c.Period < 0:
		return errors.New("--rate, --duration, --idle, --debounce and --period must not be negative")
	case c.Sources < 0 || c.Sources > 254:
		return fmt.Errorf("--sources must be between 0 and 254, got %d", c.Sources)
	case c.Observers < 0 || c.Observers > 1:
		return fmt.Errorf("--observers is a fraction between 0 and 1, got %v", c.Observers)
	case c.DialConcurrency < 1:
		return fmt.Errorf("--dial-concurrency must be at least 1, got %d", c.DialConcurrency)
	case c.ReadBuffer < 64:
		return fmt.Errorf("--read-buffer must be at least 64 bytes, got %d", c.ReadBuffer)
	case c.HelloTimeout <= 0 || c.StormWindow < 0 || c.CheckWait < 0 || c.AwayAfter <= 0:
		return errors.New("--hello-timeout and --away-after must be positive, --storm-window and --check-wait not negative")
	case c.Timeout < 0:
		return errors.New("--timeout must not be negative")
	}
	// Source addresses are IPv4 loopback: they cannot reach another host or an IPv6 address.
	if ip := net.ParseIP(u.Hostname()); ip != nil && (ip.To4() == nil || !ip.IsLoopback()) {
		c.Sources = 0
	}
	if c.Timeout == 0 {
		waves := time.Duration((c.Clients/c.Procs)/c.DialConcurrency+1) * c.HelloTimeout
		c.Timeout = 2*time.Minute + waves + c.Idle + c.Duration + 2*c.StormWindow + 2*c.CheckWait + 4*c.Debounce
	}
	if c.Exe == "" && c.Procs > 1 {
		exe, err := os.Executable()
		if err != nil {
			return fmt.Errorf("--procs: cannot find this binary to start workers: %w", err)
		}
		c.Exe = exe
	}
	return nil
}
