package main

import (
	"fmt"
	"os"
	"testing"

	"go.uber.org/goleak"

	"github.com/presenced/presenced/testkit"
	"github.com/presenced/presenced/testkit/leak"
)

// Every goroutine a test starts (the node's, the internal server's, a process's log reader)
// must have ended when the tests do. The binary TestProcess builds is removed afterwards.
func TestMain(m *testing.M) {
	code := m.Run()
	testkit.RemoveBuild()
	if code == 0 {
		if err := goleak.Find(leak.Options()...); err != nil {
			fmt.Fprintln(os.Stderr, "goleak:", err)
			code = 1
		}
	}
	os.Exit(code)
}
