//go:build unix

package server

import (
	"fmt"
	"syscall"
)

// RaiseOpenFiles raises the soft limit on open files to the hard limit (Go already does this at
// start on Linux since 1.19; doing it here makes the number explicit) and returns the soft
// limit. Every socket holds one open file; the Redis connections and the cluster's gRPC
// connections hold a few more.
func RaiseOpenFiles() (uint64, error) {
	var lim syscall.Rlimit
	if err := syscall.Getrlimit(syscall.RLIMIT_NOFILE, &lim); err != nil {
		return 0, fmt.Errorf("server: read the open-files limit: %w", err)
	}
	if lim.Cur < lim.Max {
		lim.Cur = lim.Max
		if err := syscall.Setrlimit(syscall.RLIMIT_NOFILE, &lim); err != nil {
			return 0, fmt.Errorf("server: raise the open-files limit to %d: %w", lim.Max, err)
		}
	}
	return uint64(lim.Cur), nil // int64 on the BSDs
}
