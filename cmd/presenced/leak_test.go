package main

import (
	"testing"

	"go.uber.org/goleak"

	"github.com/presenced/presenced/testkit/leak"
)

// Every goroutine a test starts (the node's, the internal server's, a process's log reader)
// must have ended when the tests do.
func TestMain(m *testing.M) { goleak.VerifyTestMain(m, leak.Options()...) }
