package actors

import (
	"fmt"
	"slices"
	"testing"

	"github.com/asynkron/protoactor-go/actor"
)

// members lists a followerSet's ids, sorted.
func members(s *followerSet) []string {
	var ids []string
	for _, p := range s.few {
		ids = append(ids, p.Id)
	}
	for p := range s.many {
		ids = append(ids, p.Id)
	}
	slices.Sort(ids)
	return ids
}

// TestFollowerSetGrowsIntoAMap: a set is a slice up to manyFollowers and a map beyond; either
// way adding twice keeps one, and removing leaves exactly the others. A follower is its
// connection actor's own PID: the same pointer each time.
func TestFollowerSetGrowsIntoAMap(t *testing.T) {
	pids := make([]*actor.PID, manyFollowers+1)
	for i := range pids {
		pids[i] = actor.NewPID("nonhost", fmt.Sprintf("c%04d", i))
	}
	pid := func(i int) *actor.PID { return pids[i] }
	var s followerSet
	var want []string
	for i := range manyFollowers {
		s.add(pid(i))
		s.add(pid(i)) // a second subscribe of the same connection is a no-op
		want = append(want, pid(i).Id)
	}
	if s.many != nil || s.len() != manyFollowers || !slices.Equal(members(&s), want) {
		t.Fatalf("at %d: many=%v len=%d members=%v", manyFollowers, s.many != nil, s.len(), members(&s))
	}
	s.remove(pid(3))
	s.add(pid(3))
	s.add(pid(manyFollowers))
	want = append(want, pid(manyFollowers).Id)
	if s.many == nil || s.few != nil || s.len() != manyFollowers+1 || !slices.Equal(members(&s), want) {
		t.Fatalf("past %d: many=%v len=%d members=%v", manyFollowers, s.many != nil, s.len(), members(&s))
	}
	for i := 0; i <= manyFollowers; i += 2 {
		s.remove(pid(i))
	}
	s.remove(pid(1000)) // not a member: nothing changes
	want = want[:0]
	for i := 1; i <= manyFollowers; i += 2 {
		want = append(want, pid(i).Id)
	}
	if !slices.Equal(members(&s), want) {
		t.Fatalf("after removals: %v, want %v", members(&s), want)
	}

	var small followerSet
	for i := range 5 {
		small.add(pid(i))
	}
	small.remove(pid(0)) // the last one moves into its place
	small.remove(pid(4))
	if !slices.Equal(members(&small), []string{"c0001", "c0002", "c0003"}) || cap(small.few) < 3 || small.few[:cap(small.few)][3] != nil {
		t.Fatalf("small set after removals: %v (the freed slot must not keep a pid)", members(&small))
	}
}
