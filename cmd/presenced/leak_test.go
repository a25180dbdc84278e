package main

import (
	"os"
	"testing"

	"go.uber.org/goleak"

	"github.com/presenced/presenced/testkit"
	"github.com/presenced/presenced/testkit/leak"
)

// Every goroutine a test starts (the node's, the internal server's, a process's log reader)
// must have ended when the tests do. The binary TestProcess builds is removed afterwards.
func TestMain(m *testing.M) {
	goleak.VerifyTestMain(m, append(leak.Options(), goleak.Cleanup(func(code int) {
		testkit.RemoveBuild()
		os.Exit(code)
	}))...)
}
