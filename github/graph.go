package github

import (
	"context"
	"encoding/json"
	"fmt"
	"strconv"
	"time"

	"github.com/presenced/presenced/auth"
)

var (
	_ auth.Graph      = (*Graph)(nil)
	_ auth.RetryLater = (*RateLimitError)(nil)
)

// RetryAt says when the token may be used again (auth.RetryLater).
func (e *RateLimitError) RetryAt() time.Time { return e.Until }

// Graph is auth.Graph over GitHub: whom a user follows, from GET /user/following with the
// user's own token. Nothing here ever reads a follower list.
type Graph struct{ c *Client }

// NewGraph reads follow lists with c.
func NewGraph(c *Client) *Graph { return &Graph{c: c} }

// pageValidator is one page as kept in auth.FollowList.Validators. The users are not repeated:
// pages are consecutive slices of the list, so N says how many of its users a page holds.
type pageValidator struct {
	URL  string `json:"url"`
	ETag string `json:"etag,omitempty"`
	Next string `json:"next,omitempty"`
	N    int    `json:"n"`
}

// Fetch reads the whole list, revalidating prev's pages with their ETags.
func (g *Graph) Fetch(ctx context.Context, who auth.Identity, token string, prev *auth.FollowList) (*auth.FollowList, bool, error) {
	prevPages := pagesFrom(prev)
	pages, changed, err := g.c.Following(ctx, token, prevPages)
	if err != nil {
		return nil, false, fmt.Errorf("github: following of %s: %w", who.ID, err)
	}
	if !changed && prev != nil {
		return prev, false, nil
	}
	out := &auth.FollowList{Users: []auth.Followee{}}
	vals := make([]pageValidator, len(pages))
	seen := map[int64]bool{}
	for i, p := range pages {
		vals[i] = pageValidator{URL: p.URL, ETag: p.ETag, Next: p.Next, N: len(p.Users)}
		for _, u := range p.Users {
			// A list that moved between two page reads can show someone twice; the view wants
			// each user once. The page count keeps the duplicate so prev slices stay aligned.
			if !seen[u.ID] {
				seen[u.ID] = true
				out.Users = append(out.Users, auth.Followee{ID: strconv.FormatInt(u.ID, 10), Login: u.Login})
			}
		}
	}
	b, err := json.Marshal(vals)
	if err != nil {
		return nil, false, fmt.Errorf("github: encode validators: %w", err)
	}
	out.Validators = b
	if len(seen) != sumN(vals) {
		// Duplicates were dropped, so prev slices would not line up next time: keep no ETags
		// and read the list whole on the next refresh.
		out.Validators = nil
	}
	return out, true, nil
}

func sumN(vals []pageValidator) int {
	n := 0
	for _, v := range vals {
		n += v.N
	}
	return n
}

// pagesFrom rebuilds the pages of a list stored with its validators; a list that does not
// line up with them (or has none) gives no pages: the next read is unconditional.
func pagesFrom(prev *auth.FollowList) []Page {
	if prev == nil || len(prev.Validators) == 0 {
		return nil
	}
	var vals []pageValidator
	if err := json.Unmarshal(prev.Validators, &vals); err != nil || sumN(vals) != len(prev.Users) {
		return nil
	}
	pages := make([]Page, len(vals))
	off := 0
	for i, v := range vals {
		users := make([]User, v.N)
		for j := range users {
			f := prev.Users[off+j]
			id, err := strconv.ParseInt(f.ID, 10, 64)
			if err != nil {
				return nil
			}
			users[j] = User{ID: id, Login: f.Login}
		}
		off += v.N
		pages[i] = Page{URL: v.URL, ETag: v.ETag, Next: v.Next, Users: users}
	}
	return pages
}
