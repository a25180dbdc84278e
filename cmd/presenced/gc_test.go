package main

import "testing"

// TestGCSetting: --gc-percent (from the flag, PRESENCED_GC_PERCENT or the file) wins; else a GOGC
// variable stands; else presenced's default of 25.
func TestGCSetting(t *testing.T) {
	cases := []struct {
		name     string
		args     []string
		env      map[string]string
		gogc     string // "" for unset
		percent  int
		from     string
		parseErr string
	}{
		{name: "default", percent: 25, from: "default"},
		{name: "flag", args: []string{"--gc-percent", "60"}, percent: 60, from: "--gc-percent"},
		{name: "env", env: map[string]string{"PRESENCED_GC_PERCENT": "40"}, percent: 40, from: "--gc-percent"},
		{name: "GOGC stands", gogc: "80", percent: 80, from: "GOGC"},
		{name: "GOGC off stands", gogc: "off", percent: -1, from: "GOGC"},
		{name: "flag over GOGC", args: []string{"--gc-percent", "50"}, gogc: "80", percent: 50, from: "--gc-percent"},
		{name: "zero refused", args: []string{"--gc-percent", "0"}, parseErr: "--gc-percent must be positive, not 0 (100 is Go's default)"},
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
		})
	}
}
