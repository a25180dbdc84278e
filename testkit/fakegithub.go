package testkit

import (
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"fmt"
	"net"
	"net/http"
	"net/http/httptest"
	"slices"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"
)

// FakeGitHub is the part of the GitHub REST API presenced uses (GET /user, GET
// /user/following), served by httptest on a loopback port with GitHub's headers: pagination
// links, weak ETags with 304s that cost no rate limit, and x-ratelimit-* per token. It is safe
// for concurrent use; t.Cleanup closes it.
type FakeGitHub struct {
	srv *httptest.Server

	mu         sync.Mutex // guards everything below
	users      map[int64]*fakeUser
	tokens     map[string]int64 // token → user id
	limits     map[string]*fakeLimit
	failN      int
	failStatus int
	failRetry  time.Duration
	delay      time.Duration
	linkOn304  bool
	onRequest  func(*http.Request)
	stats      FakeGitHubStats
	inFlight   int
	perToken   map[string]int // requests in flight by token
}

type fakeUser struct {
	login     string
	following []int64
}

type fakeLimit struct {
	remaining int
	reset     time.Time
}

// FakeGitHubStats counts requests since start or ResetStats.
type FakeGitHubStats struct {
	All         int // every request, answered or not
	User        int // GET /user
	Following   int // GET /user/following pages, 304s included
	NotModified int // 304 answers
	ByStatus    map[int]int
	// MaxInFlight is the most requests handled at once; MaxInFlightPerToken the most at once
	// with any one token.
	MaxInFlight         int
	MaxInFlightPerToken int
}

const (
	fakeRateLimit = 5000
	fakeResetIn   = time.Hour
)

// NewFakeGitHub starts a fake GitHub API with no users on a free loopback port; t.Cleanup
// closes it.
func NewFakeGitHub(tb testing.TB) *FakeGitHub {
	tb.Helper()
	f := ServeFakeGitHub(nil)
	tb.Cleanup(f.Close)
	return f
}

// ServeFakeGitHub starts a fake GitHub API with no users on ln (nil: a free loopback port),
// outside any test: the load tool serves its graph with it. Close stops it.
func ServeFakeGitHub(ln net.Listener) *FakeGitHub {
	f := &FakeGitHub{
		users:     make(map[int64]*fakeUser),
		tokens:    make(map[string]int64),
		limits:    make(map[string]*fakeLimit),
		perToken:  make(map[string]int),
		linkOn304: true,
		stats:     FakeGitHubStats{ByStatus: make(map[int]int)},
	}
	// Assigned before Start, so handler goroutines read f.srv without a race.
	f.srv = httptest.NewUnstartedServer(http.HandlerFunc(f.serve))
	if ln != nil {
		_ = f.srv.Listener.Close()
		f.srv.Listener = ln
	}
	f.srv.Start()
	return f
}

// Close stops the server and waits for the requests in flight.
func (f *FakeGitHub) Close() { f.srv.Close() }

// URL is the API's base URL, as https://api.github.com is for the real one.
func (f *FakeGitHub) URL() string { return f.srv.URL }

// AddUser adds (or replaces the login of) a user and gives it tokens.
func (f *FakeGitHub) AddUser(id int64, login string, tokens ...string) {
	f.mu.Lock()
	defer f.mu.Unlock()
	if u := f.users[id]; u != nil {
		u.login = login
	} else {
		f.users[id] = &fakeUser{login: login}
	}
	for _, t := range tokens {
		f.tokens[t] = id
	}
}

// Rename changes a user's login; lists show the new one.
func (f *FakeGitHub) Rename(id int64, login string) {
	f.mu.Lock()
	defer f.mu.Unlock()
	if u := f.users[id]; u != nil {
		u.login = login
	}
}

// RevokeToken makes every later request with the token answer 401.
func (f *FakeGitHub) RevokeToken(token string) {
	f.mu.Lock()
	defer f.mu.Unlock()
	delete(f.tokens, token)
}

// SetFollowing replaces whom id follows, in this order. Ids with no user are left out of lists.
func (f *FakeGitHub) SetFollowing(id int64, ids ...int64) {
	f.mu.Lock()
	defer f.mu.Unlock()
	if u := f.users[id]; u != nil {
		u.following = slices.Clone(ids)
	}
}

// Follow appends target to whom id follows (nothing if already followed).
func (f *FakeGitHub) Follow(id, target int64) {
	f.mu.Lock()
	defer f.mu.Unlock()
	if u := f.users[id]; u != nil && !slices.Contains(u.following, target) {
		u.following = append(u.following, target)
	}
}

// Unfollow removes target from whom id follows.
func (f *FakeGitHub) Unfollow(id, target int64) {
	f.mu.Lock()
	defer f.mu.Unlock()
	if u := f.users[id]; u != nil {
		u.following = slices.DeleteFunc(u.following, func(x int64) bool { return x == target })
	}
}

// SetRateLimit sets what the token has left until reset. With remaining 0 every request but a
// 304 answers 403 with x-ratelimit-remaining: 0 until reset (real time) has passed; then the
// token has 5000 again.
func (f *FakeGitHub) SetRateLimit(token string, remaining int, reset time.Time) {
	f.mu.Lock()
	defer f.mu.Unlock()
	f.limits[token] = &fakeLimit{remaining: remaining, reset: reset}
}

// FailNext makes the next n requests, whatever their token, answer status: a server error, or
// with retryAfter > 0 a secondary rate limit (403 or 429 with Retry-After in whole seconds).
func (f *FakeGitHub) FailNext(n int, status int, retryAfter time.Duration) {
	f.mu.Lock()
	defer f.mu.Unlock()
	f.failN, f.failStatus, f.failRetry = n, status, retryAfter
}

// SetDelay makes every request wait d before it is answered, or until the client gives up.
func (f *FakeGitHub) SetDelay(d time.Duration) {
	f.mu.Lock()
	defer f.mu.Unlock()
	f.delay = d
}

// SetLinkOn304 says whether 304 answers carry the Link header (default true). GitHub's
// documentation does not promise it, so clients should cope without.
func (f *FakeGitHub) SetLinkOn304(on bool) {
	f.mu.Lock()
	defer f.mu.Unlock()
	f.linkOn304 = on
}

// OnRequest sets fn to run in the handler goroutine as each request arrives, before any delay
// or failure. It may block, to hold requests in flight; the test must unblock it before
// cleanup, which waits for every handler.
func (f *FakeGitHub) OnRequest(fn func(*http.Request)) {
	f.mu.Lock()
	defer f.mu.Unlock()
	f.onRequest = fn
}

// Transport answers requests in memory, without a socket: for synctest bubbles, where a
// goroutine blocked on a real socket would keep virtual time from moving. Create the fake
// outside the bubble.
func (f *FakeGitHub) Transport() http.RoundTripper {
	return roundTripFunc(func(r *http.Request) (*http.Response, error) {
		rec := httptest.NewRecorder()
		f.serve(rec, r)
		resp := rec.Result()
		resp.Request = r
		return resp, nil
	})
}

type roundTripFunc func(*http.Request) (*http.Response, error)

func (fn roundTripFunc) RoundTrip(r *http.Request) (*http.Response, error) { return fn(r) }

// Requests returns the counts since start or ResetStats.
func (f *FakeGitHub) Requests() FakeGitHubStats {
	f.mu.Lock()
	defer f.mu.Unlock()
	s := f.stats
	s.ByStatus = make(map[int]int, len(f.stats.ByStatus))
	for k, v := range f.stats.ByStatus {
		s.ByStatus[k] = v
	}
	return s
}

// ResetStats sets every count to zero.
func (f *FakeGitHub) ResetStats() {
	f.mu.Lock()
	defer f.mu.Unlock()
	f.stats = FakeGitHubStats{ByStatus: make(map[int]int)}
}

func (f *FakeGitHub) serve(w http.ResponseWriter, r *http.Request) {
	token := bearer(r.Header.Get("Authorization"))
	f.mu.Lock()
	f.stats.All++
	switch r.URL.Path {
	case "/user":
		f.stats.User++
	case "/user/following":
		f.stats.Following++
	}
	f.inFlight++
	f.perToken[token]++
	f.stats.MaxInFlight = max(f.stats.MaxInFlight, f.inFlight)
	f.stats.MaxInFlightPerToken = max(f.stats.MaxInFlightPerToken, f.perToken[token])
	onRequest, delay := f.onRequest, f.delay
	f.mu.Unlock()
	defer func() {
		f.mu.Lock()
		f.inFlight--
		if f.perToken[token]--; f.perToken[token] == 0 {
			delete(f.perToken, token)
		}
		f.mu.Unlock()
	}()

	if onRequest != nil {
		onRequest(r)
	}
	if delay > 0 {
		t := time.NewTimer(delay)
		select {
		case <-t.C:
		case <-r.Context().Done():
			t.Stop()
			return
		}
	}
	status, h, body := f.answer(r, token)
	for k, v := range h {
		w.Header()[k] = v
	}
	if body != nil {
		w.Header().Set("Content-Type", "application/json; charset=utf-8")
	}
	w.WriteHeader(status)
	_, _ = w.Write(body)
}

// answer decides the reply under the lock, counting its status.
func (f *FakeGitHub) answer(r *http.Request, token string) (int, http.Header, []byte) {
	f.mu.Lock()
	defer f.mu.Unlock()
	status, h, body := f.answerLocked(r, token)
	f.stats.ByStatus[status]++
	if status == http.StatusNotModified {
		f.stats.NotModified++
	}
	return status, h, body
}

func (f *FakeGitHub) answerLocked(r *http.Request, token string) (int, http.Header, []byte) {
	h := http.Header{}
	if f.failN > 0 {
		f.failN--
		if f.failRetry > 0 {
			h.Set("Retry-After", strconv.Itoa(int((f.failRetry+time.Second-1)/time.Second)))
			return f.failStatus, h, errorBody("You have exceeded a secondary rate limit. Please wait a few minutes before you try again.")
		}
		return f.failStatus, h, errorBody(http.StatusText(f.failStatus))
	}
	if r.Method != http.MethodGet || (r.URL.Path != "/user" && r.URL.Path != "/user/following") {
		return http.StatusNotFound, h, errorBody("Not Found")
	}
	id, ok := f.tokens[token]
	u := f.users[id]
	if !ok || u == nil {
		return http.StatusUnauthorized, h, errorBody("Bad credentials")
	}
	lim := f.limits[token]
	now := time.Now()
	if lim == nil || !now.Before(lim.reset) {
		lim = &fakeLimit{remaining: fakeRateLimit, reset: now.Add(fakeResetIn)}
		f.limits[token] = lim
	}

	var status int
	var body []byte
	if r.URL.Path == "/user" {
		status, body = http.StatusOK, encodeJSON(fakeUserJSON(id, u.login, f.baseURL(), true))
	} else {
		status, body = f.followingLocked(r, u, h)
	}
	if status == http.StatusOK && lim.remaining <= 0 {
		status, body = http.StatusForbidden, errorBody(fmt.Sprintf("API rate limit exceeded for user ID %d.", id))
		h = http.Header{}
	}
	if status == http.StatusOK {
		lim.remaining--
	}
	h.Set("X-Ratelimit-Limit", strconv.Itoa(fakeRateLimit))
	h.Set("X-Ratelimit-Remaining", strconv.Itoa(max(lim.remaining, 0)))
	h.Set("X-Ratelimit-Reset", strconv.FormatInt(lim.reset.Unix(), 10))
	h.Set("X-Ratelimit-Used", strconv.Itoa(fakeRateLimit-max(lim.remaining, 0)))
	h.Set("X-Ratelimit-Resource", "core")
	return status, h, body
}

// followingLocked answers one page of /user/following: 200 with the page, or 304 when
// If-None-Match names its ETag. It sets Link and ETag in h.
func (f *FakeGitHub) followingLocked(r *http.Request, u *fakeUser, h http.Header) (int, []byte) {
	q := r.URL.Query()
	per, err := strconv.Atoi(q.Get("per_page"))
	if err != nil || per < 1 {
		per = 30
	}
	per = min(per, 100)
	page, err := strconv.Atoi(q.Get("page"))
	if err != nil || page < 1 {
		page = 1
	}
	var all []map[string]any
	for _, id := range u.following {
		if t := f.users[id]; t != nil {
			all = append(all, fakeUserJSON(id, t.login, f.baseURL(), false))
		}
	}
	items := []map[string]any{}
	if lo := (page - 1) * per; lo < len(all) {
		items = all[lo:min(lo+per, len(all))]
	}
	body := encodeJSON(items)
	sum := sha256.Sum256(body)
	etag := `W/"` + hex.EncodeToString(sum[:]) + `"`
	h.Set("ETag", etag)
	link := f.link(per, page, (len(all)+per-1)/per)
	if link != "" {
		h.Set("Link", link)
	}
	if etagMatch(r.Header.Get("If-None-Match"), etag) {
		if !f.linkOn304 {
			h.Del("Link")
		}
		return http.StatusNotModified, nil
	}
	return http.StatusOK, body
}

// link is GitHub's Link header for a page of a list with last pages.
func (f *FakeGitHub) link(per, page, last int) string {
	at := func(p int, rel string) string {
		return fmt.Sprintf(`<%s/user/following?per_page=%d&page=%d>; rel="%s"`, f.baseURL(), per, p, rel)
	}
	var links []string
	if page > 1 {
		links = append(links, at(min(page-1, max(last, 1)), "prev"))
	}
	if page < last {
		links = append(links, at(page+1, "next"), at(last, "last"))
	}
	if page > 1 {
		links = append(links, at(1, "first"))
	}
	return strings.Join(links, ", ")
}

func (f *FakeGitHub) baseURL() string { return f.srv.URL }

// etagMatch: If-None-Match may list several tags; weak comparison, as GitHub does.
func etagMatch(header, etag string) bool {
	for _, t := range strings.Split(header, ",") {
		t = strings.TrimSpace(t)
		if t == "*" || strings.TrimPrefix(t, "W/") == strings.TrimPrefix(etag, "W/") {
			return true
		}
	}
	return false
}

// bearer takes the token from "Bearer x" or GitHub's older "token x".
func bearer(h string) string {
	for _, p := range []string{"Bearer ", "bearer ", "token "} {
		if t, ok := strings.CutPrefix(h, p); ok {
			return t
		}
	}
	return ""
}

func fakeUserJSON(id int64, login, base string, full bool) map[string]any {
	m := map[string]any{
		"id":         id,
		"login":      login,
		"node_id":    fmt.Sprintf("U_fake%d", id),
		"avatar_url": fmt.Sprintf("https://avatars.githubusercontent.com/u/%d?v=4", id),
		"url":        base + "/users/" + login,
		"html_url":   "https://github.com/" + login,
		"type":       "User",
		"site_admin": false,
	}
	if full {
		m["name"] = login
		m["public_repos"] = 0
		m["followers"] = 0
		m["created_at"] = "2020-01-01T00:00:00Z"
	}
	return m
}

func errorBody(msg string) []byte {
	return encodeJSON(map[string]string{"message": msg, "documentation_url": "https://docs.github.com/rest"})
}

// encodeJSON encodes values the fake builds itself (maps of strings and numbers), which do not
// fail to encode; should one, the answer says so instead of panicking in a handler.
func encodeJSON(v any) []byte {
	b, err := json.Marshal(v)
	if err != nil {
		return []byte(`{"message":"fake github: encode failed"}`)
	}
	return b
}
