package main

import (
	"errors"
	"flag"
	"fmt"
	"io"
	"os"
	"reflect"
	"regexp"

	"go.yaml.in/yaml/v3"
)

// fileSettings is the schema of the --config file: one key per flag, named like it. Each field
// keeps the YAML node so that its value goes through the flag's own parser: a file value is
// checked exactly as the same value on the command line. KnownFields refuses any other key.
// TestFileSettingsMatchFlags keeps this list and the flags in step.
type fileSettings struct {
	Listen                yaml.Node `yaml:"listen"`
	InternalListen        yaml.Node `yaml:"internal-listen"`
	Pprof                 yaml.Node `yaml:"pprof"`
	Auth                  yaml.Node `yaml:"auth"`
	Graph                 yaml.Node `yaml:"graph"`
	Debounce              yaml.Node `yaml:"debounce"`
	AwayAfter             yaml.Node `yaml:"away-after"`
	ResumeWindow          yaml.Node `yaml:"resume-window"`
	WriteDelay            yaml.Node `yaml:"write-delay"`
	StampFlush            yaml.Node `yaml:"stamp-flush"`
	GCPercent             yaml.Node `yaml:"gc-percent"`
	GCIdlePercent         yaml.Node `yaml:"gc-idle-percent"`
	LogFormat             yaml.Node `yaml:"log-format"`
	Redis                 yaml.Node `yaml:"redis"`
	ClusterHost           yaml.Node `yaml:"cluster-host"`
	ClusterPort           yaml.Node `yaml:"cluster-port"`
	ClusterProvider       yaml.Node `yaml:"cluster-provider"`
	ClusterAutomanagePort yaml.Node `yaml:"cluster-automanage-port"`
	ClusterMembers        yaml.Node `yaml:"cluster-members"`
	ShutdownTimeout       yaml.Node `yaml:"shutdown-timeout"`
	DrainDelay            yaml.Node `yaml:"drain-delay"`
	DrainRate             yaml.Node `yaml:"drain-rate"`
	GithubAPI             yaml.Node `yaml:"github-api"`
	GithubTokenTTL        yaml.Node `yaml:"github-token-ttl"`
	GraphRefresh          yaml.Node `yaml:"graph-refresh"`
	// No "config": a file does not name another file.
}

// yaml's complaints about the file's shape, to say them in the operator's terms.
var (
	unknownField = regexp.MustCompile(`^line (\d+): field (.+) not found in type main\.fileSettings$`)
	notMapping   = regexp.MustCompile(`^line (\d+): cannot unmarshal (\S+).* into main\.fileSettings$`)
)

// loadFile sets the flags of fs from the YAML file at path, except those skip says are set
// elsewhere (on the command line or in the environment), and returns the names it read. Errors
// name the file, the line and the key.
func loadFile(path string, fs *flag.FlagSet, skip func(name string) bool) ([]string, error) {
	f, err := os.Open(path)
	if err != nil {
		return nil, fmt.Errorf("--config: %w", err)
	}
	defer func() { _ = f.Close() }()
	var s fileSettings
	dec := yaml.NewDecoder(f)
	dec.KnownFields(true)
	if err := dec.Decode(&s); err != nil && !errors.Is(err, io.EOF) { // EOF: an empty file
		return nil, fileError(path, err)
	}
	if err := dec.Decode(new(yaml.Node)); !errors.Is(err, io.EOF) {
		return nil, fmt.Errorf("config %s: one YAML document only (found a second ---)", path)
	}
	var given []string
	v := reflect.ValueOf(s)
	for i := range v.NumField() {
		name := v.Type().Field(i).Tag.Get("yaml")
		node := v.Field(i).Interface().(yaml.Node)
		if node.Kind == 0 { // absent
			continue
		}
		fl := fs.Lookup(name)
		if fl == nil {
			return nil, fmt.Errorf("config %s: %s has no flag (a bug: fileSettings and the flags differ)", path, name)
		}
		if node.Kind != yaml.ScalarNode {
			return nil, fmt.Errorf("config %s: line %d: %s: want one value, not a list or a map", path, node.Line, name)
		}
		if skip(name) {
			continue
		}
		if err := fl.Value.Set(node.Value); err != nil {
			return nil, fmt.Errorf("config %s: line %d: %s: %q is %s", path, node.Line, name, node.Value, describe(fl, err))
		}
		given = append(given, name)
	}
	return given, nil
}

// fileError words a decoding error for operators: yaml lists every unknown key as
// "line N: field K not found in type main.fileSettings".
func fileError(path string, err error) error {
	var te *yaml.TypeError
	if !errors.As(err, &te) {
		return fmt.Errorf("config %s: %w", path, err)
	}
	msg := ""
	for i, e := range te.Errors {
		if m := unknownField.FindStringSubmatch(e); m != nil {
			e = fmt.Sprintf("line %s: unknown setting %q (settings are the flag names without --: see presenced --help)", m[1], m[2])
		} else if m := notMapping.FindStringSubmatch(e); m != nil {
			e = fmt.Sprintf("line %s: want a mapping of settings (debounce: 2s), not %s", m[1], m[2])
		}
		if i > 0 {
			msg += "; "
		}
		msg += e
	}
	return fmt.Errorf("config %s: %s", path, msg)
}
