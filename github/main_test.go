package github_test

import (
	"testing"

	"go.uber.org/goleak"

	"github.com/presenced/presenced/testkit/leak"
)

func TestMain(m *testing.M) { goleak.VerifyTestMain(m, leak.Options()...) }
