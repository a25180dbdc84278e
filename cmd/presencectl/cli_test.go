package main

import (
	"context"
	"strings"
	"testing"
)

// runCLI runs one command line that must end on its own (help or a usage error).
func runCLI(args []string, vars map[string]string) (code int, stdout, stderr string) {
	var out, errOut strings.Builder
	e := env{stdout: &out, stderr: &errOut, getenv: func(k string) string { return vars[k] }}
	code = run(context.Background(), args, e)
	return code, out.String(), errOut.String()
}

func TestHelpDocumentsEveryFlag(t *testing.T) {
	for _, c := range []struct {
		args  []string
		flags []string
	}{
		{[]string{"--help"}, []string{"watch", "status", "PRESENCECTL_URL", "PRESENCECTL_TOKEN"}},
		{[]string{"watch", "--help"}, []string{"-token", "-url"}},
		{[]string{"help", "watch"}, []string{"-token", "-url"}},
		{[]string{"status", "-h"}, []string{"-token", "-url", "-activity", "-project", "-language", "-window", "-invisible"}},
	} {
		code, out, errOut := runCLI(c.args, nil)
		if code != 0 || errOut != "" {
			t.Errorf("%v: exit %d, stderr %q", c.args, code, errOut)
		}
		for _, f := range c.flags {
			if !strings.Contains(out, f) {
				t.Errorf("%v: help lacks %q:\n%s", c.args, f, out)
			}
		}
	}
	_, out, _ := runCLI([]string{"watch", "--help"}, map[string]string{"PRESENCECTL_URL": "ws://elsewhere:1/ws", "PRESENCECTL_TOKEN": "secret"})
	if !strings.Contains(out, `(default "ws://elsewhere:1/ws")`) || strings.Contains(out, "secret") {
		t.Errorf("help should show the env URL as default and never the env token:\n%s", out)
	}
}

func TestUsageErrors(t *testing.T) {
	for _, c := range []struct {
		args []string
		want string
	}{
		{nil, "Usage:"},
		{[]string{"frobnicate"}, `unknown command "frobnicate"`},
		{[]string{"watch"}, "--token is required"},
		{[]string{"watch", "--token", "bob", "--bogus"}, "flag provided but not defined: -bogus"},
		{[]string{"watch", "--token", "bob", "extra"}, `unexpected argument "extra"`},
		{[]string{"watch", "--token", "bob", "--url", "http://localhost:8080/ws"}, "--url must look like ws://"},
		{[]string{"status", "--token", "alice", "--activity", "coding"}, `--activity must be Coding, Debugging or Idle (case-sensitive), not "coding"`},
		{[]string{"status", "--token", "alice", "--language", strings.Repeat("x", 33)}, "--language is 33 bytes"},
		{[]string{"status", "--token", "alice", "--window", strings.Repeat("w", 65)}, "--window is 65 bytes"},
		{[]string{"status", "--token", strings.Repeat("t", 257)}, "--token is 257 bytes"},
	} {
		code, out, errOut := runCLI(c.args, nil)
		if code != 2 || out != "" || !strings.Contains(errOut, c.want) {
			t.Errorf("%v: exit %d, stdout %q, stderr %q; want exit 2 and %q", c.args, code, out, errOut, c.want)
		}
	}
}

func TestTokenFromEnv(t *testing.T) {
	// With the token from the environment the command line is valid: it fails only to dial.
	code, _, errOut := runCLI([]string{"watch", "--url", "ws://127.0.0.1:1/ws"}, map[string]string{"PRESENCECTL_TOKEN": "bob"})
	if code != 1 || !strings.Contains(errOut, "connect:") {
		t.Errorf("exit %d, stderr %q; want exit 1 and a connect error", code, errOut)
	}
}
