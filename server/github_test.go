package server_test

import (
	"fmt"
	"reflect"
	"strings"
	"testing"
	"time"

	"github.com/presenced/presenced/github"
	"github.com/presenced/presenced/server"
	"github.com/presenced/presenced/testkit"
	"github.com/presenced/presenced/wire"
)

// GitHub users of these tests: ids are what presenced keys users by, logins what the wire shows.
const (
	aliceID, bobID, carolID = 101, 102, 103
)

// fakeNet is a fake GitHub with alice, bob and carol (tokens tok-<login>).
func fakeNet(t *testing.T) *testkit.FakeGitHub {
	gh := testkit.NewFakeGitHub(t)
	gh.AddUser(aliceID, "alice", "tok-alice")
	gh.AddUser(bobID, "bob", "tok-bob")
	gh.AddUser(carolID, "carol", "tok-carol")
	return gh
}

// githubNode runs a node with GitHub auth against gh; refreshes every refresh (0: the default).
func githubNode(t *testing.T, gh *testkit.FakeGitHub, refresh time.Duration, tweak ...func(*server.Config)) (*testkit.Node, *github.Authenticator) {
	cfg, a := testkit.GitHubConfig(gh)
	cfg.User.Debounce = 10 * time.Millisecond
	cfg.RefreshInterval = refresh
	for _, f := range tweak {
		f(&cfg)
	}
	return testkit.StartNode(t, cfg), a
}

func hello(token string) wire.Hello { return wire.Hello{Token: token} }

func syncOf(users ...wire.SyncUser) wire.Sync { return wire.Sync{Users: users} }

func entry(login string, p wire.Presence) wire.SyncUser {
	return wire.SyncUser{Username: login, Presence: p}
}

// TestGitHubIdentity: the hello token is verified with GET /user; the welcome shows the login;
// followers see the login, keyed by id.
func TestGitHubIdentity(t *testing.T) {
	gh := fakeNet(t)
	gh.SetFollowing(bobID, aliceID)
	n, _ := githubNode(t, gh, 0)
	b := n.Connect(t, hello("tok-bob"))
	if b.Welcome.ID != "bob" || !reflect.DeepEqual(b.Sync, syncOf(entry("alice", offline(0)))) {
		t.Fatalf("welcome %+v sync %+v", b.Welcome, b.Sync)
	}
	a := n.Connect(t, hello("tok-alice"))
	if a.Welcome.ID != "alice" {
		t.Fatalf("welcome %+v", a.Welcome)
	}
	b.Expect(wire.Online{ID: "alice", Presence: online(wire.Idle, "", "")})
	bad := n.Dial(t)
	bad.Send(hello("tok-nobody"))
	bad.ExpectClose(wire.ErrUnauthorized, wire.CloseUnauthorized)
}

// TestGitHubPagination: a user following 250 people sees all 250, in GitHub's order, read
// with three requests of 100.
func TestGitHubPagination(t *testing.T) {
	gh := fakeNet(t)
	var ids []int64
	var want []wire.SyncUser
	for i := range 250 {
		id := int64(1000 + i)
		gh.AddUser(id, fmt.Sprintf("dev-%d", i), fmt.Sprintf("tok-%d", i))
		ids = append(ids, id)
		want = append(want, entry(fmt.Sprintf("dev-%d", i), offline(0)))
	}
	gh.SetFollowing(bobID, ids...)
	n, _ := githubNode(t, gh, 0)
	gh.ResetStats()
	b := n.Connect(t, hello("tok-bob"))
	if !reflect.DeepEqual(b.Sync, syncOf(want...)) {
		t.Fatalf("sync has %d users, want 250 in order", len(b.Sync.Users))
	}
	if s := gh.Requests(); s.Following != 3 || s.User != 1 {
		t.Fatalf("requests %+v, want 1 GET /user and 3 pages", s)
	}
	last := n.Connect(t, hello("tok-249"))
	b.Expect(wire.Online{ID: "dev-249", Presence: online(wire.Idle, "", "")})
	last.Send(coding())
	b.Expect(wire.Update{ID: "dev-249", Has: wire.FieldActivity, Activity: wire.Coding})
}

// TestGitHubWarmLoginRevalidatesWithETags: the second hello reads the cached list (no request
// before its sync) and then revalidates every page with If-None-Match: 304s, no rate limit
// spent, no frame.
func TestGitHubWarmLoginRevalidatesWithETags(t *testing.T) {
	gh := fakeNet(t)
	var ids []int64
	for i := range 150 {
		gh.AddUser(int64(1000+i), fmt.Sprintf("dev-%d", i))
		ids = append(ids, int64(1000+i))
	}
	gh.SetFollowing(bobID, ids...)
	n, _ := githubNode(t, gh, 0, func(c *server.Config) { c.RevalidateAfter = time.Nanosecond })
	first := n.Connect(t, hello("tok-bob"))
	gh.ResetStats()
	second := n.Connect(t, hello("tok-bob"))
	if !reflect.DeepEqual(second.Sync, first.Sync) {
		t.Fatal("warm sync differs from the cold one")
	}
	eventually(t, "two conditional page requests", func() bool { return gh.Requests().NotModified == 2 })
	if s := gh.Requests(); s.User != 0 || s.Following != 2 || s.ByStatus[200] != 0 {
		t.Fatalf("requests %+v: want only the two 304s (the token was cached)", s)
	}
	first.Quiet()
	second.Quiet()
}

// TestGitHubFollowsChangeLive: a refresh that finds a new follow adds the user to the live
// view with a new sync; an unfollowed user disappears and is not heard of again.
func TestGitHubFollowsChangeLive(t *testing.T) {
	gh := fakeNet(t)
	gh.SetFollowing(bobID, aliceID)
	n, _ := githubNode(t, gh, 20*time.Millisecond)
	c := n.Connect(t, hello("tok-carol"))
	c.Send(status(wire.Debugging, "P", "Go"))
	b := n.Connect(t, hello("tok-bob"))
	a := n.Connect(t, hello("tok-alice"))
	b.Expect(wire.Online{ID: "alice", Presence: online(wire.Idle, "", "")})

	gh.Follow(bobID, carolID)
	b.Expect(syncOf(entry("alice", online(wire.Idle, "", "")), entry("carol", online(wire.Debugging, "P", "Go"))))
	c.Send(coding())
	b.Expect(wire.Update{ID: "carol", Has: wire.FieldActivity, Activity: wire.Coding})

	gh.Unfollow(bobID, aliceID)
	b.Expect(syncOf(entry("carol", online(wire.Coding, "P", "Go"))))
	a.Send(coding())
	c.Send(wire.Status{Has: wire.FieldLanguage, Language: "Rust"})
	// carol's change comes one debounce after alice's: nothing about alice arrives before it.
	b.Expect(wire.Update{ID: "carol", Has: wire.FieldLanguage, Language: "Rust"})
	b.Quiet()
}

// TestGitHubErrorsKeepTheGraph: 5xx and rate-limited refreshes change nothing; the next good
// refresh starts from the last good list. While the token is limited no request is made: one
// 403, then nothing until the reset (a refresh every 20 ms would otherwise make ~75 of them).
func TestGitHubErrorsKeepTheGraph(t *testing.T) {
	gh := fakeNet(t)
	gh.SetFollowing(bobID, aliceID)
	n, _ := githubNode(t, gh, 20*time.Millisecond, func(c *server.Config) { c.AuthTimeout = 200 * time.Millisecond })
	b := n.Connect(t, hello("tok-bob"))
	gh.ResetStats()
	gh.FailNext(3, 502, 0)
	eventually(t, "three failed refreshes", func() bool { return gh.Requests().ByStatus[502] == 3 })
	// GitHub's reset is a whole second (x-ratelimit-reset is in seconds).
	gh.SetRateLimit("tok-bob", 0, time.Unix(time.Now().Add(time.Second).Unix()+1, 0))
	gh.Follow(bobID, carolID) // the page changes, so only a 200 (refused: 403) can answer it
	// The first frame is the good list plus carol: never an empty or partial list before it.
	b.Expect(syncOf(entry("alice", offline(0)), entry("carol", offline(0))))
	if s := gh.Requests(); s.ByStatus[403] != 1 || s.ByStatus[200] != 1 {
		t.Fatalf("requests %+v: want one 403, then the 200 after the reset", s)
	}
	// Timeouts: GitHub answers slower than a fetch may take (AuthTimeout, 200 ms here).
	gh.ResetStats()
	gh.SetDelay(time.Second)
	eventually(t, "two slow refreshes", func() bool { return gh.Requests().All >= 2 })
	gh.Unfollow(bobID, carolID)
	gh.SetDelay(0)
	b.Expect(syncOf(entry("alice", offline(0))))
	b.Quiet()
}

// TestGitHubRevokedToken: a refresh that gets 401 revokes the token at once (even though it was
// cached as good): the session's resume with it is refused; a new token works.
func TestGitHubRevokedToken(t *testing.T) {
	gh := fakeNet(t)
	gh.SetFollowing(bobID, aliceID)
	n, a := githubNode(t, gh, 20*time.Millisecond)
	b := n.Connect(t, hello("tok-bob"))
	gh.RevokeToken("tok-bob")
	eventually(t, "the refresh to see the revocation", func() bool { return gh.Requests().ByStatus[401] >= 1 })
	eventually(t, "the authenticator to learn it", func() bool { return a.Stats().Refused >= 1 })
	b.Drop()
	r := n.Dial(t)
	r.Send(wire.Hello{Token: "tok-bob", Resume: b.Welcome.Resume})
	r.ExpectClose(wire.ErrUnauthorized, wire.CloseUnauthorized)
	gh.AddUser(bobID, "bob", "tok-bob-2")
	ok := n.Dial(t)
	ok.Send(wire.Hello{Token: "tok-bob-2", Resume: b.Welcome.Resume})
	if w, isW := ok.Next().(wire.Welcome); !isW || !w.Resumed || w.ID != "bob" {
		t.Fatalf("resume with a new token: %+v", w)
	}
}

// TestGitHubRename: a renamed user shows under the new name at the next hello, keeps her
// followers and her last seen (users are keyed by GitHub id).
func TestGitHubRename(t *testing.T) {
	gh := fakeNet(t)
	gh.SetFollowing(bobID, aliceID)
	n, _ := githubNode(t, gh, 0, func(c *server.Config) {
		c.Auth = github.NewAuthenticator(github.NewClient(gh.URL(), nil), github.AuthConfig{TTL: time.Nanosecond})
	})
	b := n.Connect(t, hello("tok-bob"))
	a := n.Connect(t, wire.Hello{Token: "tok-alice", Window: "w1"})
	b.Expect(wire.Online{ID: "alice", Presence: online(wire.Idle, "", "")})
	a.Send(wire.Bye{})
	x := b.Next().(wire.Offline)
	if x.ID != "alice" || x.TS == 0 {
		t.Fatalf("x = %+v", x)
	}
	gh.Rename(aliceID, "alice-renamed")
	a2 := n.Connect(t, hello("tok-alice"))
	if a2.Welcome.ID != "alice-renamed" {
		t.Fatalf("welcome %+v", a2.Welcome)
	}
	// The rename is published at once, with what is true now (she is back online).
	b.Expect(syncOf(entry("alice-renamed", online(wire.Idle, "", ""))))
	a2.Send(wire.Bye{})
	b.Next()
	// A new follower session (bob's list still says "alice") shows the new name and last seen.
	b2 := n.Connect(t, hello("tok-bob"))
	if s := b2.Sync; len(s.Users) != 1 || s.Users[0].Username != "alice-renamed" || s.Users[0].Presence.State != wire.StateOffline || s.Users[0].Presence.TS < x.TS {
		t.Fatalf("sync %+v", s)
	}
}

// TestGitHubTokenIsItsUser: a token for alice can only ever be alice; bob's resume token is
// useless to her and stays good for bob.
func TestGitHubTokenIsItsUser(t *testing.T) {
	gh := fakeNet(t)
	gh.SetFollowing(carolID, bobID)
	n, _ := githubNode(t, gh, 0)
	c := n.Connect(t, hello("tok-carol"))
	b := n.Connect(t, wire.Hello{Token: "tok-bob", Window: "bw"})
	c.Expect(wire.Online{ID: "bob", Presence: online(wire.Idle, "", "")})
	b.Drop()
	// alice names bob's window and presents bob's resume token: refused, and nothing moves.
	steal := n.Dial(t)
	steal.Send(wire.Hello{Token: "tok-alice", Window: "bw", Resume: b.Welcome.Resume})
	steal.ExpectClose(wire.ErrResumeFailed, wire.CloseResumeFailed)
	again := n.Dial(t)
	again.Send(wire.Hello{Token: "tok-alice", Window: "bw"})
	if w := again.Next().(wire.Welcome); w.ID != "alice" || w.Resumed {
		t.Fatalf("alice's hello: %+v", w)
	}
	back := n.Dial(t)
	back.Send(wire.Hello{Token: "tok-bob", Resume: b.Welcome.Resume})
	if w := back.Next().(wire.Welcome); w.ID != "bob" || !w.Resumed {
		t.Fatalf("bob's resume after the theft attempt: %+v", w)
	}
	c.Quiet()
}

// TestGitHubDirection: following someone does not make you visible to them.
func TestGitHubDirection(t *testing.T) {
	gh := fakeNet(t)
	gh.SetFollowing(aliceID, bobID) // alice follows bob; bob follows no one
	n, _ := githubNode(t, gh, 0)
	b := n.Connect(t, hello("tok-bob"))
	a := n.Connect(t, hello("tok-alice"))
	if len(b.Sync.Users) != 0 || !reflect.DeepEqual(a.Sync, syncOf(entry("bob", online(wire.Idle, "", "")))) &&
		!reflect.DeepEqual(a.Sync, syncOf(entry("bob", offline(0)))) {
		t.Fatalf("bob sync %+v, alice sync %+v", b.Sync, a.Sync)
	}
	a.Send(coding())
	b.Send(coding())
	if f := a.Next(); !strings.Contains(fmt.Sprint(f), "bob") {
		t.Fatalf("alice got %#v, want bob's news", f)
	}
	b.Quiet()
}

// TestGitHubMutualFollowBack: a mutual-only user who starts following a follower back (found by
// a refresh) becomes visible to them, and hidden again when she unfollows.
func TestGitHubMutualFollowBack(t *testing.T) {
	gh := fakeNet(t)
	gh.SetFollowing(bobID, aliceID)
	n, _ := githubNode(t, gh, 20*time.Millisecond)
	b := n.Connect(t, hello("tok-bob"))
	a := n.Connect(t, hello("tok-alice"))
	b.ExpectRaw(`{"t":"o","id":"alice","s":"Online","a":"Idle"}`)
	a.Send(wire.Privacy{Has: wire.PrivacyVisibleTo, VisibleTo: wire.AudienceMutual})
	b.ExpectRaw(`{"t":"x","id":"alice"}`)
	gh.Follow(aliceID, bobID)
	a.Expect(syncOf(entry("bob", online(wire.Idle, "", ""))))
	b.ExpectRaw(`{"t":"o","id":"alice","s":"Online","a":"Idle"}`)
	gh.Unfollow(aliceID, bobID)
	a.Expect(wire.Sync{Users: []wire.SyncUser{}})
	b.ExpectRaw(`{"t":"x","id":"alice"}`)
	b.Quiet()
}

// TestGitHubGraphCacheInRedis: with Redis, a list fetched on one node is warm on every node: a
// hello on another node reads it from Redis and asks GitHub only who the token is.
func TestGitHubGraphCacheInRedis(t *testing.T) {
	gh := fakeNet(t)
	gh.SetFollowing(bobID, aliceID, carolID)
	url := testkit.RequireRedis(t).URL()
	n1, _ := githubNode(t, gh, 0, func(c *server.Config) { c.RedisURL = url })
	n2, _ := githubNode(t, gh, 0, func(c *server.Config) { c.RedisURL = url })
	b1 := n1.Connect(t, hello("tok-bob"))
	gh.ResetStats()
	b2 := n2.Connect(t, hello("tok-bob"))
	if !reflect.DeepEqual(b1.Sync, b2.Sync) || len(b2.Sync.Users) != 2 {
		t.Fatalf("syncs %+v / %+v", b1.Sync, b2.Sync)
	}
	if s := gh.Requests(); s.Following != 0 || s.User != 1 {
		t.Fatalf("requests %+v: want only GET /user (tokens are cached per node, lists in Redis)", s)
	}
}
