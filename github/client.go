// Package github talks to the GitHub REST API for presenced: it verifies an editor's OAuth
// token (GET /user) and reads whom that user follows (GET /user/following, every page).
//
// A token is never logged, never put in an error and never kept as a map key: the only form
// kept is TokenKey (hex SHA-256). Requests made with one token run one at a time and obey
// GitHub's rate limits for that token: once GitHub says a token is out of requests, every
// later call fails at once with *RateLimitError until the limit resets, without touching the
// network.
package github

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net/http"
	"net/url"
	"strconv"
	"strings"
	"sync"
	"time"

	"github.com/presenced/presenced/auth"
	"github.com/presenced/presenced/metrics"
)

// ErrUnauthorized: GitHub answered 401 for the token (revoked, expired or never valid).
// errors.Is(err, auth.ErrUnauthorized) is true for it, so the server closes with the
// unauthorized code without knowing about GitHub.
var ErrUnauthorized = fmt.Errorf("401 bad credentials: %w", auth.ErrUnauthorized)

// RateLimitError: GitHub refused the token for now (primary or secondary rate limit), or an
// earlier answer said the token has no requests left. Do not use the token before Until.
type RateLimitError struct {
	Until time.Time
}

func (e *RateLimitError) Error() string {
	return "rate limited: retry after " + e.Until.UTC().Format(time.RFC3339)
}

// StatusError is an answer GitHub should not have given: a 5xx (worth retrying later), or a
// status presenced has no use for. Message is GitHub's "message" field, shortened.
type StatusError struct {
	URL     string
	Status  int
	Message string
}

func (e *StatusError) Error() string {
	s := fmt.Sprintf("github: GET %s: %d %s", e.URL, e.Status, http.StatusText(e.Status))
	if e.Message != "" {
		s += ": " + e.Message
	}
	return s
}

// User is a GitHub account as presenced needs it.
type User struct {
	ID    int64
	Login string
}

const (
	// defaultTimeout bounds each request when the caller gives no *http.Client.
	defaultTimeout = 10 * time.Second
	// maxBody bounds what is read of one answer: a full page of 100 users is about 120 KiB.
	maxBody = 4 << 20
	// maxTokenLen: GitHub tokens are at most 255 characters; anything far longer is not one.
	maxTokenLen = 1024
	// apiVersion is the REST API version presenced was written against.
	apiVersion = "2022-11-28"
	// defaultRateLimitWait is how long to stay away after a rate-limit answer that says
	// nothing about when to come back (GitHub asks for at least a minute).
	defaultRateLimitWait = time.Minute
)

// Client makes GitHub API calls. It is safe for concurrent use; calls with the same token are
// serialised (see User and Following).
type Client struct {
	base *url.URL
	hc   *http.Client
	// now is the clock for rate-limit waits; tests replace it before the first call.
	now func() time.Time
	// Metrics counts every request sent, by endpoint and status; nil counts nothing. Set it
	// before the first call.
	Metrics *metrics.Metrics

	mu        sync.Mutex
	tokens    map[string]*tokenState // by TokenKey; guarded by mu
	sweepSize int                    // len(tokens) at which the next sweep runs; guarded by mu
	sweepAt   time.Time              // time after which the next insert sweeps; guarded by mu
}

// tokenState serialises one token's requests and remembers when it may be used again.
type tokenState struct {
	sem       chan struct{} // holds one value while a call with this token runs
	refs      int           // calls holding or waiting for sem; guarded by Client.mu
	notBefore time.Time     // no request before this; guarded by Client.mu
}

const (
	// minSweepSize is the table size at which an insert first sweeps out idle entries.
	minSweepSize = 64
	// sweepEvery is how often an insert sweeps anyway, so entries of tokens that waited out a
	// rate limit and never came back go within a minute of their wait.
	sweepEvery = time.Minute
)

// NewClient returns a client for the API at baseURL (https://api.github.com, or a fake's URL
// in tests). hc nil means a client with a 10 s timeout per request. A baseURL that does not
// parse gives a client whose every call fails with that error.
func NewClient(baseURL string, hc *http.Client) *Client {
	if hc == nil {
		hc = &http.Client{Timeout: defaultTimeout}
	}
	base, err := url.Parse(strings.TrimRight(baseURL, "/"))
	if err != nil || base.Scheme == "" || base.Host == "" {
		base = nil // every call reports it: NewClient's signature has no error
	}
	return &Client{
		base:      base,
		hc:        hc,
		now:       time.Now,
		tokens:    make(map[string]*tokenState),
		sweepSize: minSweepSize,
	}
}

// User returns the account the token belongs to (GET /user). It waits for any other call with
// the same token to finish first; ctx bounds that wait too.
func (c *Client) User(ctx context.Context, token string) (User, error) {
	u, err := c.endpoint("/user")
	if err != nil {
		return User{}, err
	}
	st, key, err := c.acquire(ctx, token, u)
	if err != nil {
		return User{}, err
	}
	defer c.release(key, st)
	resp, err := c.get(ctx, st, token, metrics.EndpointUser, u, "")
	if err != nil {
		return User{}, err
	}
	if resp.status != http.StatusOK {
		return User{}, &StatusError{URL: u, Status: resp.status}
	}
	var body struct {
		ID    int64  `json:"id"`
		Login string `json:"login"`
	}
	if err := json.Unmarshal(resp.body, &body); err != nil {
		return User{}, fmt.Errorf("github: GET %s: decode: %w", u, err)
	}
	if body.ID <= 0 || body.Login == "" {
		return User{}, fmt.Errorf("github: GET %s: answer has no id or login", u)
	}
	return User{ID: body.ID, Login: body.Login}, nil
}

// endpoint is the absolute URL of path on the API.
func (c *Client) endpoint(path string) (string, error) {
	if c.base == nil {
		return "", errors.New("github: client has no valid base URL")
	}
	return c.base.String() + path, nil
}

// validToken: a token goes into an HTTP header, so it must be printable ASCII without spaces.
// Checking here keeps net/http from ever describing it in an error.
func validToken(token string) bool {
	if token == "" || len(token) > maxTokenLen {
		return false
	}
	for i := 0; i < len(token); i++ {
		if token[i] <= ' ' || token[i] > '~' {
			return false
		}
	}
	return true
}

// acquire takes the token's lock, waiting for any call with the same token. It fails at once
// with *RateLimitError while the token must not be used. target names the call in errors.
func (c *Client) acquire(ctx context.Context, token, target string) (*tokenState, string, error) {
	if !validToken(token) {
		return nil, "", fmt.Errorf("github: GET %s: malformed token: %w", target, ErrUnauthorized)
	}
	key := TokenKey(token)
	c.mu.Lock()
	st := c.tokens[key]
	if st == nil {
		c.sweepLocked()
		st = &tokenState{sem: make(chan struct{}, 1)}
		c.tokens[key] = st
	}
	st.refs++
	until := st.notBefore
	c.mu.Unlock()
	if c.now().Before(until) {
		c.unref(key, st)
		return nil, "", fmt.Errorf("github: GET %s: %w", target, &RateLimitError{Until: until})
	}
	select {
	case st.sem <- struct{}{}:
		return st, key, nil
	case <-ctx.Done():
		c.unref(key, st)
		return nil, "", fmt.Errorf("github: GET %s: waiting for this token's previous call: %w", target, ctx.Err())
	}
}

// release gives back the lock taken by acquire.
func (c *Client) release(key string, st *tokenState) {
	<-st.sem
	c.unref(key, st)
}

// unref drops the entry of a token nobody is using, unless it still has to wait out a rate
// limit (then a later sweep drops it).
func (c *Client) unref(key string, st *tokenState) {
	c.mu.Lock()
	defer c.mu.Unlock()
	st.refs--
	if st.refs == 0 && !c.now().Before(st.notBefore) {
		delete(c.tokens, key)
	}
}

// sweepLocked drops idle entries whose rate-limit wait is over. It runs on an insert when the
// table has doubled since the last sweep or a minute has passed, so its cost is amortised over
// the inserts and the table stays bounded by the tokens in use plus those rate-limited within
// the last reset window (an hour).
func (c *Client) sweepLocked() {
	now := c.now()
	if len(c.tokens) < c.sweepSize && now.Before(c.sweepAt) {
		return
	}
	for k, st := range c.tokens {
		if st.refs == 0 && !now.Before(st.notBefore) {
			delete(c.tokens, k)
		}
	}
	c.sweepSize = max(minSweepSize, 2*len(c.tokens))
	c.sweepAt = now.Add(sweepEvery)
}

// holdOff records that the token must not be used before until (the later wait wins).
func (c *Client) holdOff(st *tokenState, until time.Time) {
	c.mu.Lock()
	if until.After(st.notBefore) {
		st.notBefore = until
	}
	c.mu.Unlock()
}

// response is an answer presenced can use: 200 or 304.
type response struct {
	status int
	header http.Header
	body   []byte
}

// get makes one GET with the token, whose lock the caller holds. etag, when set, is sent as
// If-None-Match. Only 200 and 304 come back as a response; everything else is an error.
// endpoint names the call for metrics (metrics.EndpointUser, metrics.EndpointFollowing).
func (c *Client) get(ctx context.Context, st *tokenState, token, endpoint, target, etag string) (*response, error) {
	c.mu.Lock()
	until := st.notBefore
	c.mu.Unlock()
	if c.now().Before(until) {
		return nil, fmt.Errorf("github: GET %s: %w", target, &RateLimitError{Until: until})
	}
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, target, nil)
	if err != nil {
		return nil, fmt.Errorf("github: GET %s: %w", target, err)
	}
	req.Header.Set("Authorization", "Bearer "+token)
	req.Header.Set("Accept", "application/vnd.github+json")
	req.Header.Set("X-GitHub-Api-Version", apiVersion)
	req.Header.Set("User-Agent", "presenced")
	if etag != "" {
		req.Header.Set("If-None-Match", etag)
	}
	resp, err := c.hc.Do(req)
	if err != nil {
		c.Metrics.GitHubCall(endpoint, 0)
		var ue *url.Error
		if errors.As(err, &ue) { // its text repeats the URL
			err = ue.Err
		}
		return nil, fmt.Errorf("github: GET %s: %w", target, err)
	}
	defer resp.Body.Close()
	c.Metrics.GitHubCall(endpoint, resp.StatusCode)
	body, err := io.ReadAll(io.LimitReader(resp.Body, maxBody+1))
	if err != nil {
		return nil, fmt.Errorf("github: GET %s: read: %w", target, err)
	}
	if len(body) > maxBody {
		return nil, fmt.Errorf("github: GET %s: answer larger than %d bytes", target, maxBody)
	}
	now := c.now()
	// Any answer may say the token has no requests left: then the next one would be refused.
	reset, exhausted := exhaustedUntil(resp.Header)
	if exhausted {
		c.holdOff(st, reset)
	}
	switch resp.StatusCode {
	case http.StatusOK, http.StatusNotModified:
		return &response{status: resp.StatusCode, header: resp.Header, body: body}, nil
	case http.StatusUnauthorized:
		return nil, fmt.Errorf("github: GET %s: %w", target, ErrUnauthorized)
	case http.StatusForbidden, http.StatusTooManyRequests:
		if until, ok := rateLimitedUntil(resp.StatusCode, resp.Header, body, now); ok {
			c.holdOff(st, until)
			return nil, fmt.Errorf("github: GET %s: %w", target, &RateLimitError{Until: until})
		}
	}
	return nil, &StatusError{URL: target, Status: resp.StatusCode, Message: message(body, token)}
}

// exhaustedUntil reports whether the answer says the token has no requests left, and when
// they come back (x-ratelimit-reset, unix seconds).
func exhaustedUntil(h http.Header) (time.Time, bool) {
	if h.Get("X-Ratelimit-Remaining") != "0" {
		return time.Time{}, false
	}
	sec, err := strconv.ParseInt(h.Get("X-Ratelimit-Reset"), 10, 64)
	if err != nil || sec <= 0 {
		return time.Time{}, false
	}
	return time.Unix(sec, 0), true
}

// rateLimitedUntil reads a 403 or 429: a rate limit when it has retry-after, or
// x-ratelimit-remaining 0, or (secondary limits without headers) says so in its message; a
// 429 is always one. The later of the stated waits wins.
func rateLimitedUntil(status int, h http.Header, body []byte, now time.Time) (time.Time, bool) {
	var until time.Time
	limited := false
	if t, ok := exhaustedUntil(h); ok {
		until, limited = t, true
	} else if h.Get("X-Ratelimit-Remaining") == "0" {
		until, limited = now.Add(defaultRateLimitWait), true
	}
	if ra := strings.TrimSpace(h.Get("Retry-After")); ra != "" {
		t := now.Add(defaultRateLimitWait)
		if sec, err := strconv.ParseInt(ra, 10, 64); err == nil && sec >= 0 {
			t = now.Add(time.Duration(sec) * time.Second)
		} else if d, err := http.ParseTime(ra); err == nil {
			t = d
		}
		if !limited || t.After(until) {
			until = t
		}
		limited = true
	}
	if !limited && (status == http.StatusTooManyRequests ||
		strings.Contains(strings.ToLower(string(body)), "rate limit")) {
		until, limited = now.Add(defaultRateLimitWait), true
	}
	return until, limited
}

// message is GitHub's "message" field of an error answer, shortened, with the token removed
// should GitHub ever echo it.
func message(body []byte, token string) string {
	var m struct {
		Message string `json:"message"`
	}
	if json.Unmarshal(body, &m) != nil {
		return ""
	}
	s := strings.ReplaceAll(m.Message, token, "[token]")
	if len(s) > 200 {
		s = s[:200] + "…"
	}
	return s
}
