package server_test

import (
	"fmt"
	"net/http"
	"reflect"
	"testing"
	"testing/synctest"
	"time"

	"github.com/presenced/presenced/testkit"
	"github.com/presenced/presenced/wire"
)

// TestPrivacy: share_project false and visible_to mutual, in virtual time with the product's
// timing. Hidden fields never appear in any frame (raw bytes checked); a follower who is not
// followed back loses sight at once with an x that carries no ts (decision 15) and sees nothing
// more; settings are user-wide, persisted, and published at once (decision 5).
func TestPrivacy(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		// bob follows alice, alice does not follow bob; alice and carol follow each other.
		n := vnode(t, map[string][]string{"bob": {"alice"}, "carol": {"alice"}, "alice": {"carol"}})
		b := vconnect(t, n, wire.Hello{Token: "bob"})
		c := vconnect(t, n, wire.Hello{Token: "carol"})
		a := vconnect(t, n, wire.Hello{Token: "alice", Window: "w1"})
		a2 := vconnect(t, n, wire.Hello{Token: "alice", Window: "w2"})
		b.ExpectRaw(`{"t":"o","id":"alice","s":"Online","a":"Idle"}`)
		c.ExpectRaw(`{"t":"o","id":"alice","s":"Online","a":"Idle"}`)

		// Hidden project: the setting comes from one window, the project from the other.
		a.Send(wire.Privacy{Has: wire.PrivacyShareProject})
		// Barrier: once the pong is back, the setting reached alice's user actor before the
		// status below (sent on another socket). carol's o may come first (alice follows her).
		a.Send(wire.Ping{})
		for f := a.Next(); f != (wire.Pong{}); f = a.Next() {
			if o, ok := f.(wire.Online); !ok || o.ID != "carol" {
				t.Fatalf("alice: want carol's o or pong, got %#v", f)
			}
		}
		a2.Send(status(wire.Coding, "TopSecret", "Go"))
		start := time.Now()
		b.ExpectRaw(`{"t":"u","id":"alice","a":"Coding","l":"Go"}`)
		c.ExpectRaw(`{"t":"u","id":"alice","a":"Coding","l":"Go"}`)
		since(t, start, 2*time.Second)
		a2.Send(wire.Status{Has: wire.FieldProject, Project: "OtherSecret"})
		time.Sleep(time.Minute)
		b.Quiet() // a hidden field's change publishes nothing at all
		b2 := vconnect(t, n, wire.Hello{Token: "bob"})
		if !reflect.DeepEqual(b2.Sync, syncOf(entry("alice", online(wire.Coding, "", "Go")))) {
			t.Fatalf("a new follower window's sync: %+v", b2.Sync)
		}

		// Mutual only: bob loses sight at once, carol (followed back) keeps it.
		a.Send(wire.Privacy{Has: wire.PrivacyVisibleTo, VisibleTo: wire.AudienceMutual})
		start = time.Now()
		b.ExpectRaw(`{"t":"x","id":"alice"}`)
		b2.ExpectRaw(`{"t":"x","id":"alice"}`)
		since(t, start, 0)
		a.Send(status(wire.Debugging, "TopSecret", "Rust"))
		c.ExpectRaw(`{"t":"u","id":"alice","a":"Debugging","l":"Rust"}`)
		b.Quiet()
		b3 := vconnect(t, n, wire.Hello{Token: "bob"})
		if !reflect.DeepEqual(b3.Sync, syncOf(entry("alice", offline(0)))) {
			t.Fatalf("bob's sync shows %+v, want alice offline with no last seen", b3.Sync)
		}

		// Settings survive every window going away and coming back.
		a.Send(wire.Bye{})
		a2.Send(wire.Bye{})
		x := c.Next().(wire.Offline)
		a3 := vconnect(t, n, wire.Hello{Token: "alice"})
		a3.Send(status(wire.Coding, "StillSecret", "Go"))
		c.ExpectRaw(`{"t":"o","id":"alice","s":"Online","a":"Coding","l":"Go"}`)
		b.Quiet()

		// Visible to all followers again: bob gets o with the current state, at once.
		a3.Send(wire.Privacy{Has: wire.PrivacyVisibleTo | wire.PrivacyShareProject, VisibleTo: wire.AudienceFollowers, ShareProject: true})
		start = time.Now()
		b.ExpectRaw(`{"t":"o","id":"alice","s":"Online","a":"Coding","p":"StillSecret","l":"Go"}`)
		c.ExpectRaw(`{"t":"u","id":"alice","p":"StillSecret"}`)
		since(t, start, 0)
		if x.TS == 0 {
			t.Fatal("carol's x had no last seen")
		}
	})
}

// TestGitHubRequestsPerHour counts, against the fake, what connected users cost GitHub in
// steady state: one revalidation per --graph-refresh (10 min), one request per page, all 304s
// (no rate limit spent), and no GET /user while the sockets stay up.
func TestGitHubRequestsPerHour(t *testing.T) {
	gh := fakeNet(t) // outside the bubble: its server goroutines are not the bubble's
	const users, follows = 20, 150
	for i := range follows {
		gh.AddUser(int64(5000+i), fmt.Sprintf("dev-%d", i))
	}
	for i := range users {
		id := int64(9000 + i)
		gh.AddUser(id, fmt.Sprintf("user-%d", i), fmt.Sprintf("tok-user-%d", i))
		ids := make([]int64, follows)
		for j := range ids {
			ids[j] = int64(5000 + j)
		}
		gh.SetFollowing(id, ids...)
	}
	synctest.Test(t, func(t *testing.T) {
		cfg, _ := testkit.GitHubConfigWith(gh, &http.Client{Transport: gh.Transport()})
		n := vnodeWith(t, cfg)
		for i := range users {
			vconnect(t, n, wire.Hello{Token: fmt.Sprintf("tok-user-%d", i)})
		}
		gh.ResetStats()
		time.Sleep(time.Hour + time.Second)
		synctest.Wait()
		s := gh.Requests()
		perUser := float64(s.All) / users
		t.Logf("steady state: %d requests for %d users in one hour = %.1f per user per hour (%d of them 304)", s.All, users, perUser, s.NotModified)
		// 6 refreshes × 2 pages (150 follows at 100 a page).
		if s.All != users*6*2 || s.NotModified != s.All || s.User != 0 {
			t.Fatalf("requests %+v, want %d, all 304, no GET /user", s, users*12)
		}
	})
}
