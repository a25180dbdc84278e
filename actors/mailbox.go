package actors

import (
	"slices"
	"sync"

	"github.com/asynkron/protoactor-go/actor"
)

// Mailbox is the mailbox of every presenced actor: Proto.Actor's default, rewritten for what
// this server has many of, idle actors. Every connection brings one or two actors (its
// connection actor and its user's actor), and most of them receive nothing for minutes.
//
// Proto.Actor's default mailbox keeps a ring of 10 slots and a lock-free MPSC queue whose every
// push allocates a node: about 250 bytes per idle actor (heap profile at 18,000 idle
// connections) and one allocation per message. This one is a mutex and one slice queue that
// keeps at most 4 slots once empty, so an idle actor's mailbox costs little more than its struct,
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

	// mu guards the queue and the flags. The queue is one slice for both kinds of message: the
	// system messages first, in their order, then the user messages, in theirs. The flags share
	// a word with the count of system messages: 80 bytes in all, where two queues of their own
	// took the 128-byte size class (and a connection has two mailboxes).
	mu        sync.Mutex
	q         []any
	nsys      int32
	scheduled bool // a run is scheduled or running; only it pops
	suspended bool // user messages wait for ResumeMailbox
}

// The queue's methods need mu held.
//
// System messages are few (a start, a watch, a stop): one is inserted after the last one
// queued, which moves the user messages behind it by one. A small queue pops by moving what
// is left down, so that it keeps its array from the start (an actor that gets messages two or
// three at a time allocates nothing); a big one pops by reslicing, and when an append finds no
// room it copies only what is left, so a queue that never empties does not grow without end.

func (m *mailbox) users() int { return len(m.q) - int(m.nsys) }

func (m *mailbox) pushUser(msg any) { m.q = append(m.q, msg) }

func (m *mailbox) pushSystem(msg any) {
	m.q = slices.Insert(m.q, int(m.nsys), msg)
	m.nsys++
}

// pop takes the first message, a system one if any is queued.
func (m *mailbox) pop() (msg any, system, ok bool) {
	if len(m.q) == 0 {
		return nil, false, false
	}
	msg, system = m.q[0], m.nsys > 0
	if system {
		m.nsys--
	}
	n := len(m.q) - 1
	switch {
	case cap(m.q) <= smallQueue:
		copy(m.q, m.q[1:])
		m.q[n] = nil
		m.q = m.q[:n]
	case n > 0:
		m.q[0] = nil
		m.q = m.q[1:]
	default:
		m.q = nil // a burst is over: an idle actor holds no more than a few words
	}
	return msg, system, true
}

// smallQueue is the most slots a drained queue keeps.
const smallQueue = 4

func (m *mailbox) RegisterHandlers(invoker actor.MessageInvoker, dispatcher actor.Dispatcher) {
	m.invoker, m.dispatcher = invoker, dispatcher
	m.run = m.process
}

func (m *mailbox) Start() {}

func (m *mailbox) UserMessageCount() int {
	m.mu.Lock()
	defer m.mu.Unlock()
	return m.users()
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
	m.pushUser(msg)
	m.scheduleLocked(!m.suspended)
}

func (m *mailbox) PostSystemMessage(msg any) {
	m.mu.Lock()
	m.pushSystem(msg)
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
		if m.suspended && m.nsys == 0 {
			m.scheduled = false
			m.mu.Unlock()
			return
		}
		msg, system, ok := m.pop()
		if !ok {
			m.scheduled = false
			m.mu.Unlock()
			return
		}
		if !system {
			m.mu.Unlock()
			m.invoke(msg, false)
			continue
		}
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
