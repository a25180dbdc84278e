package cluster_test

import (
	"testing"

	"github.com/presenced/presenced/cluster"
)

func TestMemoryStore(t *testing.T) {
	testStore(t, func(*testing.T) cluster.Store { return cluster.NewMemoryStore() })
}
