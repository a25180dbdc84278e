package github

import "time"

// SetNow replaces the client's clock (and so its authenticators'); call it before first use.
func SetNow(c *Client, now func() time.Time) { c.now = now }

// TokenEntries is how many tokens the client keeps state for.
func TokenEntries(c *Client) int {
	c.mu.Lock()
	defer c.mu.Unlock()
	return len(c.tokens)
}

// SetJoinHook sets a function called when an Authenticate call joins another's verification.
func SetJoinHook(a *Authenticator, fn func()) {
	a.mu.Lock()
	defer a.mu.Unlock()
	a.onJoin = fn
}
