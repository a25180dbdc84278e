package github_test

import (
	"context"
	"errors"
	"fmt"
	"net/http"
	"net/http/httptest"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/presenced/presenced/auth"
	"github.com/presenced/presenced/github"
	"github.com/presenced/presenced/testkit"
)

// secret is the token of user 1 (alice); tests check it never shows in an error.
const secret = "ghp_s3cretTOKENvalue0123456789"

// clock is a settable clock for rate-limit waits and TTLs.
type clock struct {
	mu sync.Mutex
	t  time.Time
}

func (c *clock) Now() time.Time {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.t
}

func (c *clock) Advance(d time.Duration) {
	c.mu.Lock()
	defer c.mu.Unlock()
	c.t = c.t.Add(d)
}

// setup is a fake GitHub with alice (id 1, token secret) and a client on a settable clock that
// starts at the real time (the fake's rate-limit resets are in real time).
func setup(t *testing.T) (*testkit.FakeGitHub, *github.Client, *clock) {
	t.Helper()
	f := testkit.NewFakeGitHub(t)
	f.AddUser(1, "alice", secret)
	c := github.NewClient(f.URL(), nil)
	clk := &clock{t: time.Now()}
	github.SetNow(c, clk.Now)
	return f, c, clk
}

// follow makes alice follow n users with ids 1001… in order.
func follow(f *testkit.FakeGitHub, n int) []int64 {
	ids := make([]int64, n)
	for i := range ids {
		ids[i] = int64(1001 + i)
		f.AddUser(ids[i], "u"+strconv.Itoa(1001+i))
	}
	f.SetFollowing(1, ids...)
	return ids
}

func flatten(pages []github.Page) []github.User {
	var us []github.User
	for _, p := range pages {
		us = append(us, p.Users...)
	}
	return us
}

func requireUsers(t *testing.T, pages []github.Page, ids []int64) {
	t.Helper()
	us := flatten(pages)
	if len(us) != len(ids) {
		t.Fatalf("got %d users, want %d", len(us), len(ids))
	}
	for i, u := range us {
		if u.ID != ids[i] || u.Login != "u"+strconv.FormatInt(ids[i], 10) {
			t.Fatalf("user %d: got %+v, want id %d", i, u, ids[i])
		}
	}
}

func TestUser(t *testing.T) {
	_, c, _ := setup(t)
	u, err := c.User(context.Background(), secret)
	if err != nil {
		t.Fatal(err)
	}
	if u != (github.User{ID: 1, Login: "alice"}) {
		t.Fatalf("got %+v", u)
	}
}

func TestFollowingAllPagesInOrder(t *testing.T) {
	f, c, _ := setup(t)
	ids := follow(f, 250)
	pages, changed, err := c.Following(context.Background(), secret, nil)
	if err != nil {
		t.Fatal(err)
	}
	if !changed || len(pages) != 3 {
		t.Fatalf("changed %v, %d pages; want true, 3", changed, len(pages))
	}
	requireUsers(t, pages, ids)
	if s := f.Requests(); s.Following != 3 || s.NotModified != 0 {
		t.Fatalf("requests %+v: want 3 pages, no 304", s)
	}
	for i, p := range pages {
		if p.ETag == "" || p.URL == "" || (i < 2) != (p.Next != "") {
			t.Fatalf("page %d: %+v", i, p)
		}
	}
}

func TestFollowingNotModified(t *testing.T) {
	for _, linkOn304 := range []bool{true, false} {
		t.Run(fmt.Sprintf("link on 304 %v", linkOn304), func(t *testing.T) {
			f, c, _ := setup(t)
			f.SetLinkOn304(linkOn304)
			ids := follow(f, 250)
			first, _, err := c.Following(context.Background(), secret, nil)
			if err != nil {
				t.Fatal(err)
			}
			f.ResetStats()
			pages, changed, err := c.Following(context.Background(), secret, first)
			if err != nil {
				t.Fatal(err)
			}
			if changed {
				t.Fatal("changed = true for an unchanged list")
			}
			requireUsers(t, pages, ids)
			if s := f.Requests(); s.Following != 3 || s.NotModified != 3 || s.ByStatus[200] != 0 {
				t.Fatalf("requests %+v: want 3 pages, all 304", s)
			}
		})
	}
}

func TestFollowingChanged(t *testing.T) {
	f, c, _ := setup(t)
	ids := follow(f, 250)
	prev, _, err := c.Following(context.Background(), secret, nil)
	if err != nil {
		t.Fatal(err)
	}
	f.AddUser(2000, "u2000")
	f.Follow(1, 2000)
	pages, changed, err := c.Following(context.Background(), secret, prev)
	if err != nil {
		t.Fatal(err)
	}
	if !changed {
		t.Fatal("changed = false after a follow")
	}
	requireUsers(t, pages, append(ids, 2000))

	f.Unfollow(1, 1001)
	pages, changed, err = c.Following(context.Background(), secret, pages)
	if err != nil {
		t.Fatal(err)
	}
	if !changed {
		t.Fatal("changed = false after an unfollow")
	}
	requireUsers(t, pages, append(ids[1:], 2000))
}

func TestFollowingRenameShows(t *testing.T) {
	f, c, _ := setup(t)
	follow(f, 3)
	prev, _, err := c.Following(context.Background(), secret, nil)
	if err != nil {
		t.Fatal(err)
	}
	f.Rename(1002, "renamed")
	pages, changed, err := c.Following(context.Background(), secret, prev)
	if err != nil {
		t.Fatal(err)
	}
	if us := flatten(pages); !changed || us[1] != (github.User{ID: 1002, Login: "renamed"}) {
		t.Fatalf("changed %v, users %+v", changed, us)
	}
}

// A list of exactly 100 fills page 1 with no next link. When it grows to 101, page 1's body is
// the same, so it answers 304, perhaps without the link that now exists: the client still has
// to look at page 2.
func TestFollowingGrowsPastFullPage(t *testing.T) {
	for _, linkOn304 := range []bool{true, false} {
		t.Run(fmt.Sprintf("link on 304 %v", linkOn304), func(t *testing.T) {
			f, c, _ := setup(t)
			f.SetLinkOn304(linkOn304)
			ids := follow(f, 100)
			prev, _, err := c.Following(context.Background(), secret, nil)
			if err != nil {
				t.Fatal(err)
			}
			requireUsers(t, prev, ids)
			if s := f.Requests(); s.Following != 2 {
				t.Fatalf("first read made %d page requests, want 2 (the full page and the empty one after it)", s.Following)
			}
			f.ResetStats()
			same, changed, err := c.Following(context.Background(), secret, prev)
			if err != nil || changed {
				t.Fatalf("unchanged list: changed %v, err %v", changed, err)
			}
			if s := f.Requests(); s.NotModified != 2 || s.Following != 2 {
				t.Fatalf("unchanged list: %+v, want 2 pages both 304", s)
			}

			f.AddUser(3000, "u3000")
			f.Follow(1, 3000)
			f.ResetStats()
			pages, changed, err := c.Following(context.Background(), secret, same)
			if err != nil {
				t.Fatal(err)
			}
			if !changed {
				t.Fatal("changed = false after the list grew past 100")
			}
			requireUsers(t, pages, append(ids, 3000))
			if s := f.Requests(); s.NotModified != 1 {
				t.Fatalf("%+v: want page 1 answered 304", s)
			}
		})
	}
}

func TestFollowingNone(t *testing.T) {
	f, c, _ := setup(t)
	pages, changed, err := c.Following(context.Background(), secret, nil)
	if err != nil {
		t.Fatal(err)
	}
	if !changed || len(flatten(pages)) != 0 || f.Requests().Following != 1 {
		t.Fatalf("changed %v, pages %+v", changed, pages)
	}
	_, changed, err = c.Following(context.Background(), secret, pages)
	if err != nil || changed {
		t.Fatalf("second read: changed %v, err %v", changed, err)
	}
}

func TestFollowingServerErrorGivesNoPages(t *testing.T) {
	f, c, _ := setup(t)
	follow(f, 250)
	prev, _, err := c.Following(context.Background(), secret, nil)
	if err != nil {
		t.Fatal(err)
	}
	f.OnRequest(func(r *http.Request) {
		if r.URL.Query().Get("page") == "2" {
			f.FailNext(1, http.StatusBadGateway, 0)
		}
	})
	pages, changed, err := c.Following(context.Background(), secret, prev)
	var se *github.StatusError
	if !errors.As(err, &se) || se.Status != http.StatusBadGateway {
		t.Fatalf("err %v, want a 502 StatusError", err)
	}
	if pages != nil || changed {
		t.Fatalf("got %d pages, changed %v with an error", len(pages), changed)
	}
	if !strings.Contains(err.Error(), "502") || !strings.Contains(err.Error(), "page=2") {
		t.Fatalf("error %q does not name the status and page", err)
	}
}

func TestUnauthorized(t *testing.T) {
	f, c, _ := setup(t)
	f.RevokeToken(secret)
	_, err := c.User(context.Background(), secret)
	if !errors.Is(err, auth.ErrUnauthorized) || !errors.Is(err, github.ErrUnauthorized) {
		t.Fatalf("User: %v, want ErrUnauthorized", err)
	}
	_, _, err = c.Following(context.Background(), secret, nil)
	if !errors.Is(err, auth.ErrUnauthorized) {
		t.Fatalf("Following: %v, want ErrUnauthorized", err)
	}
	_, err = c.User(context.Background(), "two words")
	if !errors.Is(err, auth.ErrUnauthorized) || f.Requests().All != 2 {
		t.Fatalf("malformed token: %v after %d requests, want ErrUnauthorized without a request", err, f.Requests().All)
	}
}

func TestRateLimitWaitsForReset(t *testing.T) {
	f, c, clk := setup(t)
	follow(f, 3)
	reset := clk.Now().Add(time.Minute)
	f.SetRateLimit(secret, 0, reset)
	_, err := c.User(context.Background(), secret)
	var rl *github.RateLimitError
	if !errors.As(err, &rl) || !rl.Until.Equal(time.Unix(reset.Unix(), 0)) {
		t.Fatalf("err %v, want RateLimitError until %v", err, reset)
	}
	if f.Requests().All != 1 {
		t.Fatalf("%d requests, want 1", f.Requests().All)
	}

	// Before the reset, neither call touches the network.
	clk.Advance(30 * time.Second)
	if _, err := c.User(context.Background(), secret); !errors.As(err, &rl) {
		t.Fatalf("User before reset: %v", err)
	}
	if _, _, err := c.Following(context.Background(), secret, nil); !errors.As(err, &rl) {
		t.Fatalf("Following before reset: %v", err)
	}
	if n := f.Requests().All; n != 1 {
		t.Fatalf("%d requests before the reset, want still 1", n)
	}
	if github.TokenEntries(c) != 1 {
		t.Fatal("the rate-limited token's wait was forgotten")
	}

	// After it (GitHub's window reset too), calls go through.
	clk.Advance(time.Minute)
	f.SetRateLimit(secret, 5000, time.Now().Add(time.Hour))
	if _, err := c.User(context.Background(), secret); err != nil {
		t.Fatalf("after reset: %v", err)
	}
	if _, _, err := c.Following(context.Background(), secret, nil); err != nil {
		t.Fatalf("after reset: %v", err)
	}
	if n := github.TokenEntries(c); n != 0 {
		t.Fatalf("%d token entries kept after the calls ended, want 0", n)
	}
}

// An answer that succeeds but says no requests are left stops the next one before it is sent.
func TestRateLimitRemainingZeroOnSuccess(t *testing.T) {
	f, c, clk := setup(t)
	reset := clk.Now().Add(time.Hour)
	f.SetRateLimit(secret, 1, reset)
	if _, err := c.User(context.Background(), secret); err != nil {
		t.Fatal(err)
	}
	_, err := c.User(context.Background(), secret)
	var rl *github.RateLimitError
	if !errors.As(err, &rl) || !rl.Until.Equal(time.Unix(reset.Unix(), 0)) {
		t.Fatalf("err %v, want RateLimitError until the reset", err)
	}
	if n := f.Requests().All; n != 1 {
		t.Fatalf("%d requests, want 1", n)
	}
}

func TestRetryAfter(t *testing.T) {
	for _, status := range []int{http.StatusForbidden, http.StatusTooManyRequests} {
		t.Run(strconv.Itoa(status), func(t *testing.T) {
			f, c, clk := setup(t)
			f.FailNext(1, status, 30*time.Second)
			_, err := c.User(context.Background(), secret)
			var rl *github.RateLimitError
			if !errors.As(err, &rl) || !rl.Until.Equal(clk.Now().Add(30*time.Second)) {
				t.Fatalf("err %v, want RateLimitError 30 s from now", err)
			}
			clk.Advance(29 * time.Second)
			if _, err := c.User(context.Background(), secret); !errors.As(err, &rl) {
				t.Fatalf("before Retry-After: %v", err)
			}
			if n := f.Requests().All; n != 1 {
				t.Fatalf("%d requests, want 1", n)
			}
			clk.Advance(time.Second)
			if _, err := c.User(context.Background(), secret); err != nil {
				t.Fatalf("after Retry-After: %v", err)
			}
		})
	}
}

func TestPlainForbiddenIsNotRateLimit(t *testing.T) {
	f, c, _ := setup(t)
	f.FailNext(1, http.StatusForbidden, 0)
	_, err := c.User(context.Background(), secret)
	var se *github.StatusError
	var rl *github.RateLimitError
	if !errors.As(err, &se) || se.Status != http.StatusForbidden || errors.As(err, &rl) {
		t.Fatalf("err %v, want a 403 StatusError", err)
	}
	if _, err := c.User(context.Background(), secret); err != nil {
		t.Fatalf("next call: %v", err)
	}
}

func TestCallsWithOneTokenAreSerial(t *testing.T) {
	f, c, _ := setup(t)
	f.AddUser(2, "bob", "bob-token")
	follow(f, 150)
	f.SetDelay(5 * time.Millisecond) // widens the window in which calls would overlap
	var wg sync.WaitGroup
	errs := make(chan error, 16)
	for i := range 8 {
		wg.Go(func() {
			var err error
			if i%2 == 0 {
				_, err = c.User(context.Background(), secret)
			} else {
				_, _, err = c.Following(context.Background(), secret, nil)
			}
			errs <- err
		})
		wg.Go(func() {
			_, err := c.User(context.Background(), "bob-token")
			errs <- err
		})
	}
	wg.Wait()
	close(errs)
	for err := range errs {
		if err != nil {
			t.Fatal(err)
		}
	}
	if s := f.Requests(); s.MaxInFlightPerToken != 1 || s.All != 4+4*2+8 {
		t.Fatalf("%+v: want at most one request in flight per token, 20 in all", s)
	}
	if n := github.TokenEntries(c); n != 0 {
		t.Fatalf("%d token entries kept after the calls ended, want 0", n)
	}
}

func TestWaitForTokenHonoursContext(t *testing.T) {
	f, c, _ := setup(t)
	arrived, release := make(chan struct{}), make(chan struct{})
	f.OnRequest(func(*http.Request) {
		arrived <- struct{}{}
		<-release
	})
	done := make(chan error, 1)
	go func() {
		_, err := c.User(context.Background(), secret)
		done <- err
	}()
	<-arrived // the first call holds the token's lock
	ctx, cancel := context.WithCancel(context.Background())
	cancel()
	if _, err := c.User(ctx, secret); !errors.Is(err, context.Canceled) {
		t.Fatalf("waiting call: %v, want context.Canceled", err)
	}
	close(release)
	if err := <-done; err != nil {
		t.Fatalf("first call: %v", err)
	}
}

func TestNextLinkToAnotherHostRefused(t *testing.T) {
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		w.Header().Set("Link", `<https://elsewhere.example/user/following?page=2>; rel="next"`)
		_, _ = w.Write([]byte(`[{"id":5,"login":"e"}]`))
	}))
	t.Cleanup(srv.Close)
	c := github.NewClient(srv.URL, nil)
	pages, _, err := c.Following(context.Background(), secret, nil)
	if err == nil || pages != nil || !strings.Contains(err.Error(), "next link leaves") {
		t.Fatalf("pages %v, err %v: want the foreign link refused", pages, err)
	}
}

func TestBadJSON(t *testing.T) {
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		_, _ = w.Write([]byte(`{"id":`))
	}))
	t.Cleanup(srv.Close)
	c := github.NewClient(srv.URL, nil)
	if _, err := c.User(context.Background(), secret); err == nil || !strings.Contains(err.Error(), "decode") {
		t.Fatalf("err %v, want a decode error", err)
	}
	if _, _, err := c.Following(context.Background(), secret, nil); err == nil {
		t.Fatal("Following: no error for bad JSON")
	}
}

// Every kind of failure names the URL or status but never the token.
func TestTokenNeverInErrors(t *testing.T) {
	f, c, clk := setup(t)
	follow(f, 3)
	var errs []error
	call := func() {
		_, err := c.User(context.Background(), secret)
		errs = append(errs, err)
		_, _, err = c.Following(context.Background(), secret, nil)
		errs = append(errs, err)
	}
	for _, status := range []int{500, 502, 403, 404} {
		f.FailNext(2, status, 0)
		call()
	}
	f.FailNext(2, http.StatusTooManyRequests, time.Second)
	call()
	call() // refused before the network
	clk.Advance(time.Minute)

	f.SetDelay(time.Minute)
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Millisecond)
	_, err := c.User(ctx, secret)
	cancel()
	errs = append(errs, err)
	f.SetDelay(0)

	f.RevokeToken(secret)
	call()
	_, err = c.User(context.Background(), secret+"\n")
	errs = append(errs, err)
	for i, err := range errs {
		if err == nil {
			t.Fatalf("call %d: no error", i)
		}
		if strings.Contains(err.Error(), secret) || strings.Contains(fmt.Sprintf("%#v", err), secret) {
			t.Fatalf("call %d: error shows the token: %v", i, err)
		}
	}
}

// Tokens that waited out a rate limit are dropped once the table has grown, so memory stays
// bounded by the tokens in use.
func TestRateLimitedTokensAreSwept(t *testing.T) {
	f, c, clk := setup(t)
	const n = 100
	f.FailNext(n, http.StatusTooManyRequests, 10*time.Second)
	for i := range n {
		_, err := c.User(context.Background(), "tok-"+strconv.Itoa(i))
		var rl *github.RateLimitError
		if !errors.As(err, &rl) {
			t.Fatalf("token %d: %v", i, err)
		}
	}
	if got := github.TokenEntries(c); got != n {
		t.Fatalf("%d entries, want %d rate-limited tokens remembered", got, n)
	}
	clk.Advance(10 * time.Second)
	if _, err := c.User(context.Background(), secret); err != nil {
		t.Fatal(err)
	}
	if got := github.TokenEntries(c); got != n {
		t.Fatalf("%d entries, want %d: no sweep yet", got, n)
	}
	clk.Advance(time.Minute)
	if _, err := c.User(context.Background(), secret); err != nil {
		t.Fatal(err)
	}
	if got := github.TokenEntries(c); got != 0 {
		t.Fatalf("%d entries after the waits ended, want 0", got)
	}
}

// A secondary rate limit may come as a bare 403 whose message says so.
func TestSecondaryRateLimitWithoutHeaders(t *testing.T) {
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		w.WriteHeader(http.StatusForbidden)
		_, _ = w.Write([]byte(`{"message":"You have exceeded a secondary rate limit."}`))
	}))
	t.Cleanup(srv.Close)
	c := github.NewClient(srv.URL, nil)
	clk := &clock{t: time.Now()}
	github.SetNow(c, clk.Now)
	_, err := c.User(context.Background(), secret)
	var rl *github.RateLimitError
	if !errors.As(err, &rl) || !rl.Until.Equal(clk.Now().Add(time.Minute)) {
		t.Fatalf("err %v, want RateLimitError a minute from now", err)
	}
}
