package testkit

import (
	"github.com/presenced/presenced/github"
	"github.com/presenced/presenced/server"
)

// GitHubConfig is a node config with GitHub auth against fake; the authenticator is returned
// too, for tests that look at its counts.
func GitHubConfig(fake *FakeGitHub) (server.Config, *github.Authenticator) {
	c := github.NewClient(fake.URL(), nil)
	a := github.NewAuthenticator(c, github.AuthConfig{})
	return server.Config{Auth: a, Graph: github.NewGraph(c)}, a
}
