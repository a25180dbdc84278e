package testkit_test

import (
	"encoding/json"
	"net/http"
	"strings"
	"testing"
	"time"

	"github.com/presenced/presenced/testkit"
)

func get(t *testing.T, url, token, etag string) (*http.Response, []map[string]any) {
	t.Helper()
	req, err := http.NewRequest(http.MethodGet, url, nil)
	if err != nil {
		t.Fatal(err)
	}
	req.Header.Set("Authorization", "Bearer "+token)
	if etag != "" {
		req.Header.Set("If-None-Match", etag)
	}
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	var list []map[string]any
	if resp.StatusCode == http.StatusOK && strings.HasPrefix(req.URL.Path, "/user/following") {
		if err := json.NewDecoder(resp.Body).Decode(&list); err != nil {
			t.Fatal(err)
		}
	}
	return resp, list
}

func TestFakeGitHubFollowingPages(t *testing.T) {
	f := testkit.NewFakeGitHub(t)
	f.AddUser(1, "alice", "tok")
	var ids []int64
	for i := int64(100); i < 165; i++ {
		f.AddUser(i, "u")
		ids = append(ids, i)
	}
	f.SetFollowing(1, ids...)

	resp, list := get(t, f.URL()+"/user/following", "tok", "")
	if resp.StatusCode != 200 || len(list) != 30 {
		t.Fatalf("default page: %d, %d users; want 200, 30", resp.StatusCode, len(list))
	}
	link := resp.Header.Get("Link")
	if !strings.Contains(link, f.URL()+`/user/following?per_page=30&page=2>; rel="next"`) ||
		!strings.Contains(link, `page=3>; rel="last"`) {
		t.Fatalf("Link %q", link)
	}
	if resp.Header.Get("X-Ratelimit-Remaining") != "4999" || resp.Header.Get("X-Ratelimit-Used") != "1" {
		t.Fatalf("rate headers %v", resp.Header)
	}

	resp, list = get(t, f.URL()+"/user/following?per_page=500&page=1", "tok", "")
	if len(list) != 65 || resp.Header.Get("Link") != "" || list[64]["id"].(float64) != 164 {
		t.Fatalf("per_page capped at 100: %d users, Link %q", len(list), resp.Header.Get("Link"))
	}
	etag := resp.Header.Get("ETag")
	if !strings.HasPrefix(etag, `W/"`) {
		t.Fatalf("ETag %q", etag)
	}

	resp, _ = get(t, f.URL()+"/user/following?per_page=100", "tok", etag)
	if resp.StatusCode != http.StatusNotModified || resp.Header.Get("X-Ratelimit-Remaining") != "4998" {
		t.Fatalf("revalidation: %d, remaining %s; want 304 at no cost", resp.StatusCode, resp.Header.Get("X-Ratelimit-Remaining"))
	}
	f.Rename(164, "renamed")
	if resp, _ = get(t, f.URL()+"/user/following?per_page=100", "tok", etag); resp.StatusCode != 200 {
		t.Fatalf("after a rename: %d, want 200", resp.StatusCode)
	}
	s := f.Requests()
	if s.All != 4 || s.Following != 4 || s.NotModified != 1 || s.ByStatus[200] != 3 {
		t.Fatalf("stats %+v", s)
	}
}

func TestFakeGitHubAuthAndLimits(t *testing.T) {
	f := testkit.NewFakeGitHub(t)
	f.AddUser(1, "alice", "tok")
	if resp, _ := get(t, f.URL()+"/user", "nope", ""); resp.StatusCode != http.StatusUnauthorized {
		t.Fatalf("unknown token: %d", resp.StatusCode)
	}
	reset := time.Now().Add(time.Hour)
	f.SetRateLimit("tok", 0, reset)
	resp, _ := get(t, f.URL()+"/user", "tok", "")
	if resp.StatusCode != http.StatusForbidden || resp.Header.Get("X-Ratelimit-Remaining") != "0" {
		t.Fatalf("exhausted: %d %v", resp.StatusCode, resp.Header)
	}
	f.SetRateLimit("tok", 10, reset)
	f.FailNext(1, http.StatusTooManyRequests, 3*time.Second)
	if resp, _ := get(t, f.URL()+"/user", "tok", ""); resp.StatusCode != 429 || resp.Header.Get("Retry-After") != "3" {
		t.Fatalf("FailNext: %d %v", resp.StatusCode, resp.Header)
	}
	if resp, _ := get(t, f.URL()+"/user", "tok", ""); resp.StatusCode != 200 {
		t.Fatalf("after FailNext: %d", resp.StatusCode)
	}
	f.RevokeToken("tok")
	if resp, _ := get(t, f.URL()+"/user", "tok", ""); resp.StatusCode != http.StatusUnauthorized {
		t.Fatalf("revoked token: %d", resp.StatusCode)
	}
	if s := f.Requests(); s.User != 5 || s.ByStatus[401] != 2 {
		t.Fatalf("stats %+v", s)
	}
	f.ResetStats()
	if s := f.Requests(); s.All != 0 {
		t.Fatalf("after ResetStats: %+v", s)
	}
}
