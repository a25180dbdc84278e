package main

import (
	"os"
	"runtime/debug"
	"strconv"
)

// defaultGCPercent is presenced's garbage-collector target, lower than Go's 100. A node's
// memory is mostly idle connections, and Go keeps the heap goal (live heap × (1 + GOGC/100))
// resident: at 100 an idle node's RSS is about twice its live heap. The paths that run per
// delivery allocate nothing, so collecting more often costs little CPU: with 25 (same build,
// 18,000 idle connections) RSS per connection fell from 9.36 to 6.82 KiB, and the CPU per status
// change at 75,000 deliveries/s did not rise measurably (docs/benchmarks.md).
const defaultGCPercent = 25

// defaultGCIdlePercent is the target while the node is quiet (gcquiet.go).
const defaultGCIdlePercent = 10

// gcSetting decides the collector's target: --gc-percent (or PRESENCED_GC_PERCENT, or the
// config file) when given, else a GOGC variable the runtime has already read, else the default.
// It returns the target and where it came from, for the start-up log.
func gcSetting(o options, lookupEnv func(string) (string, bool)) (percent int, from string) {
	if o.set["gc-percent"] {
		return o.gcPercent, "--gc-percent"
	}
	if v, ok := lookupEnv("GOGC"); ok {
		if n, err := strconv.Atoi(v); err == nil {
			return n, "GOGC"
		}
		return -1, "GOGC" // "off" or a value the runtime reads its own way: leave it alone
	}
	return o.gcPercent, "default"
}

// applyGC sets the collector's target unless GOGC already did.
func applyGC(o options) (percent int, from string) {
	percent, from = gcSetting(o, os.LookupEnv)
	if from != "GOGC" {
		debug.SetGCPercent(percent)
	}
	return percent, from
}

// quietSetting is the quiet-time rule for the target applyGC set (nil: one target always): off
// with --gc-idle-percent 0, when GOGC set the target (an operator's explicit choice stands), and
// when the idle target would not be lower.
func quietSetting(o options, percent int, from string) *gcQuiet {
	if from == "GOGC" || o.gcIdlePercent <= 0 || o.gcIdlePercent >= percent {
		return nil
	}
	return newGCQuiet(percent, o.gcIdlePercent)
}
