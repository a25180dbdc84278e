package cluster_test

import (
	"testing"

	"github.com/presenced/presenced/cluster"
)

func TestMemoryBus(t *testing.T) {
	testBus(t, func(t *testing.T, d cluster.Deliver) cluster.Bus { return cluster.NewMemoryBus(d) })
}
