package api_test

import (
	"net/http"
	"testing"

	"github.com/ferryvpn/ferry/authn"
	"github.com/ferryvpn/ferry/cmd/internal/apitest"
	"github.com/ferryvpn/ferry/cmd/internal/client"
)

// An administrator removed from the admin group (as the IdP reports at
// revalidation, a sign-in or a SCIM push) is refused the next admin call
// on the session she already holds, on every node.
func TestDemotedAdminRefusedOnOldSession(t *testing.T) {
	nodes := apitest.StartCluster(t, 3)
	id := authn.Identity{UserID: "root", Email: "root@example.com", Groups: []string{apitest.AdminGroup}}
	tok := nodes[0].Token(t, id)
	if _, err := clientFor(t, nodes[1], tok).Users(bg(t)); err != nil {
		t.Fatalf("admin call before the demotion: %v", err)
	}
	id.Groups = nil
	if _, err := nodes[2].Users.Provision(bg(t), id, "revalidation"); err != nil {
		t.Fatal(err)
	}
	for i, n := range nodes {
		if _, err := clientFor(t, n, tok).Users(bg(t)); client.StatusOf(err) != http.StatusForbidden {
			t.Errorf("node %d: admin call on the demoted admin's old session: %v, want 403", i, err)
		}
	}
}

// A user key (issuer#subject, with slashes and '#') works as a path
// element of the user API.
func TestUserKeyInPath(t *testing.T) {
	s := apitest.Start(t)
	key := authn.UserKey("https://idp.example.com/oauth2/default", "00u1/ab#c")
	s.Token(t, authn.Identity{UserID: key, Email: "kay@example.com"})
	u, err := clientFor(t, s, s.Admin(t)).User(bg(t), key)
	if err != nil || u.ID != key || u.Email != "kay@example.com" {
		t.Fatalf("User(%q) = %+v, %v", key, u, err)
	}
}
