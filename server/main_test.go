package server_test

import (
	"fmt"
	"os"
	"testing"

	"go.uber.org/goleak"

	"github.com/presenced/presenced/testkit"
	"github.com/presenced/presenced/testkit/leak"
)

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
