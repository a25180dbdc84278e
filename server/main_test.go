package server_test

import (
	"testing"

	"github.com/presenced/presenced/testkit"
)

func TestMain(m *testing.M) { testkit.VerifyTestMain(m) }
