package wire

import (
	"os"
	"regexp"
	"strconv"
	"strings"
	"testing"
)

// TestProtocolDocListsEveryCode: docs/protocol.md's close-code table and the Codes table agree,
// row by row (close code, error code, advice).
func TestProtocolDocListsEveryCode(t *testing.T) {
	b, err := os.ReadFile("../docs/protocol.md")
	if err != nil {
		t.Fatal(err)
	}
	row := regexp.MustCompile("(?m)^\\| (\\d{4}) \\| ([^|]*)\\| (\\w+) \\|")
	documented := map[int]string{}
	for _, m := range row.FindAllStringSubmatch(string(b), -1) {
		code, _ := strconv.Atoi(m[1])
		documented[code] = strings.TrimSpace(m[3])
		if errs := strings.TrimSpace(m[2]); errs != "" {
			for _, c := range Codes {
				if c.Close == code && c.Error != "" && !strings.Contains(errs, "`"+c.Error+"`") {
					t.Errorf("docs: close %d does not list error code %q", code, c.Error)
				}
			}
		}
	}
	seen := map[int]bool{}
	for _, c := range Codes {
		seen[c.Close] = true
		adv, ok := documented[c.Close]
		if !ok {
			t.Errorf("docs/protocol.md does not list close code %d", c.Close)
			continue
		}
		if adv != string(c.Advice) {
			t.Errorf("docs: close %d says %q, wire.Codes says %q", c.Close, adv, c.Advice)
		}
	}
	for code := range documented {
		if !seen[code] {
			t.Errorf("docs/protocol.md lists close code %d that wire.Codes does not have", code)
		}
	}
}
