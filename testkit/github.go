package testkit

import (
	"net/http"

	"github.com/presenced/presenced/github"
	"github.com/presenced/presenced/server"
)

// GitHubConfig is a node config with GitHub auth against fake; the authenticator is returned
// too, for tests that look at its counts.
func GitHubConfig(fake *FakeGitHub) (server.Config, *github.Authenticator) {
	return GitHubConfigWith(fake, nil)
}

// GitHubConfigWith is GitHubConfig with this HTTP client (e.g. over fake.Transport()).
func GitHubConfigWith(fake *FakeGitHub, hc *http.Client) (server.Config, *github.Authenticator) {
	c := github.NewClient(fake.URL(), hc)
	a := github.NewAuthenticator(c, github.AuthConfig{})
	return server.Config{Auth: a, Graph: github.NewGraph(c)}, a
}
