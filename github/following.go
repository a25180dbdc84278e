package github

import (
	"context"
	"encoding/json"
	"fmt"
	"net/http"
	"net/url"
	"strconv"
	"strings"

	"github.com/presenced/presenced/metrics"
)

// Page is one page of GET /user/following as last read: the caller keeps the pages of the last
// good list and passes them back, so unchanged pages are revalidated with their ETag (a 304
// costs no rate limit on GitHub).
type Page struct {
	URL   string
	ETag  string
	Users []User // shared with the next call's pages when it answers 304: do not modify
	Next  string // URL of the next page as GitHub linked it, "" if none
}

const (
	// perPage is the largest page GitHub serves: fewest requests per list.
	perPage = 100
	// maxPages bounds one list (100,000 follows) so a malformed chain of links cannot loop.
	maxPages = 1000
)

// Following returns every page of whom the token's user follows (GET
// /user/following?per_page=100, then each rel="next" link). prev are the pages of the last good
// list, or nil: a page whose URL is in prev is asked for with If-None-Match, and a 304 reuses
// prev's users. changed is false only when every page answered 304 and the pages are the same
// ones as in prev.
//
// A full page with no next link is followed by one request for the page after it, because a
// page that answers 304 may carry no link even though the list grew past it; an empty page
// ends the list and is kept, so the next call revalidates it for free.
//
// Any error ends the call with no pages: the caller keeps its last good list rather than a
// partial one. 401 gives an error wrapping ErrUnauthorized, a rate limit *RateLimitError.
// The token's lock is held for all pages, so the pages are one consistent pass.
func (c *Client) Following(ctx context.Context, token string, prev []Page) (pages []Page, changed bool, err error) {
	first, err := c.endpoint("/user/following?per_page=" + strconv.Itoa(perPage))
	if err != nil {
		return nil, false, err
	}
	st, key, err := c.acquire(ctx, token, first)
	if err != nil {
		return nil, false, err
	}
	defer c.release(key, st)

	known := make(map[string]Page, len(prev))
	for _, p := range prev {
		known[canonical(p.URL)] = p
	}
	seen := make(map[string]bool)
	allNotModified := true
	for target := first; target != ""; {
		ck := canonical(target)
		if seen[ck] || len(pages) == maxPages {
			return nil, false, fmt.Errorf("github: following: stopped at %s: links loop or more than %d pages", target, maxPages)
		}
		seen[ck] = true
		p, notModified, err := c.page(ctx, st, token, target, known[ck])
		if err != nil {
			return nil, false, err
		}
		allNotModified = allNotModified && notModified
		pages = append(pages, p)
		switch {
		case len(p.Users) == 0:
			target = ""
		case p.Next != "":
			target = p.Next
		case len(p.Users) >= perPage:
			target = nextPageNumber(target)
		default:
			target = ""
		}
	}
	return pages, !allNotModified || !samePages(prev, pages), nil
}

// page reads one page; old is the page with the same URL from the last list (zero if none).
func (c *Client) page(ctx context.Context, st *tokenState, token, target string, old Page) (Page, bool, error) {
	resp, err := c.get(ctx, st, token, metrics.EndpointFollowing, target, old.ETag)
	if err != nil {
		return Page{}, false, err
	}
	next, err := c.nextLink(target, resp.header)
	if err != nil {
		return Page{}, false, err
	}
	if resp.status == http.StatusNotModified {
		if old.ETag == "" {
			return Page{}, false, fmt.Errorf("github: GET %s: 304 to a request without If-None-Match", target)
		}
		etag := resp.header.Get("ETag")
		if etag == "" {
			etag = old.ETag
		}
		if next == "" && len(resp.header.Values("Link")) == 0 {
			next = old.Next
		}
		return Page{URL: target, ETag: etag, Users: old.Users, Next: next}, true, nil
	}
	var body []struct {
		ID    int64  `json:"id"`
		Login string `json:"login"`
	}
	if err := json.Unmarshal(resp.body, &body); err != nil {
		return Page{}, false, fmt.Errorf("github: GET %s: decode: %w", target, err)
	}
	users := make([]User, 0, len(body))
	for _, u := range body {
		if u.ID <= 0 || u.Login == "" {
			return Page{}, false, fmt.Errorf("github: GET %s: a user has no id or login", target)
		}
		users = append(users, User{ID: u.ID, Login: u.Login})
	}
	return Page{URL: target, ETag: resp.header.Get("ETag"), Users: users, Next: next}, false, nil
}

// nextLink is the rel="next" URL of a Link header, resolved against the page's URL. A link to
// another host is refused: following it would send the token there.
func (c *Client) nextLink(target string, h http.Header) (string, error) {
	raw := relNext(h.Values("Link"))
	if raw == "" {
		return "", nil
	}
	base, err := url.Parse(target)
	if err != nil {
		return "", fmt.Errorf("github: GET %s: %w", target, err)
	}
	next, err := base.Parse(raw)
	if err != nil {
		return "", fmt.Errorf("github: GET %s: bad next link: %w", target, err)
	}
	if next.Scheme != c.base.Scheme || next.Host != c.base.Host {
		return "", fmt.Errorf("github: GET %s: next link leaves %s", target, c.base.Host)
	}
	return next.String(), nil
}

// relNext finds the URL with rel="next" in Link header values:
// <https://api.github.com/user/following?per_page=100&page=2>; rel="next", <…>; rel="last".
func relNext(values []string) string {
	for _, v := range values {
		for _, link := range strings.Split(v, ",") {
			link = strings.TrimSpace(link)
			end := strings.IndexByte(link, '>')
			if !strings.HasPrefix(link, "<") || end < 0 {
				continue
			}
			for _, param := range strings.Split(link[end+1:], ";") {
				name, val, ok := strings.Cut(strings.TrimSpace(param), "=")
				if !ok || !strings.EqualFold(strings.TrimSpace(name), "rel") {
					continue
				}
				for _, rel := range strings.Fields(strings.Trim(strings.TrimSpace(val), `"`)) {
					if strings.EqualFold(rel, "next") {
						return link[1:end]
					}
				}
			}
		}
	}
	return ""
}

// nextPageNumber is target with its page parameter (default 1) one higher.
func nextPageNumber(target string) string {
	u, err := url.Parse(target)
	if err != nil {
		return ""
	}
	q := u.Query()
	n, err := strconv.Atoi(q.Get("page"))
	if err != nil || n < 1 {
		n = 1
	}
	q.Set("page", strconv.Itoa(n+1))
	u.RawQuery = q.Encode()
	return u.String()
}

// canonical makes URLs that differ only in the order of their query parameters equal, so a
// page probed by number matches the same page when GitHub links it.
func canonical(raw string) string {
	u, err := url.Parse(raw)
	if err != nil {
		return raw
	}
	u.RawQuery = u.Query().Encode()
	return u.String()
}

// samePages reports whether a and b are the same pages in the same order.
func samePages(a, b []Page) bool {
	if len(a) != len(b) {
		return false
	}
	for i := range a {
		if canonical(a[i].URL) != canonical(b[i].URL) {
			return false
		}
	}
	return true
}
