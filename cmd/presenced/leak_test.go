package main

import (
	"testing"

	"github.com/presenced/presenced/testkit"
)

// Every goroutine a test starts (the node's, the internal server's, a process's log reader)
// must have ended when the tests do; the binary TestProcess builds is removed afterwards.
func TestMain(m *testing.M) { testkit.VerifyTestMain(m) }
