//go:build linux

package poll

import (
	"net"
	"testing"
	"time"
)

// An event already queued for a worker when Remove is called must be dropped: the only event
// that may still run after Remove is one a worker has already started.
func TestRemoveDropsQueuedEvent(t *testing.T) {
	queued := make(chan *Desc, 8)
	testHookQueued = func(d *Desc) { queued <- d }
	defer func() { testHookQueued = nil }()
	p, err := New(1)
	if err != nil {
		t.Fatal(err)
	}
	defer p.Close()
	ln, err := net.ListenTCP("tcp", &net.TCPAddr{IP: net.IPv4(127, 0, 0, 1)})
	if err != nil {
		t.Fatal(err)
	}
	defer ln.Close()
	a, b, c := dialPair(t, ln), dialPair(t, ln), dialPair(t, ln)

	aStarted, release := make(chan struct{}), make(chan struct{})
	bRan, cRan := make(chan struct{}, 1), make(chan struct{})
	da, err := p.Add(a[1], func(Event) { close(aStarted); <-release })
	if err != nil {
		t.Fatal(err)
	}
	db, err := p.Add(b[1], func(Event) { bRan <- struct{}{} })
	if err != nil {
		t.Fatal(err)
	}
	if _, err := p.Add(c[1], func(Event) { close(cRan) }); err != nil {
		t.Fatal(err)
	}

	a[0].Write([]byte("a"))
	<-aStarted // the only worker is busy with a
	b[0].Write([]byte("b"))
	for d := range queued {
		if d == db {
			break // b's event sits in the queue behind a's callback
		}
	}
	if err := p.Remove(db); err != nil {
		t.Fatal(err)
	}
	c[0].Write([]byte("c")) // queued after b's: once c ran, the worker has passed b's event
	close(release)
	select {
	case <-cRan:
	case <-time.After(10 * time.Second):
		t.Fatal("c's event never ran")
	}
	select {
	case <-bRan:
		t.Fatal("b's queued event ran after Remove")
	default:
	}
	_ = p.Remove(da)
}

// dialPair returns the client and server ends of one loopback connection; a test's defer closes
// them.
func dialPair(t *testing.T, ln *net.TCPListener) [2]*net.TCPConn {
	t.Helper()
	cl, err := net.DialTCP("tcp", nil, ln.Addr().(*net.TCPAddr))
	if err != nil {
		t.Fatal(err)
	}
	sv, err := ln.AcceptTCP()
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { cl.Close(); sv.Close() })
	return [2]*net.TCPConn{cl, sv}
}
