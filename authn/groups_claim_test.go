package authn_test

import (
	"slices"
	"testing"

	"github.com/ferryvpn/ferry/authn"
	"github.com/ferryvpn/ferry/authn/flowtest"
)

// TestGroupsFromUserinfo: an ID token without the groups claim does not
// silently make everyone a plain user: the groups are asked of the
// userinfo endpoint (issue: a missing groups claim made everyone a plain
// user with no warning anywhere).
func TestGroupsFromUserinfo(t *testing.T) {
	e := flowtest.Start(t, flowtest.Options{Nodes: 1})
	e.SetRewrite(e.Resign(func(c map[string]any) { delete(c, "groups") }))
	sessionToken(t, e, "alice")
	u, ok, err := e.Users[0].Get(t.Context(), e.UserID("devop-alice"))
	if err != nil || !ok {
		t.Fatalf("alice: %v %v", ok, err)
	}
	if !slices.Contains(u.Groups, "engineering") || u.GroupsClaimMissing {
		t.Errorf("groups from userinfo: %+v", u)
	}
}

// TestGroupsClaimMissingIsVisible: when neither the ID token nor userinfo
// carries the configured groups claim, the user record says so (shown by
// ferryctl user show) instead of quietly holding no groups.
func TestGroupsClaimMissingIsVisible(t *testing.T) {
	e := flowtest.Start(t, flowtest.Options{Nodes: 1, OIDC: func(c *authn.OIDCConfig) { c.GroupsClaim = "roles" }})
	sessionToken(t, e, "alice")
	u, ok, err := e.Users[0].Get(t.Context(), e.UserID("devop-alice"))
	if err != nil || !ok {
		t.Fatalf("alice: %v %v", ok, err)
	}
	if !u.GroupsClaimMissing || len(u.Groups) != 0 {
		t.Errorf("a sign-in without the groups claim: %+v", u)
	}
}
