package main

import (
	"net"
	"net/http"
	"net/http/httptest"
	"strings"
	"sync/atomic"
	"testing"
)

// TestHealthcheck: `presenced healthcheck URL` succeeds on 200 only, and says why otherwise.
func TestHealthcheck(t *testing.T) {
	var status atomic.Int64 // set here, read by the server's goroutine
	status.Store(http.StatusOK)
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if r.URL.Path != "/healthz" {
			http.NotFound(w, r)
			return
		}
		w.WriteHeader(int(status.Load()))
	}))
	defer srv.Close()
	if err := run([]string{"healthcheck", srv.URL + "/healthz"}); err != nil {
		t.Fatalf("200: %v", err)
	}
	status.Store(http.StatusServiceUnavailable)
	if err := run([]string{"healthcheck", srv.URL + "/healthz"}); err == nil || !strings.Contains(err.Error(), "503") {
		t.Fatalf("503: err = %v", err)
	}
	// Nothing listening: a free port, closed again.
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	addr := ln.Addr().String()
	_ = ln.Close()
	if err := healthcheck([]string{"http://" + addr + "/healthz"}); err == nil || !strings.Contains(err.Error(), "healthcheck:") {
		t.Fatalf("nothing listening: err = %v", err)
	}
	if err := healthcheck([]string{"a", "b"}); err == nil || !strings.Contains(err.Error(), "usage") {
		t.Fatalf("two arguments: err = %v", err)
	}
	if defaultHealthURL != "http://"+defaultInternalListen()+"/healthz" {
		t.Errorf("the default URL %s is not the default internal listener's /healthz", defaultHealthURL)
	}
}

// defaultInternalListen is --internal-listen's default.
func defaultInternalListen() string {
	var o options
	return newFlagSet(&o).Lookup("internal-listen").DefValue
}
