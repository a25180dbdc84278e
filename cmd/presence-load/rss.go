package main

import (
	"bytes"
	"fmt"
	"os"
	"strconv"
)

// rssKiB reads VmRSS from /proc/PID/status (pid 0: this process). The server's resident memory
// is what the idle-memory measurement is about; /proc is cheap enough to sample during a run.
func rssKiB(pid int) (int64, error) {
	path := "/proc/self/status"
	if pid > 0 {
		path = "/proc/" + strconv.Itoa(pid) + "/status"
	}
	b, err := os.ReadFile(path)
	if err != nil {
		return 0, fmt.Errorf("rss: %w", err)
	}
	if _, rest, ok := bytes.Cut(b, []byte("\nVmRSS:")); ok {
		line, _, _ := bytes.Cut(rest, []byte("\n"))
		if f := bytes.Fields(line); len(f) > 0 {
			n, err := strconv.ParseInt(string(f[0]), 10, 64)
			if err != nil {
				return 0, fmt.Errorf("rss: %s: %w", path, err)
			}
			return n, nil
		}
	}
	return 0, fmt.Errorf("rss: no VmRSS in %s", path)
}

// cpuSeconds reads the user+system CPU time of process pid from /proc/PID/stat (fields 14 and
// 15, in clock ticks of 1/100 s on Linux).
func cpuSeconds(pid int) (float64, error) {
	if pid <= 0 {
		return 0, nil
	}
	b, err := os.ReadFile("/proc/" + strconv.Itoa(pid) + "/stat")
	if err != nil {
		return 0, fmt.Errorf("cpu: %w", err)
	}
	// The command name (field 2) may hold spaces; fields after its closing parenthesis do not.
	i := bytes.LastIndexByte(b, ')')
	if i < 0 {
		return 0, fmt.Errorf("cpu: malformed /proc/%d/stat", pid)
	}
	f := bytes.Fields(b[i+1:]) // f[0] is field 3 (state)
	if len(f) < 13 {
		return 0, fmt.Errorf("cpu: short /proc/%d/stat", pid)
	}
	var ticks int64
	for _, s := range f[11:13] { // fields 14 (utime) and 15 (stime)
		n, err := strconv.ParseInt(string(s), 10, 64)
		if err != nil {
			return 0, fmt.Errorf("cpu: /proc/%d/stat: %w", pid, err)
		}
		ticks += n
	}
	return float64(ticks) / 100, nil
}
