package main

import "testing"

// TestGCSetting: --gc-percent (from the flag, PRESENCED_GC_PERCENT or the file) wins; else a GOGC
// variable stands; else presenced's default of 25. The quiet target (--gc-idle-percent, 10) applies
// below any of them but GOGC, and only when lower.
func TestGCSetting(t *testing.T) {
	cases := []struct {
		name     string
		args     []string
		env      map[string]string
		gogc     string // "" for unset
		percent  int
		from     string
		idle     int // the quiet target; 0: none
		parseErr string
	}{
		{name: "default", percent: 25, from: "default", idle: 10},
		{name: "flag", args: []string{"--gc-percent", "60"}, percent: 60, from: "--gc-percent", idle: 10},
		{name: "env", env: map[string]string{"PRESENCED_GC_PERCENT": "40"}, percent: 40, from: "--gc-percent", idle: 10},
		{name: "GOGC stands", gogc: "80", percent: 80, from: "GOGC"},
		{name: "GOGC off stands", gogc: "off", percent: -1, from: "GOGC"},
		{name: "flag over GOGC", args: []string{"--gc-percent", "50"}, gogc: "80", percent: 50, from: "--gc-percent", idle: 10},
		{name: "zero refused", args: []string{"--gc-percent", "0"}, parseErr: "--gc-percent must be positive, not 0 (100 is Go's default)"},
		{name: "idle target from the env", env: map[string]string{"PRESENCED_GC_IDLE_PERCENT": "5"}, percent: 25, from: "default", idle: 5},
		{name: "idle target off", args: []string{"--gc-idle-percent", "0"}, percent: 25, from: "default"},
		{name: "idle target not lower: off", args: []string{"--gc-percent", "10"}, percent: 10, from: "--gc-percent"},
		{name: "negative idle target refused", args: []string{"--gc-idle-percent", "-1"}, parseErr: "--gc-idle-percent must not be negative, not -1 (0 turns it off)"},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			for k, v := range tc.env {
				t.Setenv(k, v)
			}
			o, err := parse(tc.args)
			if tc.parseErr != "" {
				if err == nil || err.Error() != tc.parseErr {
					t.Fatalf("parse: got %v, want %q", err, tc.parseErr)
				}
				return
			}
			if err != nil {
				t.Fatal(err)
			}
			lookup := func(k string) (string, bool) {
				if k == "GOGC" && tc.gogc != "" {
					return tc.gogc, true
				}
				return "", false
			}
			percent, from := gcSetting(o, lookup)
			if percent != tc.percent || from != tc.from {
				t.Fatalf("got %d from %s, want %d from %s", percent, from, tc.percent, tc.from)
			}
			if q := quietSetting(o, percent, from); q.idlePercent() != tc.idle || (q != nil && q.busy != percent) {
				t.Fatalf("quiet target %d, want %d (busy %d)", q.idlePercent(), tc.idle, percent)
			}
		})
	}
}
