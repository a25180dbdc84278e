package actors

import (
	"sync"

	"github.com/asynkron/protoactor-go/actor"
)

// Mailbox is the mailbox of every presenced actor: Proto.Actor's default, rewritten for what
// this server has many of, idle actors. Every connection brings one or two actors (its
// connection actor and its user's actor), and most of them receive nothing for minutes.
//
// Proto.Actor's default mailbox keeps a ring of 10 slots and a lock-free MPSC queue whose every
// push allocates a node: about 250 bytes per idle actor (heap profile at 18,000 idle
// connections) and one allocation per message. This one is a mutex and two slice queues that
// keep at most 4 slots once empty, so an idle actor's mailbox costs little more than its struct,
// and a busy one allocates only when its queue grows.
//
// The semantics are the default's: system messages before user messages, SuspendMailbox and
// ResumeMailbox handled here, at most the dispatcher's throughput of messages per run before the
// actor yields its goroutine to others, and a panic in the actor escalated to its supervisor.
func Mailbox() actor.MailboxProducer {
	return func() actor.Mailbox { return &mailbox{} }
}

// WithMailbox configures props to use Mailbox.
func WithMailbox() actor.PropsOption { return actor.WithMailbox(Mailbox()) }

type mailbox struct {
	invoker    actor.MessageInvoker
	dispatcher actor.Dispatcher
	run        func() // m.process, made once: a method value allocates each time it is taken

	mu        sync.Mutex
	sys, user fifo
	scheduled bool // a run is scheduled or running; only it pops
	suspended bool // user messages wait for ResumeMailbox
}

// fifo is a slice queue that gives its storage back when it empties.
type fifo struct {
	q    []any
	head int
}

func (f *fifo) len() int { return len(f.q) - f.head }

func (f *fifo) push(m any) {
	if f.head >= 64 && f.head*2 >= len(f.q) {
		// A queue that never empties would grow forever at its tail: move what is left down.
		n := copy(f.q, f.q[f.head:])
		clear(f.q[n:])
		f.q, f.head = f.q[:n], 0
	}
	f.q = append(f.q, m)
}

func (f *fifo) pop() (any, bool) {
	if f.head == len(f.q) {
		return nil, false
	}
	m := f.q[f.head]
	f.q[f.head] = nil
	f.head++
	if f.head == len(f.q) {
		// Empty: keep a tiny array for the next message (most actors get one at a time), give
		// anything bigger back: an idle actor should hold no more than a few words.
		if cap(f.q) > 4 {
			f.q = nil
		} else {
			f.q = f.q[:0]
		}
		f.head = 0
	}
	return m, true
}

// popRare is pop for a queue that is seldom used (system messages: a start, a watch, a stop):
// it keeps no array once empty. An actor that sat idle held one otherwise, 16–64 bytes each.
func (f *fifo) popRare() (any, bool) {
	m, ok := f.pop()
	if f.len() == 0 {
		f.q = nil
	}
	return m, ok
}

func (m *mailbox) RegisterHandlers(invoker actor.MessageInvoker, dispatcher actor.Dispatcher) {
	m.invoker, m.dispatcher = invoker, dispatcher
	m.run = m.process
}

func (m *mailbox) Start() {}

func (m *mailbox) UserMessageCount() int {
	m.mu.Lock()
	defer m.mu.Unlock()
	return m.user.len()
}

func (m *mailbox) PostUserMessage(msg any) {
	// Proto.Actor lets a sender post a batch as one message; its parts are delivered one by one,
	// and the batch itself after them (as the default mailbox does).
	if b, ok := msg.(actor.MessageBatch); ok {
		for _, part := range b.GetMessages() {
			m.PostUserMessage(part)
		}
	}
	if env, ok := msg.(*actor.MessageEnvelope); ok {
		if b, ok := env.Message.(actor.MessageBatch); ok {
			for _, part := range b.GetMessages() {
				m.PostUserMessage(part)
			}
		}
	}
	m.mu.Lock()
	m.user.push(msg)
	m.scheduleLocked(!m.suspended)
}

func (m *mailbox) PostSystemMessage(msg any) {
	m.mu.Lock()
	m.sys.push(msg)
	m.scheduleLocked(true)
}

// scheduleLocked unlocks m and, when runnable and no run is scheduled, schedules one.
func (m *mailbox) scheduleLocked(runnable bool) {
	if !runnable || m.scheduled {
		m.mu.Unlock()
		return
	}
	m.scheduled = true
	m.mu.Unlock()
	m.dispatcher.Schedule(m.run)
}

// process runs queued messages until none is runnable, or until the throughput is used up;
// then it schedules itself again so other actors get the goroutine's turn.
func (m *mailbox) process() {
	budget := m.dispatcher.Throughput()
	for i := 0; ; i++ {
		if i >= budget {
			m.dispatcher.Schedule(m.run) // still scheduled: nobody else schedules meanwhile
			return
		}
		m.mu.Lock()
		if msg, ok := m.sys.popRare(); ok {
			switch msg.(type) {
			case *actor.SuspendMailbox:
				m.suspended = true
				m.mu.Unlock()
			case *actor.ResumeMailbox:
				m.suspended = false
				m.mu.Unlock()
			default:
				m.mu.Unlock()
				m.invoke(msg, true)
			}
			continue
		}
		if m.suspended {
			m.scheduled = false
			m.mu.Unlock()
			return
		}
		msg, ok := m.user.pop()
		if !ok {
			m.scheduled = false
			m.mu.Unlock()
			return
		}
		m.mu.Unlock()
		m.invoke(msg, false)
	}
}

// invoke hands one message to the actor; a panic is escalated to its supervisor, which
// suspends this mailbox with a system message and decides (restart, stop, resume).
func (m *mailbox) invoke(msg any, system bool) {
	defer func() {
		if r := recover(); r != nil {
			m.invoker.EscalateFailure(r, msg)
		}
	}()
	if system {
		m.invoker.InvokeSystemMessage(msg)
		return
	}
	m.invoker.InvokeUserMessage(msg)
}
