package main

import (
	"context"
	"crypto/rand"
	"encoding/hex"
	"errors"
	"fmt"
	"io"
	"time"

	"github.com/presenced/presenced/client"
	"github.com/presenced/presenced/wire"
)

const (
	defaultBackoff = time.Second
	maxBackoff     = 30 * time.Second
	// byeGrace is how long we wait for the server's close 1000 after bye before hanging up.
	byeGrace = 2 * time.Second
)

// session keeps one window of one user connected: it dials, says hello, feeds frames to
// onFrame, resumes after drops and resume-advised closes, and says bye when ctx ends.
type session struct {
	url, token, window string
	dial               client.Options
	stderr             io.Writer
	backoff            time.Duration // first reconnect delay; doubles up to maxBackoff

	// onWelcome runs after every successful hello, before any frame is read; it may send.
	onWelcome func(c *client.Conn, w wire.Welcome) error
	// onFrame runs for every server frame after the welcome (the sync included), on the
	// goroutine that reads the socket.
	onFrame func(f wire.Frame)

	resume  string // resume token from the latest welcome
	saidBye bool   // the session ended with a bye sent
}

// closedError is a close the protocol says not to recover from by reconnecting.
type closedError struct {
	close  *client.CloseError
	advice wire.Advice
}

func (e *closedError) Error() string {
	return fmt.Sprintf("server closed the connection: %s; advice: %s", describeClose(e.close.Code), e.advice)
}

func (e *closedError) Unwrap() error { return e.close }

// helloError is a hello the server refused (error frame, then close).
type helloError struct {
	err    *wire.Error
	advice wire.Advice
}

func (e *helloError) Error() string {
	return fmt.Sprintf("hello refused: %s: %s (close %d); advice: %s", e.err.Code, e.err.Msg, e.err.Close, e.advice)
}

func (e *helloError) Unwrap() error { return e.err }

// describeClose names a close code with the protocol's own words for it.
func describeClose(code int) string {
	for _, c := range wire.Codes {
		if c.Close == code {
			return fmt.Sprintf("%d (%s)", code, c.Doc)
		}
	}
	return fmt.Sprint(code)
}

// newWindowID makes a window id on our side: the welcome does not say which window the server
// chose, and we want to be able to print it.
func newWindowID() (string, error) {
	var b [8]byte
	if _, err := rand.Read(b[:]); err != nil {
		return "", fmt.Errorf("window id: %w", err)
	}
	return "w-" + hex.EncodeToString(b[:]), nil
}

// run returns nil when ctx ends (after bye), or the error that ended the session for good.
func (s *session) run(ctx context.Context) error {
	base := s.backoff
	if base <= 0 {
		base = defaultBackoff
	}
	var wait time.Duration
	for first := true; ; first = false {
		if wait > 0 && !sleep(ctx, wait) {
			return nil
		}
		c, w, sync, err := s.connect(ctx)
		if err != nil && ctx.Err() != nil {
			return nil
		}
		if err != nil {
			var he *helloError
			switch {
			case first:
				// A first failure is most likely a wrong --url or --token: say so at once.
				return err
			case errors.As(err, &he) && he.advice == wire.AdviceHello:
				fmt.Fprintf(s.stderr, "%v: saying hello as a new window\n", err)
				s.resume, wait = "", 0
				continue
			case errors.As(err, &he) && he.advice != wire.AdviceResume:
				return err
			}
			wait = min(max(2*wait, base), maxBackoff)
			fmt.Fprintf(s.stderr, "reconnect failed: %v; next try in %v\n", err, wait)
			continue
		}
		if w.Resumed {
			fmt.Fprintf(s.stderr, "resumed window %s\n", s.window)
		}
		connected := time.Now()
		err = s.serve(ctx, c, w, sync)
		if err == nil || ctx.Err() != nil {
			// An error while stopping (the hello raced with ctx) is not worth a reconnect.
			return nil
		}
		var ce *client.CloseError
		if errors.As(err, &ce) {
			advice := ce.Advice()
			if advice != wire.AdviceResume {
				return &closedError{close: ce, advice: advice}
			}
			fmt.Fprintf(s.stderr, "server closed the connection: %s; advice: %s\n", describeClose(ce.Code), advice)
		} else {
			// A drop without a close frame is what the resume window exists for.
			fmt.Fprintf(s.stderr, "connection lost: %v\n", err)
		}
		// Only a connection that lasted starts the back-off over: a server that welcomes and
		// then closes at once (a failing sync is closed 1011) must not be hammered every second.
		if time.Since(connected) > maxBackoff {
			wait = 0
		}
		wait = min(max(2*wait, base), maxBackoff)
		fmt.Fprintf(s.stderr, "resuming in %v\n", wait)
	}
}

// sleep waits d or until ctx ends; it reports whether the full d passed.
func sleep(ctx context.Context, d time.Duration) bool {
	t := time.NewTimer(d)
	defer t.Stop()
	select {
	case <-t.C:
		return true
	case <-ctx.Done():
		return false
	}
}

// connect dials and says hello, resuming when we hold a token. It remembers the new token.
func (s *session) connect(ctx context.Context) (*client.Conn, wire.Welcome, wire.Sync, error) {
	c, err := client.Dial(ctx, s.url, s.dial)
	if err != nil {
		return nil, wire.Welcome{}, wire.Sync{}, fmt.Errorf("connect: %w", err)
	}
	// Hello reads with no deadline of its own: hang up if ctx ends meanwhile.
	stop := context.AfterFunc(ctx, func() { _ = c.Drop() })
	defer stop()
	w, sync, err := c.Hello(wire.Hello{Token: s.token, Window: s.window, Resume: s.resume})
	if err != nil {
		_ = c.Drop()
		var we *wire.Error
		if errors.As(err, &we) {
			return nil, wire.Welcome{}, wire.Sync{}, &helloError{err: we, advice: (&client.CloseError{Code: we.Close}).Advice()}
		}
		return nil, wire.Welcome{}, wire.Sync{}, fmt.Errorf("hello: %w", err)
	}
	s.resume = w.Resume
	return c, w, sync, nil
}

// serve runs one connection: nil when ctx ended and bye was said, else why it ended.
func (s *session) serve(ctx context.Context, c *client.Conn, w wire.Welcome, sync wire.Sync) error {
	if s.onWelcome != nil {
		if err := s.onWelcome(c, w); err != nil {
			_ = c.Drop()
			return err
		}
	}
	s.onFrame(sync)
	readErr := make(chan error, 1)
	go func() { readErr <- s.read(c) }()
	select {
	case err := <-readErr:
		_ = c.Drop()
		return err
	case <-ctx.Done():
	}
	// Say bye so followers see us leave now instead of after the resume window; then give the
	// server a moment to answer with its close 1000.
	if err := c.Send(wire.Bye{}); err == nil {
		s.saidBye = true
		t := time.NewTimer(byeGrace)
		defer t.Stop()
		select {
		case err := <-readErr:
			_ = c.Drop()
			var ce *client.CloseError
			if !errors.As(err, &ce) || ce.Code != wire.CloseNormal {
				fmt.Fprintf(s.stderr, "after bye: %v\n", err)
			}
			return nil
		case <-t.C:
		}
	}
	_ = c.Drop()
	<-readErr // the reader ends once the socket is closed
	return nil
}

// read hands frames to onFrame until the socket ends. Error frames go to stderr: the close
// that usually follows is reported by run.
func (s *session) read(c *client.Conn) error {
	for {
		f, _, err := c.Read()
		if err != nil {
			return err
		}
		if e, ok := f.(wire.ErrorFrame); ok {
			fmt.Fprintf(s.stderr, "server error %s: %s\n", e.Code, e.Msg)
			continue
		}
		s.onFrame(f)
	}
}
