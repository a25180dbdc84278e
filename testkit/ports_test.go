package testkit

import (
	"fmt"
	"net"
	"testing"
)

// TestFreePorts: distinct ports below the ephemeral range, each free to bind on every interface.
func TestFreePorts(t *testing.T) {
	ports := FreePorts(t, 20)
	if len(ports) != 20 {
		t.Fatalf("got %d ports, want 20", len(ports))
	}
	seen := map[int]bool{}
	for _, p := range ports {
		if seen[p] {
			t.Fatalf("port %d twice in %v", p, ports)
		}
		seen[p] = true
		if p < portsFrom || p >= ephemeralLow() {
			t.Fatalf("port %d outside %d..%d", p, portsFrom, ephemeralLow()-1)
		}
		ln, err := net.Listen("tcp", fmt.Sprintf(":%d", p))
		if err != nil {
			t.Fatalf("port %d: %v", p, err)
		}
		_ = ln.Close()
	}
}
