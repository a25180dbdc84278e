//go:build !linux

package poll

import (
	"errors"
	"net"
)

// Poller needs epoll: on other systems New fails with errors.ErrUnsupported and a server keeps
// its goroutine per connection.
type Poller struct{}

// Desc is one registered socket.
type Desc struct{}

// New fails: epoll is Linux only.
func New(workers int) (*Poller, error) { return nil, errors.ErrUnsupported }

func (p *Poller) Add(c net.Conn, onEvent func(Event)) (*Desc, error) {
	return nil, errors.ErrUnsupported
}
func (p *Poller) AddFD(fd FD, want Event, onEvent func(Event)) (*Desc, error) {
	return nil, errors.ErrUnsupported
}
func (p *Poller) Resume(d *Desc) error { return errors.ErrUnsupported }
func (p *Poller) Remove(d *Desc) error { return errors.ErrUnsupported }
func (p *Poller) Close() error         { return nil }
