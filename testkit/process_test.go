package testkit

import (
	"testing"
)

// TestProcessExitSaysWhy: a process that ends before it listens is reported with its exit
// status and what it printed that is not a log line (here a shell stands in for a presenced
// that panics at start).
func TestProcessExitSaysWhy(t *testing.T) {
	_, err := StartProcessE(t, "/bin/sh", "-c", `echo '{"msg":"a log line"}' >&2; echo 'panic: boom' >&2; echo '	main.go:1' >&2; exit 2`)
	want := "testkit: presenced exited before listening: exit status 2; its last output that is not a log line:\npanic: boom\n\tmain.go:1"
	if err == nil || err.Error() != want {
		t.Fatalf("got %v\nwant %s", err, want)
	}
}
