package actors

import (
	"errors"
	"testing"
	"time"

	"github.com/asynkron/protoactor-go/actor"
)

// recorder is an actor that reports every user message it receives, in order, and panics on
// the messages it is told to.
type recorder struct {
	got chan any
}

type boom struct{}

func (r *recorder) Receive(ctx actor.Context) {
	switch m := ctx.Message().(type) {
	case boom:
		panic(errors.New("boom"))
	case int, string:
		r.got <- m
	case *actor.Restarting:
		r.got <- "restarting"
	}
}

func spawnRecorder(t *testing.T, sys *actor.ActorSystem, opts ...actor.PropsOption) (*actor.PID, chan any) {
	t.Helper()
	got := make(chan any, 4096)
	props := actor.PropsFromProducer(func() actor.Actor { return &recorder{got: got} }, append([]actor.PropsOption{WithMailbox()}, opts...)...)
	return sys.Root.Spawn(props), got
}

func next(t *testing.T, got chan any) any {
	t.Helper()
	select {
	case m := <-got:
		return m
	case <-time.After(10 * time.Second):
		t.Fatal("the actor received nothing")
		return nil
	}
}

// TestMailboxOrder: user messages arrive in the order they were sent, across runs longer than
// the dispatcher's throughput (the mailbox yields and comes back).
func TestMailboxOrder(t *testing.T) {
	sys := actor.NewActorSystem()
	defer sys.Shutdown()
	pid, got := spawnRecorder(t, sys, actor.WithDispatcher(actor.NewDefaultDispatcher(7)))
	const n = 3000
	for i := 0; i < n; i++ {
		sys.Root.Send(pid, i)
	}
	for i := 0; i < n; i++ {
		if m := next(t, got); m != i {
			t.Fatalf("message %d: got %v", i, m)
		}
	}
	sys.Root.Stop(pid)
}

// TestMailboxManySenders: every message of concurrent senders arrives once, each sender's in order.
func TestMailboxManySenders(t *testing.T) {
	sys := actor.NewActorSystem()
	defer sys.Shutdown()
	pid, got := spawnRecorder(t, sys)
	const senders, each = 4, 500
	for s := 0; s < senders; s++ {
		go func() {
			for i := 0; i < each; i++ {
				sys.Root.Send(pid, s*each+i)
			}
		}()
	}
	last := make([]int, senders)
	for i := range last {
		last[i] = -1
	}
	for i := 0; i < senders*each; i++ {
		m := next(t, got).(int)
		s, k := m/each, m%each
		if k <= last[s] {
			t.Fatalf("sender %d: %d after %d", s, k, last[s])
		}
		last[s] = k
	}
	for s, k := range last {
		if k != each-1 {
			t.Fatalf("sender %d: last %d, want %d", s, k, each-1)
		}
	}
	sys.Root.Stop(pid)
}

// TestMailboxPanicRestarts: a panic goes to the supervisor (the default restarts the actor),
// and the messages queued behind it are still delivered, in order.
func TestMailboxPanicRestarts(t *testing.T) {
	sys := actor.NewActorSystem()
	defer sys.Shutdown()
	pid, got := spawnRecorder(t, sys)
	sys.Root.Send(pid, 1)
	sys.Root.Send(pid, boom{})
	sys.Root.Send(pid, 2)
	for _, want := range []any{1, "restarting", 2} {
		if m := next(t, got); m != want {
			t.Fatalf("got %v, want %v", m, want)
		}
	}
	sys.Root.Stop(pid)
}

// TestMailboxSuspend: while suspended, user messages wait; system messages do not.
func TestMailboxSuspend(t *testing.T) {
	var inv invocations
	m := Mailbox()()
	m.RegisterHandlers(&inv, actor.NewSynchronizedDispatcher(300))
	m.PostSystemMessage(&actor.SuspendMailbox{})
	m.PostUserMessage("u1")
	m.PostSystemMessage("s1")
	if want := []any{"sys:s1"}; !equal(inv.log, want) {
		t.Fatalf("suspended: %v, want %v", inv.log, want)
	}
	if n := m.UserMessageCount(); n != 1 {
		t.Fatalf("UserMessageCount %d, want 1", n)
	}
	m.PostSystemMessage(&actor.ResumeMailbox{})
	if want := []any{"sys:s1", "user:u1"}; !equal(inv.log, want) {
		t.Fatalf("resumed: %v, want %v", inv.log, want)
	}
}

// TestMailboxIdleStorage: once drained, the queue keeps its tiny array, so that an actor
// getting one message at a time does not allocate for each (TestMailboxPerMessageAllocs).
func TestMailboxIdleStorage(t *testing.T) {
	var inv invocations
	mb := Mailbox()()
	mb.RegisterHandlers(&inv, actor.NewSynchronizedDispatcher(300))
	mb.PostSystemMessage("s1")
	mb.PostUserMessage("u1")
	if want := []any{"sys:s1", "user:u1"}; !equal(inv.log, want) {
		t.Fatalf("got %v, want %v", inv.log, want)
	}
	m := mb.(*mailbox)
	if len(m.q) != 0 || cap(m.q) != 1 || m.nsys != 0 {
		t.Fatalf("drained queue: len %d cap %d nsys %d, want its array of 1 and nothing queued", len(m.q), cap(m.q), m.nsys)
	}
}

// TestMailboxSystemFirst: system messages come out before every user message, each kind in the
// order it was queued, however the two were interleaved.
func TestMailboxSystemFirst(t *testing.T) {
	var q mailbox
	q.pushUser("a")
	q.pushUser("b")
	q.pushSystem("s1")
	q.pushUser("c")
	q.pushSystem("s2")
	if n := q.users(); n != 3 {
		t.Fatalf("users %d, want 3", n)
	}
	type out struct {
		m      any
		system bool
	}
	expect := func(want ...out) {
		t.Helper()
		for i, w := range want {
			m, system, ok := q.pop()
			if !ok || m != w.m || system != w.system {
				t.Fatalf("pop %d: %v system=%v ok=%v, want %v system=%v", i, m, system, ok, w.m, w.system)
			}
		}
	}
	expect(out{"s1", true}, out{"s2", true})
	q.pushSystem("s3") // once the system messages are out: still ahead of the users left
	expect(out{"s3", true}, out{"a", false}, out{"b", false}, out{"c", false})
	if m, _, ok := q.pop(); ok {
		t.Fatalf("drained queue popped %v", m)
	}
}

// TestMailboxBatch: a batch's parts are delivered one by one, then the batch itself.
func TestMailboxBatch(t *testing.T) {
	var inv invocations
	m := Mailbox()()
	m.RegisterHandlers(&inv, actor.NewSynchronizedDispatcher(300))
	b := batch{"a", "b"}
	m.PostUserMessage(b)
	if want := []any{"user:a", "user:b", b}; !equal(inv.log, want) {
		t.Fatalf("got %v, want %v", inv.log, want)
	}
}

// TestMailboxGivesStorageBack: a queue that grew for a burst holds no array once drained.
func TestMailboxGivesStorageBack(t *testing.T) {
	var q mailbox
	for i := 0; i < 1000; i++ {
		q.pushUser(i)
	}
	for i := 0; i < 1000; i++ {
		if m, system, ok := q.pop(); !ok || system || m != i {
			t.Fatalf("pop %d: %v %v %v", i, m, system, ok)
		}
	}
	if q.q != nil {
		t.Fatalf("drained queue keeps cap %d", cap(q.q))
	}
	// A queue that never empties does not grow without end: its appends copy only what is left.
	for i := 0; i < 100000; i++ {
		q.pushUser(i)
		q.pushUser(i)
		q.pop()
		q.pop()
		q.pushUser(i)
		if _, _, ok := q.pop(); !ok {
			t.Fatal("empty")
		}
		q.pushUser(i)
	}
	if q.users() != 100000 {
		t.Fatalf("len %d", q.users())
	}
	if c := cap(q.q); c > 4*q.users() {
		t.Fatalf("cap %d for %d queued: the queue did not compact", c, q.users())
	}
}

// TestMailboxPerMessageAllocs: a message to an actor with this mailbox allocates nothing once
// the queue has grown (the default mailbox allocates a node per message).
func TestMailboxPerMessageAllocs(t *testing.T) {
	var inv invocations
	inv.quiet = true
	m := Mailbox()()
	m.RegisterHandlers(&inv, actor.NewSynchronizedDispatcher(300))
	msg := any(&struct{ x int }{1})
	m.PostUserMessage(msg)
	if a := testing.AllocsPerRun(1000, func() { m.PostUserMessage(msg) }); a != 0 {
		t.Fatalf("%v allocations per message, want 0", a)
	}
	// Nor for messages that come a few at a time: the small array is kept from its start.
	var q mailbox
	if a := testing.AllocsPerRun(1000, func() {
		for range 3 {
			q.pushUser(msg)
		}
		for range 3 {
			q.pop()
		}
	}); a != 0 {
		t.Fatalf("%v allocations per burst of 3, want 0", a)
	}
}

type batch []any

func (b batch) GetMessages() []any { return b }

// invocations records what a mailbox hands its actor.
type invocations struct {
	log   []any
	quiet bool
}

func (i *invocations) InvokeSystemMessage(m any) {
	if !i.quiet {
		i.log = append(i.log, "sys:"+m.(string))
	}
}

func (i *invocations) InvokeUserMessage(m any) {
	if i.quiet {
		return
	}
	if s, ok := m.(string); ok {
		i.log = append(i.log, "user:"+s)
		return
	}
	i.log = append(i.log, m)
}

func (i *invocations) EscalateFailure(reason, m any) {}

func equal(a, b []any) bool {
	if len(a) != len(b) {
		return false
	}
	for i := range a {
		if _, ok := a[i].(batch); ok {
			if _, ok := b[i].(batch); !ok {
				return false
			}
			continue
		}
		if a[i] != b[i] {
			return false
		}
	}
	return true
}
