package main

import (
	"errors"
	"flag"
	"fmt"
	"io"
	"net"
	"slices"
	"time"
)

// loopbackCmd measures what one small frame costs the kernel's loopback TCP path on this
// machine: a write on one socket and the read of it on the other, from one goroutine, so no
// wake-up is counted. Every figure in docs/benchmarks.md rests on that cost, and it differs
// several times between machines of one kind (9.5 µs on some, 2 µs on others), so results
// from two machines compare only with this figure beside them.
func loopbackCmd(args []string, stdout, stderr io.Writer) error {
	fs := flag.NewFlagSet("presence-load loopback", flag.ContinueOnError)
	fs.SetOutput(stderr)
	size := fs.Int("size", 64, "bytes per write (a status frame is about 80 to 150)")
	count := fs.Int("count", 100000, "writes per round")
	rounds := fs.Int("rounds", 7, "rounds; the median round is reported")
	fs.Usage = func() {
		fmt.Fprintln(stderr, "usage: presence-load loopback [flags]\n\nTimes a small write on a loopback TCP socket and its read on the other end, the kernel path\nevery delivered frame takes, and prints the median of the rounds in µs per write+read.")
		fs.PrintDefaults()
	}
	if err := fs.Parse(args); err != nil {
		return err
	}
	if fs.NArg() > 0 {
		return fmt.Errorf("unexpected arguments %q", fs.Args())
	}
	if *size < 1 || *size > 1<<16 || *count < 1 || *rounds < 1 {
		return errors.New("--size must be 1 to 65536, --count and --rounds at least 1")
	}
	per, err := loopbackCost(*size, *count, *rounds)
	if err != nil {
		return err
	}
	fmt.Fprintf(stdout, "loopback write+read of %d bytes: median %.2f µs (min %.2f, max %.2f; %d rounds of %d)\n",
		*size, us(per[len(per)/2]), us(per[0]), us(per[len(per)-1]), *rounds, *count)
	return nil
}

// loopbackCost returns the time per write+read of each round, sorted.
func loopbackCost(size, count, rounds int) ([]time.Duration, error) {
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		return nil, fmt.Errorf("loopback: %w", err)
	}
	defer ln.Close()
	accepted := make(chan net.Conn, 1)
	go func() {
		c, err := ln.Accept()
		if err != nil {
			close(accepted)
			return
		}
		accepted <- c
	}()
	w, err := net.Dial("tcp", ln.Addr().String())
	if err != nil {
		return nil, fmt.Errorf("loopback: %w", err)
	}
	defer w.Close()
	r, ok := <-accepted
	if !ok {
		return nil, errors.New("loopback: accept failed")
	}
	defer r.Close()
	msg, buf := make([]byte, size), make([]byte, size)
	per := make([]time.Duration, 0, rounds)
	for range rounds {
		start := time.Now()
		for range count {
			if _, err := w.Write(msg); err != nil {
				return nil, fmt.Errorf("loopback: write: %w", err)
			}
			if _, err := io.ReadFull(r, buf); err != nil {
				return nil, fmt.Errorf("loopback: read: %w", err)
			}
		}
		per = append(per, time.Since(start)/time.Duration(count))
	}
	slices.Sort(per)
	return per, nil
}

func us(d time.Duration) float64 { return float64(d) / float64(time.Microsecond) }
