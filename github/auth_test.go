package github_test

import (
	"context"
	"errors"
	"net/http"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/presenced/presenced/auth"
	"github.com/presenced/presenced/github"
)

var alice = auth.Identity{ID: "1", Login: "alice"}

const ttl = time.Minute

func newAuth(t *testing.T) (*github.Authenticator, *clock, func() int) {
	t.Helper()
	f, c, clk := setup(t)
	a := github.NewAuthenticator(c, github.AuthConfig{TTL: ttl})
	userRequests := func() int { return f.Requests().User }
	t.Cleanup(func() {
		if t.Failed() {
			t.Logf("fake github: %+v", f.Requests())
		}
	})
	return a, clk, userRequests
}

func authenticate(t *testing.T, a *github.Authenticator, token string, want auth.Identity) {
	t.Helper()
	id, err := a.Authenticate(context.Background(), token)
	if err != nil {
		t.Fatal(err)
	}
	if id != want {
		t.Fatalf("got %+v, want %+v", id, want)
	}
}

func TestAuthenticateCaches(t *testing.T) {
	a, _, requests := newAuth(t)
	authenticate(t, a, secret, alice)
	authenticate(t, a, secret, alice)
	if n := requests(); n != 1 {
		t.Fatalf("%d GET /user, want 1", n)
	}
	if s := a.Stats(); s.Hits != 1 || s.Misses != 1 || s.Verified != 1 {
		t.Fatalf("stats %+v", s)
	}
}

func TestAuthenticateTTLReverifiesAndShowsRename(t *testing.T) {
	f, c, clk := setup(t)
	a := github.NewAuthenticator(c, github.AuthConfig{TTL: ttl})
	authenticate(t, a, secret, alice)
	f.Rename(1, "alice2")
	clk.Advance(ttl - time.Second)
	authenticate(t, a, secret, alice) // still cached: the old login
	clk.Advance(time.Second)
	authenticate(t, a, secret, auth.Identity{ID: "1", Login: "alice2"})
	if n := f.Requests().User; n != 2 {
		t.Fatalf("%d GET /user, want 2", n)
	}
}

func TestRevokeRefusesAtOnce(t *testing.T) {
	a, clk, requests := newAuth(t)
	authenticate(t, a, secret, alice)
	a.Revoke(secret)
	_, err := a.Authenticate(context.Background(), secret)
	if !errors.Is(err, auth.ErrUnauthorized) {
		t.Fatalf("after Revoke: %v, want ErrUnauthorized", err)
	}
	if n := requests(); n != 1 {
		t.Fatalf("%d GET /user, want 1: a revoked token is refused without asking", n)
	}
	if s := a.Stats(); s.Revoked != 1 || s.Verified != 0 || s.Refused != 1 {
		t.Fatalf("stats %+v", s)
	}
	// After TTL GitHub is asked again (the fake still accepts the token).
	clk.Advance(ttl)
	authenticate(t, a, secret, alice)
	if n := requests(); n != 2 {
		t.Fatalf("%d GET /user, want 2", n)
	}
}

func TestAuthenticate401IsRemembered(t *testing.T) {
	f, c, _ := setup(t)
	a := github.NewAuthenticator(c, github.AuthConfig{TTL: ttl})
	f.RevokeToken(secret)
	for range 3 {
		_, err := a.Authenticate(context.Background(), secret)
		if !errors.Is(err, auth.ErrUnauthorized) || !errors.Is(err, github.ErrUnauthorized) {
			t.Fatalf("%v, want ErrUnauthorized", err)
		}
	}
	if n := f.Requests().User; n != 1 {
		t.Fatalf("%d GET /user, want 1", n)
	}
	if _, err := a.Authenticate(context.Background(), ""); !errors.Is(err, auth.ErrUnauthorized) {
		t.Fatalf("empty token: %v", err)
	}
	if n := f.Requests().All; n != 1 {
		t.Fatalf("%d requests, want 1: an empty token is refused without asking", n)
	}
}

// A rate limit or a server error says nothing about the token: it is not Unauthorized and is
// not remembered.
func TestAuthenticateTransientErrors(t *testing.T) {
	f, c, clk := setup(t)
	a := github.NewAuthenticator(c, github.AuthConfig{TTL: ttl})
	f.FailNext(1, http.StatusBadGateway, 0)
	_, err := a.Authenticate(context.Background(), secret)
	var se *github.StatusError
	if !errors.As(err, &se) || se.Status != http.StatusBadGateway || errors.Is(err, auth.ErrUnauthorized) {
		t.Fatalf("502: %v, want a StatusError that is not ErrUnauthorized", err)
	}
	authenticate(t, a, secret, alice)

	a2 := github.NewAuthenticator(c, github.AuthConfig{TTL: ttl})
	f.FailNext(1, http.StatusTooManyRequests, 10*time.Second)
	_, err = a2.Authenticate(context.Background(), secret)
	var rl *github.RateLimitError
	if !errors.As(err, &rl) || errors.Is(err, auth.ErrUnauthorized) {
		t.Fatalf("429: %v, want a RateLimitError", err)
	}
	clk.Advance(10 * time.Second)
	authenticate(t, a2, secret, alice)
}

func TestAuthenticateConcurrentCallsShareOneRequest(t *testing.T) {
	f, c, _ := setup(t)
	a := github.NewAuthenticator(c, github.AuthConfig{TTL: ttl})
	arrived, release := make(chan struct{}, 1), make(chan struct{})
	f.OnRequest(func(*http.Request) {
		arrived <- struct{}{}
		<-release
	})
	joined := make(chan struct{}, 8)
	github.SetJoinHook(a, func() { joined <- struct{}{} })

	const n = 5
	var wg sync.WaitGroup
	ids := make([]auth.Identity, n)
	errs := make([]error, n)
	wg.Go(func() { ids[0], errs[0] = a.Authenticate(context.Background(), secret) })
	<-arrived // the first call's request is held in the fake
	for i := 1; i < n; i++ {
		wg.Go(func() { ids[i], errs[i] = a.Authenticate(context.Background(), secret) })
	}
	for range n - 1 {
		<-joined
	}
	close(release)
	wg.Wait()
	for i := range n {
		if errs[i] != nil || ids[i] != alice {
			t.Fatalf("call %d: %+v, %v", i, ids[i], errs[i])
		}
	}
	if got := f.Requests().User; got != 1 {
		t.Fatalf("%d GET /user, want 1", got)
	}
}

// When the caller that asked GitHub gives up, those waiting with it ask again rather than
// inherit its cancellation.
func TestAuthenticateWaiterOutlivesCancelledCaller(t *testing.T) {
	f, c, _ := setup(t)
	a := github.NewAuthenticator(c, github.AuthConfig{TTL: ttl})
	arrived := make(chan struct{}, 2)
	var mu sync.Mutex
	first := true
	f.OnRequest(func(r *http.Request) {
		mu.Lock()
		hold := first
		first = false
		mu.Unlock()
		arrived <- struct{}{}
		if hold {
			<-r.Context().Done() // held until its caller gives up
		}
	})
	joined := make(chan struct{}, 1)
	github.SetJoinHook(a, func() { joined <- struct{}{} })

	ctx, cancel := context.WithCancel(context.Background())
	leaderErr := make(chan error, 1)
	go func() {
		_, err := a.Authenticate(ctx, secret)
		leaderErr <- err
	}()
	<-arrived
	waiter := make(chan error, 1)
	go func() {
		id, err := a.Authenticate(context.Background(), secret)
		if err == nil && id != alice {
			err = errors.New("wrong identity " + id.Login)
		}
		waiter <- err
	}()
	<-joined
	cancel()
	if err := <-leaderErr; !errors.Is(err, context.Canceled) {
		t.Fatalf("cancelled caller: %v", err)
	}
	if err := <-waiter; err != nil {
		t.Fatalf("waiting caller: %v", err)
	}
}

func TestAuthenticateBounded(t *testing.T) {
	f, c, _ := setup(t)
	tokens := []string{"t1", "t2", "t3"}
	for i, tok := range tokens {
		f.AddUser(int64(10+i), "user"+tok, tok)
	}
	a := github.NewAuthenticator(c, github.AuthConfig{TTL: ttl, MaxEntries: 2})
	for _, tok := range tokens {
		if _, err := a.Authenticate(context.Background(), tok); err != nil {
			t.Fatal(err)
		}
		a.Revoke("revoked-" + tok)
	}
	if s := a.Stats(); s.Verified != 2 || s.Refused != 2 {
		t.Fatalf("stats %+v, want 2 entries in each cache", s)
	}
}

func TestAuthenticateErrorsHideToken(t *testing.T) {
	f, c, _ := setup(t)
	a := github.NewAuthenticator(c, github.AuthConfig{TTL: ttl})
	var errs []error
	for _, status := range []int{500, 403} {
		f.FailNext(1, status, 0)
		_, err := a.Authenticate(context.Background(), secret)
		errs = append(errs, err)
	}
	f.RevokeToken(secret)
	for range 2 {
		_, err := a.Authenticate(context.Background(), secret)
		errs = append(errs, err)
	}
	for i, err := range errs {
		if err == nil || strings.Contains(err.Error(), secret) {
			t.Fatalf("call %d: %v", i, err)
		}
	}
}
