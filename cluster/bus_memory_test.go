package cluster

import "testing"

func TestMemoryBus(t *testing.T) {
	testBus(t, func(t *testing.T, d Deliver) Bus { return NewMemoryBus(d) })
}
