package github_test

import (
	"context"
	"errors"
	"net/http"
	"strings"
	"testing"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/testutil"

	"github.com/presenced/presenced/github"
	"github.com/presenced/presenced/metrics"
)

// TestMetricsCountCalls: every request sent counts once by endpoint and status, a page per
// call; calls refused locally (rate limited, malformed token) send nothing and count nothing.
func TestMetricsCountCalls(t *testing.T) {
	f, c, _ := setup(t)
	follow(f, 250) // three pages
	reg := prometheus.NewRegistry()
	c.Metrics = metrics.New(reg)
	ctx := context.Background()
	if _, err := c.User(ctx, secret); err != nil {
		t.Fatal(err)
	}
	if _, err := c.User(ctx, "ghp_nobody"); !errors.Is(err, github.ErrUnauthorized) {
		t.Fatalf("unknown token: %v", err)
	}
	if _, err := c.User(ctx, "bad token"); !errors.Is(err, github.ErrUnauthorized) {
		t.Fatalf("malformed token: %v", err)
	}
	pages, _, err := c.Following(ctx, secret, nil)
	if err != nil {
		t.Fatal(err)
	}
	if _, _, err := c.Following(ctx, secret, pages); err != nil { // revalidated: three 304s
		t.Fatal(err)
	}
	f.FailNext(1, http.StatusBadGateway, 0)
	if _, err := c.User(ctx, secret); err == nil {
		t.Fatal("a 502 was not an error")
	}
	want := `
# HELP presenced_github_api_calls_total GitHub REST calls, by endpoint and HTTP status (error: no answer).
# TYPE presenced_github_api_calls_total counter
presenced_github_api_calls_total{endpoint="following",status="200"} 3
presenced_github_api_calls_total{endpoint="following",status="304"} 3
presenced_github_api_calls_total{endpoint="following",status="401"} 0
presenced_github_api_calls_total{endpoint="following",status="403"} 0
presenced_github_api_calls_total{endpoint="following",status="429"} 0
presenced_github_api_calls_total{endpoint="following",status="error"} 0
presenced_github_api_calls_total{endpoint="user",status="200"} 1
presenced_github_api_calls_total{endpoint="user",status="304"} 0
presenced_github_api_calls_total{endpoint="user",status="401"} 1
presenced_github_api_calls_total{endpoint="user",status="403"} 0
presenced_github_api_calls_total{endpoint="user",status="429"} 0
presenced_github_api_calls_total{endpoint="user",status="502"} 1
presenced_github_api_calls_total{endpoint="user",status="error"} 0
`
	if err := testutil.GatherAndCompare(reg, strings.NewReader(want), "presenced_github_api_calls_total"); err != nil {
		t.Fatal(err)
	}
}
