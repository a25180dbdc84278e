package main

import (
	"errors"
	"flag"
	"fmt"
	"io"
	"maps"
	"net/url"
	"os"
	"strings"
	"time"

	"go.uber.org/zap"

	"github.com/presenced/presenced/actors"
	"github.com/presenced/presenced/server"
)

// options are the settings of one presenced process, as flags, PRESENCED_* variables and the
// --config file give them.
type options struct {
	listen          string
	internalListen  string
	pprof           bool
	stampFlush      bool
	authMode        string
	graph           string
	debounce        time.Duration
	awayAfter       time.Duration
	resumeWindow    time.Duration
	writeDelay      time.Duration
	gcPercent       int
	gcIdlePercent   int
	logFormat       string
	redisURL        string
	clusterHost     string
	clusterPort     int
	amPort          int
	clusterProvider string
	members         string
	shutdown        time.Duration
	drainDelay      time.Duration
	drainRate       int
	githubAPI       string
	tokenTTL        time.Duration
	refresh         time.Duration
	config          string
	set             map[string]bool // settings given by a flag, the environment or the file
}

// newFlagSet declares every setting on o with its default. The flag names are also the env
// names (PRESENCED_ + upper case, - as _) and the keys of the config file.
func newFlagSet(o *options) *flag.FlagSet {
	d := actors.DefaultUserConfig()
	fs := flag.NewFlagSet("presenced", flag.ContinueOnError)
	fs.StringVar(&o.listen, "listen", ":8080", "`address` for WebSockets, served at /ws (any other path gets 404)")
	fs.StringVar(&o.internalListen, "internal-listen", "127.0.0.1:9090", "`address` for /healthz, /readyz, /metrics and (with --pprof) /debug/pprof/ over HTTP; empty: none")
	fs.BoolVar(&o.pprof, "pprof", false, "serve net/http/pprof at /debug/pprof/ on the internal listener")
	fs.StringVar(&o.authMode, "auth", "github", "how hello tokens are checked: github, or dev (the token is the username: local use only)")
	fs.StringVar(&o.graph, "graph", "", "dev auth only: JSON `file` {\"bob\": [\"alice\"]} meaning bob follows alice")
	fs.DurationVar(&o.debounce, "debounce", d.Debounce, "changes are collected this long before followers get them")
	fs.DurationVar(&o.awayAfter, "away-after", d.AwayAfter, "no status frame for this long shows a user as Away")
	fs.DurationVar(&o.resumeWindow, "resume-window", d.ResumeWindow, "a dropped window may resume this long before followers see it go")
	fs.DurationVar(&o.writeDelay, "write-delay", server.DefaultWriteDelay, "a frame for an idle socket waits this long for more, so they share one write; 0: write at once")
	fs.BoolVar(&o.stampFlush, "stamp-flush", false, "load tests only: u, o and x frames carry their flush time as \"ft\" (unix µs), so that a client on this machine's clock measures flush to receipt")
	fs.IntVar(&o.gcPercent, "gc-percent", defaultGCPercent, "the garbage collector's target (GOGC): the heap may grow this many percent over the live heap before a collection; a GOGC variable wins unless this is set")
	fs.IntVar(&o.gcIdlePercent, "gc-idle-percent", defaultGCIdlePercent, "the collector's target while the node is quiet (10 s allocating under 2% of the live heap and sending under 64 KiB of frames a second); free pages are returned to the OS then; 0, or a GOGC variable, keeps one target")
	fs.StringVar(&o.logFormat, "log-format", "console", "log format: console or json")
	fs.StringVar(&o.clusterHost, "cluster-host", "127.0.0.1", "cluster: the `address` other members reach this node at (remoting binds it)")
	fs.IntVar(&o.clusterPort, "cluster-port", 0, "cluster: actor remoting `port`; 0 runs a single node (needs --redis when set)")
	fs.StringVar(&o.clusterProvider, "cluster-provider", server.ProviderAutomanaged, "cluster: how members find each other: automanaged (a fixed member list) or k8s (the Kubernetes API, from inside a pod)")
	fs.IntVar(&o.amPort, "cluster-automanage-port", 0, "cluster: `port` of this member's automanaged membership endpoint (HTTP, all interfaces)")
	fs.StringVar(&o.members, "cluster-members", "", "cluster: comma-separated `host:port` (automanage ports) of every member, this one included")
	fs.StringVar(&o.redisURL, "redis", "", "Redis `URL` (redis://host:port/db) for the bus and the store; empty: in memory, one node")
	fs.DurationVar(&o.shutdown, "shutdown-timeout", 10*time.Second, "how long the graceful shutdown after the drain delay may take (longer than --drain-delay)")
	fs.IntVar(&o.drainRate, "drain-rate", 5000, "on shutdown, sockets told per second to resume on another node (error server_restart, close 1012), in batches every 50 ms")
	fs.DurationVar(&o.drainDelay, "drain-delay", 5*time.Second, "on SIGTERM or SIGINT /readyz fails at once; the node serves on this long, then shuts down")
	fs.StringVar(&o.githubAPI, "github-api", "https://api.github.com", "github auth: base `URL` of the GitHub REST API (GitHub Enterprise: https://HOST/api/v3)")
	fs.DurationVar(&o.tokenTTL, "github-token-ttl", 5*time.Minute, "github auth: a verified token is trusted this long before GET /user checks it again")
	fs.DurationVar(&o.refresh, "graph-refresh", 10*time.Minute, "how often a connected user's follow list is revalidated (unchanged pages cost no rate limit)")
	fs.StringVar(&o.config, "config", "", "YAML `file` of settings named like the flags (debounce: 2s); flags and env win over it")
	fs.Usage = func() { usage(fs) }
	return fs
}

// envName is the environment variable of a setting.
func envName(flagName string) string {
	return "PRESENCED_" + strings.ToUpper(strings.ReplaceAll(flagName, "-", "_"))
}

// parse layers the settings: flags over PRESENCED_* over the --config file over the defaults.
// The command line is parsed first only to learn which flags it sets (and --config); the file
// and then the environment fill in every setting it does not.
func parse(args []string) (options, error) {
	var o options
	fs := newFlagSet(&o)
	if err := fs.Parse(args); err != nil {
		return o, err
	}
	if fs.NArg() > 0 {
		return o, fmt.Errorf("unexpected argument %q: settings are flags (--name value); see presenced --help", fs.Arg(0))
	}
	cmdline := map[string]bool{} // the flags the command line sets
	fs.Visit(func(f *flag.Flag) { cmdline[f.Name] = true })
	o.set = maps.Clone(cmdline)
	if !cmdline["config"] {
		if v, ok := os.LookupEnv(envName("config")); ok {
			o.config = v
			o.set["config"] = true
		}
	}
	if o.config != "" {
		given, err := loadFile(o.config, fs, func(name string) bool {
			_, inEnv := os.LookupEnv(envName(name))
			return cmdline[name] || inEnv
		})
		if err != nil {
			return o, err
		}
		for _, name := range given {
			o.set[name] = true
		}
	}
	var envErr error
	fs.VisitAll(func(f *flag.Flag) {
		key := envName(f.Name)
		v, ok := os.LookupEnv(key)
		if !ok || cmdline[f.Name] || f.Name == "config" || envErr != nil {
			return
		}
		o.set[f.Name] = true
		if err := f.Value.Set(v); err != nil {
			envErr = fmt.Errorf("%s=%q: %s", key, v, describe(f, err))
		}
	})
	if envErr != nil {
		return o, envErr
	}
	return o, validate(o)
}

// validate checks what one setting's parser cannot: ranges and settings that depend on others.
func validate(o options) error {
	if o.drainRate <= 0 {
		return errors.New("--drain-rate must be positive (sockets per second)")
	}
	if o.gcPercent <= 0 {
		return fmt.Errorf("--gc-percent must be positive, not %d (100 is Go's default)", o.gcPercent)
	}
	if o.gcIdlePercent < 0 {
		return fmt.Errorf("--gc-idle-percent must not be negative, not %d (0 turns it off)", o.gcIdlePercent)
	}
	if o.writeDelay < 0 {
		return errors.New("--write-delay must not be negative (0 writes at once)")
	}
	if o.debounce <= 0 || o.awayAfter <= 0 || o.resumeWindow <= 0 {
		return errors.New("--debounce, --away-after and --resume-window must be positive")
	}
	if o.tokenTTL <= 0 || o.refresh <= 0 {
		return errors.New("--github-token-ttl and --graph-refresh must be positive")
	}
	if o.pprof && o.internalListen == "" {
		return errors.New("--pprof needs --internal-listen: the profiler is served there only")
	}
	if o.drainDelay < 0 {
		return fmt.Errorf("--drain-delay must not be negative, not %v", o.drainDelay)
	}
	// The delay only keeps a draining node serving while balancers catch up; the shutdown that
	// follows (closing every socket) is the part that needs time. A delay as long as the whole
	// shutdown budget is most likely two settings swapped, and a supervisor that sizes its kill
	// timer from --shutdown-timeout would kill the node before it closed anything.
	if o.shutdown <= o.drainDelay {
		return fmt.Errorf("--shutdown-timeout (%v) must be longer than --drain-delay (%v)", o.shutdown, o.drainDelay)
	}
	return nil
}

// describe turns a flag.Value's parse error into what the value should look like.
func describe(f *flag.Flag, err error) string {
	g, ok := f.Value.(flag.Getter)
	if !ok {
		return err.Error()
	}
	switch g.Get().(type) {
	case time.Duration:
		return "not a duration (like 500ms, 2s or 1m30s)"
	case int:
		return "not a whole number"
	case bool:
		return "not true or false"
	}
	return err.Error()
}

// groups order the settings in --help. A setting missing here is listed under "Other".
var groups = []struct {
	title string
	names []string
}{
	{"Serving", []string{"listen", "internal-listen", "pprof", "config", "log-format", "gc-percent", "gc-idle-percent"}},
	{"Authentication and follow graph", []string{"auth", "github-api", "github-token-ttl", "graph-refresh", "graph"}},
	{"Presence", []string{"debounce", "away-after", "resume-window", "write-delay", "stamp-flush"}},
	{"Redis and cluster", []string{"redis", "cluster-port", "cluster-host", "cluster-provider", "cluster-automanage-port", "cluster-members"}},
	{"Shutdown", []string{"drain-delay", "drain-rate", "shutdown-timeout"}},
}

// usage is --help: every setting with its flag, its variable and its default.
func usage(fs *flag.FlagSet) {
	w := fs.Output()
	fmt.Fprint(w, `Usage: presenced [flags]
       presenced healthcheck [URL]

presenced serves presence over WebSockets at /ws. Each setting below is a flag, an environment
variable, or a key of the --config YAML file named like the flag (debounce: 2s). Flags win over
the environment, the environment over the file, the file over the defaults.

presenced healthcheck GETs URL (default `+defaultHealthURL+`) and exits 0 on
200 OK, 1 otherwise: a container health check for an image with no shell or curl.
`)
	listed := map[string]bool{}
	for _, g := range groups {
		fmt.Fprintf(w, "\n%s:\n", g.title)
		for _, name := range g.names {
			if f := fs.Lookup(name); f != nil {
				printSetting(w, f)
				listed[name] = true
			}
		}
	}
	other := false
	fs.VisitAll(func(f *flag.Flag) {
		if listed[f.Name] {
			return
		}
		if !other {
			fmt.Fprint(w, "\nOther:\n")
			other = true
		}
		printSetting(w, f)
	})
}

func printSetting(w io.Writer, f *flag.Flag) {
	arg, text := flag.UnquoteUsage(f)
	name := "--" + f.Name
	if arg != "" {
		name += " " + arg
	}
	def := "default " + defaultText(f)
	fmt.Fprintf(w, "  %-32s %s, %s\n      %s\n", name, envName(f.Name), def, text)
}

// defaultText shows a default as one would type it: 5m rather than 5m0s, "" for nothing.
func defaultText(f *flag.Flag) string {
	if d, err := time.ParseDuration(f.DefValue); err == nil {
		if _, isDuration := f.Value.(flag.Getter).Get().(time.Duration); isDuration {
			return shortDuration(d)
		}
	}
	if f.DefValue == "" {
		return `""`
	}
	return f.DefValue
}

// shortDuration drops a duration's trailing zero units: 5m, 1h30m, 2s.
func shortDuration(d time.Duration) string {
	s := d.String()
	if strings.HasSuffix(s, "m0s") {
		s = strings.TrimSuffix(s, "0s")
	}
	if strings.HasSuffix(s, "h0m") {
		s = strings.TrimSuffix(s, "0m")
	}
	return s
}

// logSettings logs the effective settings once, in one line with a field per setting named
// like the flag. URLs lose their passwords (the Redis URL may hold one); no setting holds a token.
func logSettings(log *zap.Logger, o options) {
	var view options
	fs := newFlagSet(&view) // the flags point into view (and set it to the defaults) ...
	view = o                // ... so after this copy they read o's values
	fields := make([]zap.Field, 0, 24)
	fs.VisitAll(func(f *flag.Flag) {
		v := f.Value.String()
		if d, ok := f.Value.(flag.Getter).Get().(time.Duration); ok {
			v = shortDuration(d)
		}
		if urlSettings[f.Name] {
			v = redactURL(v)
		}
		fields = append(fields, zap.String(f.Name, v))
	})
	log.Info("effective configuration", fields...)
}

// urlSettings are the settings whose value is a URL that may carry a password.
var urlSettings = map[string]bool{"redis": true, "github-api": true}

// redactURL hides a URL's password (redis://:xxxxx@host:6379/0); a value that does not parse
// is not shown at all, since where its password starts is unknown.
func redactURL(s string) string {
	if s == "" {
		return ""
	}
	u, err := url.Parse(s)
	if err != nil {
		return "(not a valid URL; not shown)"
	}
	return u.Redacted()
}
