package poll_test

import (
	"testing"

	"go.uber.org/goleak"
)

// The poller runs no actors, so plain goleak: every wait loop and worker must be joined by Close.
func TestMain(m *testing.M) { goleak.VerifyTestMain(m) }
