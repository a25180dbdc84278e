package main

import (
	"fmt"
	"io"
	"net/http"
	"strings"
	"time"
)

// defaultHealthURL is the liveness endpoint of the internal listener at its default address.
const defaultHealthURL = "http://127.0.0.1:9090/healthz"

// healthcheck is `presenced healthcheck [URL]`: the container health check. The image is
// distroless (no shell, no curl), so the binary probes itself: GET URL, nil on 200 OK.
func healthcheck(args []string) error {
	url := defaultHealthURL
	switch len(args) {
	case 0:
	case 1:
		url = args[0]
	default:
		return fmt.Errorf("usage: presenced healthcheck [URL] (default %s)", defaultHealthURL)
	}
	c := &http.Client{Timeout: 3 * time.Second}
	resp, err := c.Get(url)
	if err != nil {
		return fmt.Errorf("healthcheck: %w", err)
	}
	defer func() { _ = resp.Body.Close() }()
	body, _ := io.ReadAll(io.LimitReader(resp.Body, 512))
	if resp.StatusCode != http.StatusOK {
		return fmt.Errorf("healthcheck: GET %s: %s: %s", url, resp.Status, strings.TrimSpace(string(body)))
	}
	return nil
}
