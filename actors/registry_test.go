package actors

import (
	"fmt"
	"testing"
	"time"

	"github.com/asynkron/protoactor-go/actor"
)

// registered counts the registry's entries.
func registered(system *actor.ActorSystem) int {
	n := 0
	for _, b := range system.ProcessRegistry.LocalPIDs.LocalPIDs {
		n += b.Count()
	}
	return n
}

// TestCompactRegistry: the registry is RegistryBuckets wide, what Proto.Actor registered while
// making the system is still found (the same processes), and thousands of actors spawn, answer,
// and leave the registry as they stop.
func TestCompactRegistry(t *testing.T) {
	system := actor.NewActorSystem()
	defer system.Shutdown()
	before := map[string]actor.Process{}
	for _, id := range []string{"eventstream", "deadletter"} {
		p, ok := system.ProcessRegistry.GetLocal(id)
		if !ok {
			t.Fatalf("%s is not registered before the compaction", id)
		}
		before[id] = p
	}
	n0 := registered(system)
	CompactRegistry(system)
	if got := len(system.ProcessRegistry.LocalPIDs.LocalPIDs); got != RegistryBuckets {
		t.Fatalf("%d buckets, want %d", got, RegistryBuckets)
	}
	if got := registered(system); got != n0 {
		t.Fatalf("%d entries after the compaction, want the %d before", got, n0)
	}
	for id, p := range before {
		if got, ok := system.ProcessRegistry.GetLocal(id); !ok || got != p {
			t.Errorf("%s after the compaction: %v (found %v), want the same process", id, got, ok)
		}
	}
	CompactRegistry(system) // again: nothing to do
	if got := registered(system); got != n0 {
		t.Fatalf("%d entries after a second compaction, want %d", got, n0)
	}

	const actors = 5000
	echo := actor.PropsFromFunc(func(c actor.Context) {
		if s, ok := c.Message().(string); ok {
			c.Respond(s)
		}
	})
	pids := make([]*actor.PID, actors)
	for i := range pids {
		pid, err := system.Root.SpawnNamed(echo, fmt.Sprintf("echo/%d", i))
		if err != nil {
			t.Fatalf("spawn %d: %v", i, err)
		}
		pids[i] = pid
	}
	if got := registered(system); got != n0+actors {
		t.Fatalf("%d entries with %d actors, want %d", got, actors, n0+actors)
	}
	for i, pid := range pids {
		want := fmt.Sprint(i)
		got, err := system.Root.RequestFuture(pid, want, 5*time.Second).Result()
		if err != nil || got != want {
			t.Fatalf("actor %d answered %v, %v; want %q", i, got, err, want)
		}
	}
	for _, pid := range pids {
		if err := system.Root.StopFuture(pid).Wait(); err != nil {
			t.Fatalf("stop %v: %v", pid, err)
		}
	}
	if got := registered(system); got != n0 {
		t.Fatalf("%d entries once the actors stopped, want %d", got, n0)
	}
}
