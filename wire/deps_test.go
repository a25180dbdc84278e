package wire_test

import (
	"os/exec"
	"strings"
	"testing"
)

// TestStdlibOnly: package wire imports only the standard library (see the package comment).
func TestStdlibOnly(t *testing.T) {
	const self = "github.com/presenced/presenced/wire"
	out, err := exec.Command("go", "list", "-deps", "-f", "{{.ImportPath}} {{.Standard}}", ".").Output()
	if err != nil {
		msg := ""
		if ee, ok := err.(*exec.ExitError); ok {
			msg = string(ee.Stderr)
		}
		t.Fatalf("go list -deps: %v\n%s", err, msg)
	}
	sawSelf, n := false, 0
	for _, line := range strings.Split(strings.TrimSpace(string(out)), "\n") {
		path, standard, _ := strings.Cut(line, " ")
		if path == self {
			sawSelf = true
			continue
		}
		n++
		first, _, _ := strings.Cut(path, "/")
		if strings.Contains(first, ".") || standard != "true" {
			t.Errorf("package wire depends on %s, which is not in the standard library", path)
		}
	}
	if !sawSelf {
		t.Fatalf("go list -deps did not list %s itself:\n%s", self, out)
	}
	if n == 0 {
		t.Fatalf("go list -deps listed no dependencies:\n%s", out)
	}
}
