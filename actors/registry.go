package actors

import (
	"slices"

	"github.com/asynkron/protoactor-go/actor"
)

// RegistryBuckets is how many buckets of Proto.Actor's process registry a node keeps.
//
// The registry is a slice of buckets, each a concurrent map of 32 Go maps, and Proto.Actor makes
// 1,024 of them: 32,768 Go maps. A Go map's first entry allocates a group of 8 slots (288 bytes),
// so while a node holds fewer actors than maps, nearly every actor pays for a group of its own.
// At 18,000 connections (two actors each: the connection and its user) that was about 350 bytes
// a connection, a tenth of an idle connection's live heap. With 64 buckets (2,048 maps) the same
// actors share groups: about 60 bytes an actor, and 1.7 MB less for the empty registry. From
// about 200,000 actors on both layouts cost the same, 50–85 bytes an actor, as the maps' tables
// grow (measured: docs/benchmarks.md). 2,048 locks are still far more than cores, so lookups do not
// contend.
const RegistryBuckets = 64

// CompactRegistry makes system's process registry RegistryBuckets buckets wide, moving the
// processes already registered (the event stream, dead letters) into their new buckets. Call it
// right after the system is made, before anything else uses the registry: it is not safe to run
// beside lookups. It works through the registry's exported fields: the registry hashes an id
// onto as many buckets as its slice holds.
func CompactRegistry(system *actor.ActorSystem) {
	sm := system.ProcessRegistry.LocalPIDs
	if len(sm.LocalPIDs) <= RegistryBuckets {
		return
	}
	type entry struct {
		id   string
		p    any
		from int
	}
	var all []entry
	for i, b := range sm.LocalPIDs {
		b.IterCb(func(id string, p any) { all = append(all, entry{id: id, p: p, from: i}) })
	}
	old := sm.LocalPIDs
	sm.LocalPIDs = slices.Clone(old[:RegistryBuckets]) // a new array: the dropped buckets are let go
	for _, e := range all {
		if e.from < RegistryBuckets {
			old[e.from].Remove(e.id)
		}
		sm.GetBucket(e.id).Set(e.id, e.p)
	}
}
