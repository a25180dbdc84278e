package server_test

import (
	"os"
	"testing"

	"go.uber.org/goleak"

	"github.com/presenced/presenced/testkit"
	"github.com/presenced/presenced/testkit/leak"
)

// Every goroutine a test starts must have ended when the tests do. The presenced binary the
// process tests build is removed afterwards.
func TestMain(m *testing.M) {
	goleak.VerifyTestMain(m, append(leak.Options(), goleak.Cleanup(func(code int) {
		testkit.RemoveBuild()
		os.Exit(code)
	}))...)
}
