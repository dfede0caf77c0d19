package scim_test

import (
	"encoding/json"
	"fmt"
	"net/http"
	"slices"
	"testing"

	"github.com/ferryvpn/ferry/audit"
	"github.com/ferryvpn/ferry/authn"
)

// TestChangesRecordResultingGroups: every change SCIM makes to a ferry
// user record — provisioning a user who never signed in, a group
// membership added or removed, a group renamed — is in the journal with
// the record's resulting email and groups (a user.provision event per
// user), so who could reach what at a past time can be answered from the
// journal alone. A change that changes nothing records nothing.
func TestChangesRecordResultingGroups(t *testing.T) {
	e := newEnv(t)
	tok := e.token.Reveal()
	create := func(ext string) string {
		t.Helper()
		body := fmt.Sprintf(`{"schemas":["urn:ietf:params:scim:schemas:core:2.0:User"],"userName":"%s@example.com","externalId":"%s","emails":[{"value":"%s@example.com","primary":true}]}`, ext, ext, ext)
		status, got := e.do(t, http.MethodPost, "/Users", []byte(body), tok)
		if status != http.StatusCreated {
			t.Fatalf("create %s: %d %s", ext, status, got)
		}
		var res struct{ ID string }
		json.Unmarshal(got, &res)
		return res.ID
	}
	// last returns what the last user.provision event of ext said.
	last := func(ext string) (string, []string, int) {
		t.Helper()
		evs := e.rec.Filter(func(ev audit.Event) bool { return ev.Action == authn.ActionProvision && ev.Target.User == userKey(ext) })
		if len(evs) == 0 {
			t.Fatalf("no user.provision event for %s", ext)
		}
		_, email, groups, known, ok := authn.ProvisionedFrom(&evs[len(evs)-1])
		if !ok || !known {
			t.Fatalf("user.provision event of %s without its groups: %+v", ext, evs[len(evs)-1])
		}
		return email, groups, len(evs)
	}
	a, b := create("pa"), create("pb")
	if email, groups, n := last("pa"); email != "pa@example.com" || len(groups) != 0 || n != 1 {
		t.Errorf("provisioned: %q %q (%d events), want pa@example.com, no groups, 1 event", email, groups, n)
	}
	group := fmt.Sprintf(`{"schemas":["urn:ietf:params:scim:schemas:core:2.0:Group"],"displayName":"A","members":[{"value":"%s"},{"value":"%s"}]}`, a, b)
	status, got := e.do(t, http.MethodPost, "/Groups", []byte(group), tok)
	if status != http.StatusCreated {
		t.Fatalf("group: %d %s", status, got)
	}
	var g struct{ ID string }
	json.Unmarshal(got, &g)
	for _, ext := range []string{"pa", "pb"} {
		if _, groups, _ := last(ext); !slices.Equal(groups, []string{"A"}) {
			t.Errorf("%s after the group push: %q, want [A]", ext, groups)
		}
	}
	// Removing pa from A changes pa's record only.
	patch := fmt.Sprintf(`{"schemas":["urn:ietf:params:scim:api:messages:2.0:PatchOp"],"Operations":[{"op":"remove","path":"members[value eq \"%s\"]"}]}`, a)
	if status, got := e.do(t, http.MethodPatch, "/Groups/"+g.ID, []byte(patch), tok); status != http.StatusOK && status != http.StatusNoContent {
		t.Fatalf("patch: %d %s", status, got)
	}
	if _, groups, _ := last("pa"); len(groups) != 0 {
		t.Errorf("pa after removal from A: %q, want none", groups)
	}
	_, _, before := last("pb")
	// Renaming A regroups its remaining member.
	rename := `{"schemas":["urn:ietf:params:scim:api:messages:2.0:PatchOp"],"Operations":[{"op":"replace","path":"displayName","value":"B"}]}`
	if status, got := e.do(t, http.MethodPatch, "/Groups/"+g.ID, []byte(rename), tok); status != http.StatusOK && status != http.StatusNoContent {
		t.Fatalf("rename: %d %s", status, got)
	}
	if _, groups, n := last("pb"); !slices.Equal(groups, []string{"B"}) || n != before+1 {
		t.Errorf("pb after the rename: %q (%d events, %d before), want [B] in one more event", groups, n, before)
	}
	// The same push again changes nothing and records no user.provision.
	if status, got := e.do(t, http.MethodPatch, "/Groups/"+g.ID, []byte(rename), tok); status != http.StatusOK && status != http.StatusNoContent {
		t.Fatalf("rename again: %d %s", status, got)
	}
	if _, _, n := last("pb"); n != before+1 {
		t.Errorf("an unchanged push recorded a user.provision event (%d, want %d)", n, before+1)
	}
}
