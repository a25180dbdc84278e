package main

import (
	"bytes"
	"flag"
	"os"
	"path/filepath"
	"reflect"
	"strings"
	"testing"
	"time"

	"go.uber.org/zap"
	"go.uber.org/zap/zaptest/observer"
)

// writeConfig writes a config file into the test's temporary directory and returns its path.
func writeConfig(t *testing.T, text string) string {
	t.Helper()
	p := filepath.Join(t.TempDir(), "presenced.yaml")
	if err := os.WriteFile(p, []byte(text), 0o600); err != nil {
		t.Fatal(err)
	}
	return p
}

// TestSettingsPrecedence: flags win over PRESENCED_*, which win over the --config file, which
// wins over the defaults, setting by setting; --config itself comes from the flag or the env.
func TestSettingsPrecedence(t *testing.T) {
	file := writeConfig(t, "listen: :7001\ndebounce: 3s\npprof: true\ncluster-port: 7100\n")
	type want struct {
		listen   string
		debounce time.Duration
		pprof    bool
		port     int
	}
	cases := []struct {
		name string
		env  map[string]string
		args []string
		want want
	}{
		{"defaults", nil, nil, want{":8080", 2 * time.Second, false, 0}},
		{"file over defaults", nil, []string{"--config", file},
			want{":7001", 3 * time.Second, true, 7100}},
		{"config from env", map[string]string{"PRESENCED_CONFIG": file}, nil,
			want{":7001", 3 * time.Second, true, 7100}},
		{"env over file", map[string]string{"PRESENCED_DEBOUNCE": "4s", "PRESENCED_PPROF": "false"}, []string{"--config", file},
			want{":7001", 4 * time.Second, false, 7100}},
		{"flag over env over file", map[string]string{"PRESENCED_DEBOUNCE": "4s", "PRESENCED_LISTEN": ":7002"},
			[]string{"--config", file, "--debounce", "5s"},
			want{":7002", 5 * time.Second, true, 7100}},
		{"flag over file", nil, []string{"--config", file, "--cluster-port", "7200", "--pprof=false"},
			want{":7001", 3 * time.Second, false, 7200}},
		{"env without file", map[string]string{"PRESENCED_LISTEN": ":7003"}, nil,
			want{":7003", 2 * time.Second, false, 0}},
		{"--config flag over PRESENCED_CONFIG", map[string]string{"PRESENCED_CONFIG": "/nonexistent.yaml"}, []string{"--config", file},
			want{":7001", 3 * time.Second, true, 7100}},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			for k, v := range tc.env {
				t.Setenv(k, v)
			}
			o, err := parse(tc.args)
			if err != nil {
				t.Fatal(err)
			}
			got := want{o.listen, o.debounce, o.pprof, o.clusterPort}
			if got != tc.want {
				t.Fatalf("got %+v, want %+v", got, tc.want)
			}
		})
	}
}

// TestConfigFileErrors: a bad file stops the start with an error naming the file, the line,
// the key and what is wrong.
func TestConfigFileErrors(t *testing.T) {
	cases := map[string]struct {
		text string
		want []string
	}{
		"unknown key":    {"listen: :8080\nlisen: :9000\n", []string{`line 2: unknown setting "lisen"`}},
		"bad duration":   {"debounce: soon\n", []string{`line 1: debounce: "soon" is not a duration`}},
		"bad number":     {"\n\ncluster-port: seven\n", []string{`line 3: cluster-port: "seven" is not a whole number`}},
		"bad bool":       {"pprof: yes\n", []string{`pprof: "yes" is not true or false`}},
		"list":           {"cluster-members: [a, b]\n", []string{"cluster-members: want one value"}},
		"duplicate key":  {"debounce: 2s\ndebounce: 3s\n", []string{`"debounce" already defined`}},
		"no nesting":     {"config: other.yaml\n", []string{`unknown setting "config"`}},
		"not a mapping":  {"- listen\n", []string{"line 1: want a mapping of settings"}},
		"two documents":  {"debounce: 2s\n---\ndebounce: 3s\n", []string{"one YAML document only"}},
		"refused values": {"shutdown-timeout: 1s\n", []string{"--shutdown-timeout (1s) must be longer than --drain-delay (5s)"}},
	}
	for name, tc := range cases {
		t.Run(name, func(t *testing.T) {
			p := writeConfig(t, tc.text)
			_, err := parse([]string{"--config", p})
			if err == nil {
				t.Fatal("no error")
			}
			want := append([]string{p}, tc.want...)
			if name == "refused values" {
				want = tc.want // a cross-setting check, made once all the layers are in
			}
			for _, w := range want {
				if !strings.Contains(err.Error(), w) {
					t.Errorf("err = %v, want it to contain %q", err, w)
				}
			}
		})
	}
	// A key overridden by a flag is still checked: the file is wrong whatever wins.
	p := writeConfig(t, "lisen: x\n")
	if _, err := parse([]string{"--config", p, "--listen", ":1"}); err == nil {
		t.Error("unknown key with the flag given: no error")
	}
	// A missing file names the setting and the file.
	if _, err := parse([]string{"--config", "/nonexistent/presenced.yaml"}); err == nil || !strings.Contains(err.Error(), "--config: open /nonexistent/presenced.yaml") {
		t.Errorf("missing file: err = %v", err)
	}
	// An empty file is no settings.
	if _, err := parse([]string{"--config", writeConfig(t, "")}); err != nil {
		t.Errorf("empty file: %v", err)
	}
	// Settings from the file count as given: dev auth refuses GitHub's settings from there too.
	o, err := parse([]string{"--config", writeConfig(t, "auth: dev\ngraph: ../../examples/graph.json\ngithub-token-ttl: 1m\n")})
	if err != nil {
		t.Fatal(err)
	}
	if _, err := nodeConfig(o, zap.NewNop(), nil); err == nil || !strings.Contains(err.Error(), "--github-token-ttl is for --auth github") {
		t.Errorf("dev auth + github-token-ttl in the file: err = %v", err)
	}
	if _, err := parse([]string{"--pprof", "--internal-listen", ""}); err == nil || !strings.Contains(err.Error(), "--pprof needs --internal-listen") {
		t.Errorf("pprof without the internal listener: err = %v", err)
	}
}

// TestDrainDelayMustBeShorterThanShutdownTimeout: a shutdown timeout that does not cover the
// drain delay is refused at start, naming both settings, from any source.
func TestDrainDelayMustBeShorterThanShutdownTimeout(t *testing.T) {
	for _, args := range [][]string{
		{"--drain-delay", "10s"}, // equal to the default shutdown timeout
		{"--shutdown-timeout", "3s"},
		{"--drain-delay", "30s", "--shutdown-timeout", "20s"},
	} {
		if _, err := parse(args); err == nil || !strings.Contains(err.Error(), "--shutdown-timeout") || !strings.Contains(err.Error(), "--drain-delay") {
			t.Errorf("%v: err = %v, want it to name --shutdown-timeout and --drain-delay", args, err)
		}
	}
	t.Setenv("PRESENCED_DRAIN_DELAY", "1m")
	if _, err := parse(nil); err == nil || !strings.Contains(err.Error(), "--drain-delay (1m0s)") {
		t.Errorf("from the env: err = %v", err)
	}
	if o, err := parse([]string{"--shutdown-timeout", "61s"}); err != nil || o.drainDelay != time.Minute {
		t.Errorf("61s > 1m: %+v %v", o, err)
	}
	if _, err := parse([]string{"--drain-delay", "-1s"}); err == nil {
		t.Error("negative drain delay accepted")
	}
	if o, err := parse([]string{"--drain-delay", "0"}); err != nil || o.drainDelay != 0 {
		t.Errorf("no drain delay: %v", err)
	}
}

// TestFileSettingsMatchFlags: the file schema has exactly one key per flag but --config.
func TestFileSettingsMatchFlags(t *testing.T) {
	var o options
	fs := newFlagSet(&o)
	keys := map[string]bool{}
	ty := reflect.TypeFor[fileSettings]()
	for i := range ty.NumField() {
		keys[ty.Field(i).Tag.Get("yaml")] = true
	}
	fs.VisitAll(func(f *flag.Flag) {
		if f.Name == "config" {
			return
		}
		if !keys[f.Name] {
			t.Errorf("flag --%s has no key in fileSettings", f.Name)
		}
		delete(keys, f.Name)
	})
	for k := range keys {
		t.Errorf("fileSettings key %q has no flag", k)
	}
}

// TestHelp: --help lists every setting, grouped, with its flag, its variable and its default.
func TestHelp(t *testing.T) {
	var o options
	fs := newFlagSet(&o)
	var buf bytes.Buffer
	fs.SetOutput(&buf)
	if err := fs.Parse([]string{"--help"}); err != flag.ErrHelp {
		t.Fatalf("err = %v", err)
	}
	help := buf.String()
	if strings.Contains(help, "\nOther:") {
		t.Errorf("settings missing from the help groups:\n%s", help[strings.Index(help, "\nOther:"):])
	}
	fs.VisitAll(func(f *flag.Flag) {
		line := ""
		for _, l := range strings.Split(help, "\n") {
			if strings.HasPrefix(strings.TrimSpace(l), "--"+f.Name+" ") || strings.TrimSpace(l) == "--"+f.Name {
				line = l
			}
		}
		if !strings.Contains(line, envName(f.Name)+", default "+defaultText(f)) {
			t.Errorf("--%s: help line %q lacks its env name and default", f.Name, line)
		}
	})
	for _, want := range []string{
		"PRESENCED_DRAIN_DELAY, default 5s", "PRESENCED_INTERNAL_LISTEN, default 127.0.0.1:9090",
		"PRESENCED_RESUME_WINDOW, default 1m", "presenced healthcheck [URL]",
	} {
		if !strings.Contains(help, want) {
			t.Errorf("help lacks %q", want)
		}
	}
}

// TestEffectiveConfigRedactsPasswords: the start logs every setting once, in one line, and
// never a Redis (or GitHub API) password.
func TestEffectiveConfigRedactsPasswords(t *testing.T) {
	t.Setenv("PRESENCED_REDIS", "redis://default:s3cret-pw@redis.internal:6380/2")
	o, err := parse([]string{"--github-api", "https://bot:gh-s3cret@ghe.example.com/api/v3", "--debounce", "3s"})
	if err != nil {
		t.Fatal(err)
	}
	core, logs := observer.New(zap.InfoLevel)
	logSettings(zap.New(core), o)
	if logs.Len() != 1 {
		t.Fatalf("%d log entries, want 1", logs.Len())
	}
	e := logs.All()[0]
	var all strings.Builder
	all.WriteString(e.Message)
	for k, v := range e.ContextMap() {
		all.WriteString(" " + k + "=" + v.(string))
	}
	if s := all.String(); strings.Contains(s, "s3cret") {
		t.Fatalf("a password is logged: %s", s)
	}
	m := e.ContextMap()
	if m["redis"] != "redis://default:xxxxx@redis.internal:6380/2" || m["github-api"] != "https://bot:xxxxx@ghe.example.com/api/v3" {
		t.Errorf("redis = %v, github-api = %v: want host and port kept, password hidden", m["redis"], m["github-api"])
	}
	var fo options
	newFlagSet(&fo).VisitAll(func(f *flag.Flag) {
		if _, ok := m[f.Name]; !ok {
			t.Errorf("setting %s is not in the line", f.Name)
		}
	})
	if m["debounce"] != "3s" || m["listen"] != ":8080" || m["drain-delay"] != "5s" || m["away-after"] != "5m" {
		t.Errorf("values: %v", m)
	}
	// A URL that does not parse is not shown at all.
	if got := redactURL("redis://:pw@[bad"); strings.Contains(got, "pw") {
		t.Errorf("unparseable URL shown: %q", got)
	}
}
