package testkit

import (
	"fmt"
	"math/rand/v2"
	"net"
	"os"
	"strings"
	"testing"
)

// FreePorts returns n distinct ports that were free on every interface a moment ago, for
// processes that must be told their ports before they start (a cluster's member list, a Redis
// server). It takes them below the kernel's ephemeral range: the kernel hands ports from that
// range to every outgoing connection and every port-0 listener, so between this check and the
// process's own bind, any test's client or server in the machine could take one of them.
func FreePorts(tb testing.TB, n int) []int {
	tb.Helper()
	lo, hi := 10000, ephemeralLow()
	seen := map[int]bool{}
	var ports []int
	for tries := 0; len(ports) < n; tries++ {
		if tries == 1000 {
			tb.Fatalf("testkit: no %d free ports in %d..%d", n, lo, hi-1)
		}
		p := lo + rand.IntN(hi-lo)
		if seen[p] {
			continue
		}
		seen[p] = true
		ln, err := net.Listen("tcp", fmt.Sprintf(":%d", p))
		if err != nil {
			continue // taken
		}
		_ = ln.Close()
		ports = append(ports, p)
	}
	return ports
}

// ephemeralLow is the first port of the kernel's ephemeral range (Linux's default when it
// cannot be read).
func ephemeralLow() int {
	lo := 32768
	if b, err := os.ReadFile("/proc/sys/net/ipv4/ip_local_port_range"); err == nil {
		var a, z int
		if _, err := fmt.Sscan(strings.TrimSpace(string(b)), &a, &z); err == nil && a > 10000+1000 {
			lo = a
		}
	}
	return lo
}
