//go:build linux

package poll_test

import (
	"net"
	"sync"
	"testing"

	"github.com/presenced/presenced/server/poll"
)

// BenchmarkRoundTrip measures one event round trip over loopback TCP: the client writes a byte,
// the server side is told it is readable, reads it, writes it back and re-arms, and the client
// reads the echo. "goroutine" is the same echo with a goroutine blocked in Read, the shape the
// poller replaces. The parallel variants run one connection per benchmark goroutine.
func BenchmarkRoundTrip(b *testing.B) {
	b.Run("poller", func(b *testing.B) {
		p := newPoller(b, 0)
		ln := listen(b)
		pr := dial(b, ln)
		pollEcho(b, p, pr.server)
		roundTrips(b, pr.client)
	})
	b.Run("goroutine", func(b *testing.B) {
		ln := listen(b)
		pr := dial(b, ln)
		goEcho(b, pr.server)
		roundTrips(b, pr.client)
	})
	b.Run("poller-parallel", func(b *testing.B) {
		p := newPoller(b, 0)
		ln := listen(b)
		var mu sync.Mutex
		b.RunParallel(func(pb *testing.PB) {
			mu.Lock()
			pr := dial(b, ln)
			pollEcho(b, p, pr.server)
			mu.Unlock()
			buf := make([]byte, 1)
			for pb.Next() {
				roundTrip(b, pr.client, buf)
			}
		})
	})
	b.Run("goroutine-parallel", func(b *testing.B) {
		ln := listen(b)
		var mu sync.Mutex
		b.RunParallel(func(pb *testing.PB) {
			mu.Lock()
			pr := dial(b, ln)
			goEcho(b, pr.server)
			mu.Unlock()
			buf := make([]byte, 1)
			for pb.Next() {
				roundTrip(b, pr.client, buf)
			}
		})
	})
}

func roundTrips(b *testing.B, c net.Conn) {
	buf := make([]byte, 1)
	b.ResetTimer()
	for b.Loop() {
		roundTrip(b, c, buf)
	}
}

func roundTrip(b *testing.B, c net.Conn, buf []byte) {
	if _, err := c.Write(buf); err != nil {
		b.Error(err)
		return
	}
	if _, err := c.Read(buf); err != nil {
		b.Error(err)
	}
}

// pollEcho echoes through the poller; it is removed by a cleanup before the conn closes.
func pollEcho(b *testing.B, p *poll.Poller, nc net.Conn) {
	var mu sync.Mutex
	var d *poll.Desc
	buf := make([]byte, 64)
	mu.Lock()
	defer mu.Unlock()
	d, err := p.Add(nc, func(ev poll.Event) {
		mu.Lock()
		defer mu.Unlock()
		n, err := nc.Read(buf)
		if err != nil {
			return // hung up: the cleanup removes d
		}
		if _, err := nc.Write(buf[:n]); err != nil {
			return
		}
		_ = p.Resume(d)
	})
	if err != nil {
		b.Fatal(err)
	}
	b.Cleanup(func() { _ = p.Remove(d) })
}

// goEcho echoes with a goroutine per conn, joined by a cleanup after the conn closes.
func goEcho(b *testing.B, nc net.Conn) {
	done := make(chan struct{})
	go func() {
		defer close(done)
		buf := make([]byte, 64)
		for {
			n, err := nc.Read(buf)
			if err != nil {
				return
			}
			if _, err := nc.Write(buf[:n]); err != nil {
				return
			}
		}
	}()
	b.Cleanup(func() { nc.Close(); <-done })
}
