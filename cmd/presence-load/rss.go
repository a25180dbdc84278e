package main

import (
	"bufio"
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
	sc := bufio.NewScanner(bytes.NewReader(b))
	for sc.Scan() {
		line := sc.Bytes()
		if rest, ok := bytes.CutPrefix(line, []byte("VmRSS:")); ok {
			f := bytes.Fields(rest)
			if len(f) == 0 {
				break
			}
			n, err := strconv.ParseInt(string(f[0]), 10, 64)
			if err != nil {
				return 0, fmt.Errorf("rss: %s: %w", path, err)
			}
			return n, nil
		}
	}
	return 0, fmt.Errorf("rss: no VmRSS in %s", path)
}
