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

// TestMailboxIdleStorage: once drained, the system queue keeps no array; the user queue keeps
// its tiny one, so that an actor getting one message at a time does not allocate for each
// (TestMailboxPerMessageAllocs).
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
	if m.sys.q != nil {
		t.Fatalf("drained system queue keeps cap %d", cap(m.sys.q))
	}
	if cap(m.user.q) != 1 {
		t.Fatalf("drained user queue keeps cap %d, want its array of 1", cap(m.user.q))
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
	var f fifo
	for i := 0; i < 1000; i++ {
		f.push(i)
	}
	for i := 0; i < 1000; i++ {
		if m, ok := f.pop(); !ok || m != i {
			t.Fatalf("pop %d: %v %v", i, m, ok)
		}
	}
	if f.q != nil || f.head != 0 {
		t.Fatalf("drained queue keeps cap %d, head %d", cap(f.q), f.head)
	}
	// A queue that never empties compacts rather than growing without end.
	for i := 0; i < 100000; i++ {
		f.push(i)
		f.push(i)
		f.pop()
		f.pop()
		f.push(i)
		if _, ok := f.pop(); !ok {
			t.Fatal("empty")
		}
		f.push(i)
	}
	if f.len() != 100000 {
		t.Fatalf("len %d", f.len())
	}
	if c := cap(f.q); c > 4*f.len() {
		t.Fatalf("cap %d for %d queued: the queue did not compact", c, f.len())
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
