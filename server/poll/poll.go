// Package poll tells a server when an idle socket has something to read, so that an idle
// connection costs no goroutine and no read buffer.
//
// One Poller owns one epoll instance, one goroutine blocked in epoll_wait (the wait loop) and a
// fixed pool of worker goroutines fed by a bounded queue. A socket is registered with Add, level
// triggered and one-shot: after one event the socket is disarmed until Resume, so exactly one
// callback is in flight per socket and the callback can read without racing another. The flow
// for one connection:
//
//	d, _ := p.Add(conn, onEvent)  // armed
//	... data arrives ...          // wait loop queues onEvent(Readable); socket disarmed
//	onEvent: read what is there   // on a worker; never on the wait loop
//	p.Resume(d)                   // armed again (fires at once if unread bytes remain)
//	... peer closes ...           // onEvent(Hangup|maybe Readable)
//	p.Remove(d); conn.Close()     // Remove first: see Remove
//
// Add watches a net.Conn's own file descriptor, reached through syscall.RawConn.Control, and
// keeps the net.Conn referenced so the runtime cannot close it behind the Poller's back. The Go
// runtime keeps that descriptor non-blocking and in its own netpoller too, so reading through
// the net.Conn after a Readable event returns at once; if it ever had to wait it would park the
// reading goroutine in the runtime, never the wait loop.
//
// AddFD watches a descriptor its caller owns (an FD: presenced's server detaches a socket from
// its net.TCPConn, whose runtime poll descriptor alone costs 512 bytes), for Readable or, for a
// writer waiting on a full socket, Writable. The owner then does its own waiting through the
// Poller, and keeps the descriptor open until Remove returns.
package poll

import (
	"errors"
	"strings"
)

// Event is the set of conditions a callback is told about. Both bits can be set at once: a peer
// that sends a last frame and closes yields Readable|Hangup, and the bytes are still there to
// read.
type Event uint8

const (
	// Readable means bytes (or an end of stream) are waiting in the socket.
	Readable Event = 1 << iota
	// Hangup means the peer shut down its side (EPOLLRDHUP), or the socket hung up or failed
	// (EPOLLHUP, EPOLLERR). Read what is left, then Remove and close.
	Hangup
	// Writable means the socket's send buffer has room again (AddFD with Writable only: a
	// writer waiting for a full socket).
	Writable
)

func (e Event) String() string {
	var parts []string
	if e&Readable != 0 {
		parts = append(parts, "Readable")
	}
	if e&Hangup != 0 {
		parts = append(parts, "Hangup")
	}
	if e&Writable != 0 {
		parts = append(parts, "Writable")
	}
	if len(parts) == 0 {
		return "0"
	}
	return strings.Join(parts, "|")
}

var (
	// ErrClosed is returned by Add, Resume and Remove after Close.
	ErrClosed = errors.New("poll: poller closed")
	// ErrRemoved is returned by Resume after Remove.
	ErrRemoved = errors.New("poll: descriptor removed")
	// ErrNotSyscallConn is returned by Add for a net.Conn without SyscallConn (net.Pipe, tls.Conn:
	// register the underlying *net.TCPConn instead).
	ErrNotSyscallConn = errors.New("poll: conn has no SyscallConn")
)

// FD is a descriptor that its owner keeps open while Control runs: Control calls f with the
// descriptor, or returns an error wrapping net.ErrClosed once it is closed, so a closed
// number that another socket reuses is never touched. syscall.RawConn is an FD.
type FD interface {
	Control(f func(fd uintptr)) error
}

const (
	// queuePerWorker sizes the bounded queue between the wait loop and the workers. When it is
	// full the wait loop waits: events stay in the kernel and nothing is lost or buffered
	// without bound.
	queuePerWorker = 64
	// waitBatch is how many events one epoll_wait returns at most.
	waitBatch = 256
)
