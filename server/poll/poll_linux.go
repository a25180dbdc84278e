//go:build linux

package poll

import (
	"encoding/binary"
	"errors"
	"fmt"
	"net"
	"runtime"
	"sync"
	"syscall"

	"golang.org/x/sys/unix"
)

// armedRead and armedWrite are what a registered socket waits for: level triggered, disarmed
// after one event. EPOLLHUP and EPOLLERR are always reported by the kernel.
const (
	armedRead  = unix.EPOLLIN | unix.EPOLLRDHUP | unix.EPOLLONESHOT
	armedWrite = unix.EPOLLOUT | unix.EPOLLONESHOT
)

// testHookQueued, when a test sets it before New, is called by the wait loop after it queued an
// event for d.
var testHookQueued func(d *Desc)

// wakeID is the epoll data of the eventfd that Close writes to; Descs get ids from 1 up.
const wakeID = 0

// Poller is an epoll instance with its wait loop and worker pool. All methods are safe for
// concurrent use, and Add, Resume and Remove may be called from inside a callback; Close may
// not (it waits for the callbacks).
type Poller struct {
	epfd   int
	wakefd int // an eventfd: Close writes it to wake the wait loop

	queue chan dispatch  // bounded: from the wait loop to the workers
	done  chan struct{}  // closed by Close: the wait loop and the workers return
	wg    sync.WaitGroup // the wait loop and the workers; Close waits for it
	once  sync.Once      // Close runs once; later callers wait for the first
	err   error          // what Close returns, set inside once
	wErr  error          // set by the wait loop before it returns, read by Close after wg.Wait

	// life guards closed and the two fds' lifetime: every epoll_ctl runs under life.RLock
	// after checking closed, and Close sets closed under life.Lock before it closes the fds.
	life   sync.RWMutex
	closed bool

	mu     sync.Mutex       // guards descs and lastID
	descs  map[uint64]*Desc // registered, by id; the wait loop looks events up here
	lastID uint64
}

// Desc is one registered socket. It is created by Add and used for Resume and Remove.
type Desc struct {
	id      uint64
	fd      FD
	onEvent func(Event)

	mu      sync.Mutex // guards removed and orders Resume against Remove
	removed bool
	events  uint32 // armedRead or armedWrite
}

type dispatch struct {
	d  *Desc
	ev Event
}

// New creates a Poller and starts its wait loop and workers goroutines (GOMAXPROCS when
// workers < 1). The queue between them holds 64 events per worker; when it is full the wait
// loop waits for a worker and events stay in the kernel.
func New(workers int) (*Poller, error) {
	if workers < 1 {
		workers = runtime.GOMAXPROCS(0)
	}
	epfd, err := unix.EpollCreate1(unix.EPOLL_CLOEXEC)
	if err != nil {
		return nil, fmt.Errorf("poll: epoll_create1: %w", err)
	}
	wakefd, err := unix.Eventfd(0, unix.EFD_NONBLOCK|unix.EFD_CLOEXEC)
	if err != nil {
		_ = unix.Close(epfd)
		return nil, fmt.Errorf("poll: eventfd: %w", err)
	}
	ev := unix.EpollEvent{Events: unix.EPOLLIN}
	setID(&ev, wakeID)
	if err := unix.EpollCtl(epfd, unix.EPOLL_CTL_ADD, wakefd, &ev); err != nil {
		_ = unix.Close(wakefd)
		_ = unix.Close(epfd)
		return nil, fmt.Errorf("poll: register eventfd: %w", err)
	}
	p := &Poller{
		epfd:   epfd,
		wakefd: wakefd,
		queue:  make(chan dispatch, workers*queuePerWorker),
		done:   make(chan struct{}),
		descs:  make(map[uint64]*Desc),
	}
	p.wg.Add(1 + workers)
	go p.wait()
	for range workers {
		go p.work()
	}
	return p, nil
}

// Add registers c, armed. c must be a *net.TCPConn or another net.Conn with SyscallConn; its
// file descriptor is used as is (not duplicated), and c stays referenced until Remove.
//
// onEvent runs on a worker goroutine, once per event; the socket stays disarmed until Resume,
// so calls for one Desc never overlap as long as Resume is called only once the callback (or
// the goroutine it handed the socket to) is done reading. onEvent may run before Add returns:
// a callback that needs the *Desc must get it under a lock the caller holds across Add, e.g.
//
//	c.mu.Lock()
//	c.desc, err = p.Add(nc, c.onEvent) // c.onEvent locks c.mu before reading c.desc
//	c.mu.Unlock()
//
// onEvent should not block for long: a blocked callback holds one of the workers.
func (p *Poller) Add(c net.Conn, onEvent func(Event)) (*Desc, error) {
	sc, ok := c.(syscall.Conn)
	if !ok {
		return nil, ErrNotSyscallConn
	}
	rc, err := sc.SyscallConn()
	if err != nil {
		return nil, fmt.Errorf("poll: add: %w", err)
	}
	// The raw conn refers to the conn's descriptor, so holding it keeps the conn's finalizer
	// from closing the number while it is registered: the conn itself need not be held.
	return p.add(&Desc{fd: rc, onEvent: onEvent, events: armedRead})
}

// AddFD registers a descriptor that the caller owns, armed for want: Readable (with Hangup), as
// Add does, or Writable (a writer waiting for room; Hangup also ends the wait). Events, Resume
// and the callback's rules are those of Add. The owner must keep fd open until Remove returns:
// Control refusing once it is closed is what keeps Resume and Remove off a reused number.
func (p *Poller) AddFD(fd FD, want Event, onEvent func(Event)) (*Desc, error) {
	d := &Desc{fd: fd, onEvent: onEvent, events: armedRead}
	switch want {
	case Readable:
	case Writable:
		d.events = armedWrite
	default:
		return nil, fmt.Errorf("poll: add: want Readable or Writable, not %v", want)
	}
	return p.add(d)
}

func (p *Poller) add(d *Desc) (*Desc, error) {
	p.life.RLock()
	defer p.life.RUnlock()
	if p.closed {
		return nil, ErrClosed
	}
	p.mu.Lock()
	p.lastID++
	d.id = p.lastID
	p.descs[d.id] = d // before EPOLL_CTL_ADD: the first event can come at once
	p.mu.Unlock()
	if err := p.ctl(d, unix.EPOLL_CTL_ADD); err != nil {
		p.forget(d)
		return nil, fmt.Errorf("poll: add: %w", err)
	}
	return d, nil
}

// Resume re-arms d after an event: the next event comes when the socket is readable (at once if
// bytes are still unread) or hangs up. It returns ErrRemoved after Remove, ErrClosed after
// Close, and an error wrapping net.ErrClosed if the conn was closed.
func (p *Poller) Resume(d *Desc) error {
	d.mu.Lock()
	defer d.mu.Unlock()
	if d.removed {
		return ErrRemoved
	}
	p.life.RLock()
	defer p.life.RUnlock()
	if p.closed {
		return ErrClosed
	}
	if err := p.ctl(d, unix.EPOLL_CTL_MOD); err != nil {
		return fmt.Errorf("poll: resume: %w", err)
	}
	return nil
}

// Remove deregisters d and lets go of its conn. It is idempotent and may be called from d's own
// callback. After Remove returns no new event is delivered to d: one already handed to a worker
// and past its check (at most one, the socket being one-shot) may still run, so a callback must
// tolerate a conn that another goroutine removed and closed (its reads then fail with
// net.ErrClosed).
//
// Contract: call Remove before closing the conn. Remove deregisters through the conn itself
// (RawConn.Control), which holds the fd open during the call, so it never touches a descriptor
// number that was closed and reused by another socket; if the conn is already closed, the
// kernel has already dropped the registration and Remove only forgets d. Events that the kernel
// reported for an old registration carry its id, not its fd number, so they can never reach a
// newer Desc on a reused fd.
func (p *Poller) Remove(d *Desc) error {
	d.mu.Lock()
	defer d.mu.Unlock()
	if d.removed {
		return nil
	}
	d.removed = true
	p.forget(d)
	// Let go of the conn and of whatever the callback holds once deregistered.
	defer func() { d.fd, d.onEvent = nil, nil }()
	p.life.RLock()
	defer p.life.RUnlock()
	if p.closed {
		return nil
	}
	if err := p.ctl(d, unix.EPOLL_CTL_DEL); err != nil && !errors.Is(err, net.ErrClosed) {
		return fmt.Errorf("poll: remove: %w", err)
	}
	return nil
}

// Close stops the wait loop and the workers and waits for them, including callbacks that are
// running; events queued but not started are dropped. Registered conns are neither closed nor
// removed from the caller's point of view: Resume then returns ErrClosed and Remove nil. Close
// is idempotent; it must not be called from a callback.
func (p *Poller) Close() error {
	p.once.Do(func() {
		p.life.Lock()
		p.closed = true
		p.life.Unlock()
		close(p.done)
		var one [8]byte
		binary.NativeEndian.PutUint64(one[:], 1)
		for {
			_, err := unix.Write(p.wakefd, one[:])
			if err != unix.EINTR {
				break
			}
		}
		p.wg.Wait()
		p.mu.Lock()
		p.descs = nil
		p.mu.Unlock()
		p.err = errors.Join(p.wErr, unix.Close(p.epfd), unix.Close(p.wakefd))
	})
	return p.err
}

// ctl runs epoll_ctl on d's fd through Control, which keeps the fd from being closed for the
// duration. The caller holds p.life.RLock and has checked p.closed.
func (p *Poller) ctl(d *Desc, op int) error {
	ev := unix.EpollEvent{Events: d.events}
	setID(&ev, d.id)
	var opErr error
	if err := d.fd.Control(func(fd uintptr) { opErr = unix.EpollCtl(p.epfd, op, int(fd), &ev) }); err != nil {
		return err
	}
	return opErr
}

func (p *Poller) forget(d *Desc) {
	p.mu.Lock()
	delete(p.descs, d.id)
	p.mu.Unlock()
}

// wait is the wait loop: it only looks events up and queues them, never runs a callback.
func (p *Poller) wait() {
	defer p.wg.Done()
	events := make([]unix.EpollEvent, waitBatch)
	batch := make([]dispatch, 0, waitBatch)
	for {
		n, err := unix.EpollWait(p.epfd, events, -1)
		if err == unix.EINTR {
			continue
		}
		if err != nil {
			p.wErr = fmt.Errorf("poll: epoll_wait: %w", err)
			return
		}
		batch = batch[:0]
		p.mu.Lock()
		for i := range events[:n] {
			id := getID(&events[i])
			if id == wakeID {
				p.mu.Unlock()
				return // only Close writes the eventfd
			}
			// A missing id was removed after the kernel reported the event: drop it.
			if d := p.descs[id]; d != nil {
				batch = append(batch, dispatch{d, toEvent(events[i].Events)})
			}
		}
		p.mu.Unlock()
		for _, it := range batch {
			select {
			case p.queue <- it:
			case <-p.done:
				return
			}
			if testHookQueued != nil {
				testHookQueued(it.d)
			}
		}
		clear(batch) // do not keep removed Descs reachable from here
	}
}

func (p *Poller) work() {
	defer p.wg.Done()
	for {
		select {
		case <-p.done:
			return
		case it := <-p.queue:
			select {
			case <-p.done:
				return
			default:
			}
			it.d.mu.Lock()
			removed, onEvent := it.d.removed, it.d.onEvent
			it.d.mu.Unlock()
			if !removed {
				onEvent(it.ev)
			}
		}
	}
}

func toEvent(e uint32) Event {
	var ev Event
	if e&unix.EPOLLIN != 0 {
		ev |= Readable
	}
	if e&(unix.EPOLLRDHUP|unix.EPOLLHUP|unix.EPOLLERR) != 0 {
		ev |= Hangup
	}
	if e&unix.EPOLLOUT != 0 {
		ev |= Writable
	}
	return ev
}

// setID and getID keep a Desc id in the 64-bit epoll_data union, which x/sys/unix spells as
// the Fd and Pad fields on every Linux architecture.
func setID(ev *unix.EpollEvent, id uint64) {
	ev.Fd = int32(uint32(id))
	ev.Pad = int32(uint32(id >> 32))
}

func getID(ev *unix.EpollEvent) uint64 {
	return uint64(uint32(ev.Fd)) | uint64(uint32(ev.Pad))<<32
}
