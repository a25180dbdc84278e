package server

import (
	"errors"
	"fmt"
	"io"
	"net"
	"os"
	"sync"
	"syscall"
	"time"

	"golang.org/x/sys/unix"
)

// sock is a polled TCP socket once its net.TCPConn is let go (detach): the descriptor alone,
// non-blocking. A net.TCPConn costs an idle connection about 1 KiB: its two addresses, its
// netFD and, outside the heap, the runtime's poll descriptor (512 bytes in Go 1.26: two timers,
// padded for tagged pointers, runtime/tagptr.go) and a finalizer. presenced waits on the socket
// with its own epoll (reads, and the rare writer that finds the socket full), so it needs none
// of that.
//
// Every use of the descriptor holds a reference (acquire, release); close shuts the socket down
// at once, which wakes whoever waits on it, but closes the descriptor only when the last
// reference is let go. So a number is never read, written or given to epoll_ctl after it was
// closed and perhaps reused by another socket.
type sock struct {
	mu     sync.Mutex
	fd     int32
	refs   int32
	closed bool
}

// detach takes the socket out of nc: a duplicate of its descriptor (close-on-exec,
// non-blocking), then nc is closed, which gives the runtime back its poll descriptor. On error
// nc is left as it was.
func detach(nc net.Conn) (*sock, error) {
	sc, ok := nc.(syscall.Conn)
	if !ok {
		return nil, errors.New("server: socket has no descriptor")
	}
	rc, err := sc.SyscallConn()
	if err != nil {
		return nil, fmt.Errorf("server: detach socket: %w", err)
	}
	fd := -1
	var dupErr error
	if err := rc.Control(func(f uintptr) { fd, dupErr = unix.FcntlInt(f, unix.F_DUPFD_CLOEXEC, 0) }); err != nil {
		return nil, fmt.Errorf("server: detach socket: %w", err)
	}
	if dupErr != nil {
		return nil, fmt.Errorf("server: detach socket: dup: %w", dupErr)
	}
	if err := unix.SetNonblock(fd, true); err != nil {
		_ = unix.Close(fd)
		return nil, fmt.Errorf("server: detach socket: %w", err)
	}
	_ = nc.Close() // the duplicate keeps the connection open: no FIN goes out
	return &sock{fd: int32(fd)}, nil
}

// acquire returns the descriptor and holds it open until release; false once closed.
func (s *sock) acquire() (int, bool) {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.closed {
		return -1, false
	}
	s.refs++
	return int(s.fd), true
}

func (s *sock) release() {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.refs--
	if s.closed && s.refs == 0 {
		_ = unix.Close(int(s.fd))
	}
}

// Control runs f with the descriptor held open (poll.FD).
func (s *sock) Control(f func(fd uintptr)) error {
	fd, ok := s.acquire()
	if !ok {
		return net.ErrClosed
	}
	defer s.release()
	f(uintptr(fd))
	return nil
}

// read is one non-blocking read(2): unix.EAGAIN when nothing is there, io.EOF when the peer
// closed, net.ErrClosed after close.
func (s *sock) read(p []byte) (int, error) {
	fd, ok := s.acquire()
	if !ok {
		return 0, net.ErrClosed
	}
	defer s.release()
	for {
		n, err := unix.Read(fd, p)
		switch {
		case err == unix.EINTR:
			continue
		case err != nil:
			return 0, err
		case n == 0 && len(p) > 0:
			return 0, io.EOF
		}
		return n, nil
	}
}

// write writes what the socket takes now with non-blocking write(2) calls: n < len(p) with a
// nil error means the socket is full and the rest must wait (writable).
func (s *sock) write(p []byte) (int, error) {
	fd, ok := s.acquire()
	if !ok {
		return 0, net.ErrClosed
	}
	defer s.release()
	n := 0
	for n < len(p) {
		m, err := unix.Write(fd, p[n:])
		if m > 0 {
			n += m
		}
		switch {
		case err == nil, err == unix.EINTR:
		case err == unix.EAGAIN:
			return n, nil
		default:
			return n, err
		}
	}
	return n, nil
}

// closeWrite half-closes the socket, so the client reads our close frame, not a reset.
func (s *sock) closeWrite() {
	if fd, ok := s.acquire(); ok {
		_ = unix.Shutdown(fd, unix.SHUT_WR)
		s.release()
	}
}

// close shuts the socket down (a reader or writer waiting on it wakes and fails) and closes
// the descriptor once nothing holds it. Calls after the first do nothing.
func (s *sock) close() {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.closed {
		return
	}
	s.closed = true
	if s.refs > 0 {
		_ = unix.Shutdown(int(s.fd), unix.SHUT_RDWR)
		return // the last release closes it
	}
	_ = unix.Close(int(s.fd))
}

// awaitSignal waits for ch or for wait to pass (then os.ErrDeadlineExceeded, a net.Error that
// times out, as a net.Conn's deadline gives).
func awaitSignal(ch <-chan struct{}, wait time.Duration) error {
	t := time.NewTimer(wait)
	defer t.Stop()
	select {
	case <-ch:
		return nil
	case <-t.C:
		return os.ErrDeadlineExceeded
	}
}
