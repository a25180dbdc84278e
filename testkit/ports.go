package testkit

import (
	"fmt"
	"math/rand/v2"
	"net"
	"os"
	"testing"
)

// FreePorts returns n distinct ports that were free on every interface a moment ago, for
// processes that must be told their ports before they start (a cluster's member list, a Redis
// server). It takes them below the kernel's ephemeral range: the kernel hands ports from that
// range to every outgoing connection and every port-0 listener, so between this check and the
// process's own bind, any test's client or server in the machine could take one of them.
func FreePorts(tb testing.TB, n int) []int {
	tb.Helper()
	hi := ephemeralLow()
	seen := map[int]bool{}
	var ports []int
	for tries := 0; len(ports) < n; tries++ {
		if tries == 1000 {
			tb.Fatalf("testkit: no %d free ports in %d..%d", n, portsFrom, hi-1)
		}
		p := portsFrom + rand.IntN(hi-portsFrom)
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

// portsFrom is the lowest port FreePorts gives: above the well-known services a machine runs.
const portsFrom = 10000

// ephemeralLow is the first port of the kernel's ephemeral range; Linux's default when it
// cannot be read, or when it leaves fewer than 1,000 ports above portsFrom.
func ephemeralLow() int {
	var lo, hi int
	b, err := os.ReadFile("/proc/sys/net/ipv4/ip_local_port_range")
	if err == nil {
		_, err = fmt.Sscan(string(b), &lo, &hi)
	}
	if err != nil || lo < portsFrom+1000 {
		return 32768
	}
	return lo
}
