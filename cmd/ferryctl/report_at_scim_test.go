package main

import (
	"crypto/tls"
	"crypto/x509"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"os"
	"reflect"
	"strings"
	"testing"
	"time"

	"github.com/ferryvpn/ferry/audit"
	"github.com/ferryvpn/ferry/authn"
	"github.com/ferryvpn/ferry/cmd/internal/apitest"
	"github.com/ferryvpn/ferry/cmd/internal/wire"
)

// TestReportEntitlementsAtSCIM: `report entitlements --at TIME` follows
// what the identity provider pushed through SCIM between sign-ins: alice
// signed in with group A, SCIM took A away at t1 — after t1 she no longer
// holds A's profile, before it she does; carol, provisioned by SCIM into A
// and never signed in, holds it from her provisioning until SCIM deleted
// her.
func TestReportEntitlementsAtSCIM(t *testing.T) {
	isolate(t)
	srv := apitest.Start(t)
	signIn(t, srv, srv.Admin(t))
	ctx := t.Context()
	alice := authn.UserKey(apitest.Issuer, "alice-sub")
	carol := authn.UserKey(apitest.Issuer, "carol-sub")
	id := authn.Identity{UserID: alice, Issuer: apitest.Issuer, Subject: "alice-sub", Email: "alice@example.com", Groups: []string{"A"}}
	if _, err := srv.Users.Upsert(ctx, id); err != nil {
		t.Fatal(err)
	}
	if err := srv.Audit.Record(ctx, audit.Event{Type: audit.TypeLogin, Action: authn.ActionLoginOIDC, Outcome: audit.Success,
		Actor: audit.Actor{UserID: alice, Email: id.Email, Groups: id.Groups}, Target: audit.Target{User: alice}}); err != nil {
		t.Fatal(err)
	}
	mustCtl(t, "profile", "create", "pa", "--rule", "10.0.4.0/24 tcp 5432", "--group", "A")

	tok, err := srv.SCIM.RotateToken(ctx, audit.Actor{UserID: "admin"})
	if err != nil {
		t.Fatal(err)
	}
	pem, err := os.ReadFile(srv.CAFile)
	if err != nil {
		t.Fatal(err)
	}
	pool := x509.NewCertPool()
	pool.AppendCertsFromPEM(pem)
	hc := &http.Client{Transport: &http.Transport{TLSClientConfig: &tls.Config{RootCAs: pool}}}
	push := func(method, path, body string) string {
		t.Helper()
		req, err := http.NewRequestWithContext(ctx, method, srv.URL+"/scim/v2"+path, strings.NewReader(body))
		if err != nil {
			t.Fatal(err)
		}
		req.Header.Set("Authorization", "Bearer "+tok.Reveal())
		req.Header.Set("Content-Type", "application/scim+json")
		resp, err := hc.Do(req)
		if err != nil {
			t.Fatal(err)
		}
		defer resp.Body.Close()
		b, _ := io.ReadAll(resp.Body)
		if resp.StatusCode >= 300 {
			t.Fatalf("%s %s: %d %s", method, path, resp.StatusCode, b)
		}
		var res struct{ ID string }
		json.Unmarshal(b, &res)
		return res.ID
	}
	user := func(ext string) string {
		return push(http.MethodPost, "/Users", fmt.Sprintf(`{"schemas":["urn:ietf:params:scim:schemas:core:2.0:User"],"userName":"%s@example.com","externalId":"%s-sub","emails":[{"value":"%s@example.com","primary":true}]}`, ext, ext, ext))
	}
	scimAlice, scimCarol := user("alice"), user("carol")
	group := push(http.MethodPost, "/Groups", fmt.Sprintf(`{"schemas":["urn:ietf:params:scim:schemas:core:2.0:Group"],"displayName":"A","members":[{"value":"%s"},{"value":"%s"}]}`, scimAlice, scimCarol))
	t1 := time.Now()
	push(http.MethodPatch, "/Groups/"+group, fmt.Sprintf(`{"schemas":["urn:ietf:params:scim:api:messages:2.0:PatchOp"],"Operations":[{"op":"remove","path":"members[value eq \"%s\"]"}]}`, scimAlice))
	t2 := time.Now()
	push(http.MethodDelete, "/Users/"+scimCarol, "")
	t3 := time.Now()

	rows := func(at time.Time) ([]string, []string) {
		t.Helper()
		var rep wire.EntitlementsReport
		ctlJSON(t, &rep, "report", "entitlements", "--at", at.UTC().Format(time.RFC3339Nano))
		var out []string
		for _, r := range rep.Rows {
			out = append(out, fmt.Sprintf("%s %s via %s", r.Email, r.Profile, r.Via))
		}
		return out, rep.UnknownUsers
	}
	for _, tc := range []struct {
		name string
		at   time.Time
		want []string
	}{
		{"before SCIM removed alice from A", t1, []string{"alice@example.com pa via group A", "carol@example.com pa via group A"}},
		{"after SCIM removed alice from A", t2, []string{"carol@example.com pa via group A"}},
		{"after SCIM deleted carol", t3, nil},
	} {
		got, unknown := rows(tc.at)
		if !reflect.DeepEqual(got, tc.want) {
			t.Errorf("%s:\n got %q\nwant %q", tc.name, got, tc.want)
		}
		for _, u := range unknown {
			if u == alice || u == carol {
				t.Errorf("%s: %s named unknown", tc.name, u)
			}
		}
	}
}

// TestReportEntitlementsAtUnknownUser: a user record the journal does not
// show by the time asked (here: stored with no event, as records from
// before events carried groups, or whose events were trimmed) is not
// silently left out: unknown_users names it, and the table and CSV carry
// a row saying its entitlements are unknown.
func TestReportEntitlementsAtUnknownUser(t *testing.T) {
	isolate(t)
	srv := apitest.Start(t)
	signIn(t, srv, srv.Admin(t))
	if _, err := srv.Users.Upsert(t.Context(), authn.Identity{UserID: "olduser", Email: "old@example.com", Groups: []string{"A"}}); err != nil {
		t.Fatal(err)
	}
	mustCtl(t, "profile", "create", "pa", "--rule", "10.0.4.0/24 tcp 5432", "--group", "A")
	at := time.Now().UTC().Format(time.RFC3339Nano)
	var rep wire.EntitlementsReport
	ctlJSON(t, &rep, "report", "entitlements", "--at", at)
	if !reflect.DeepEqual(rep.UnknownUsers, []string{"olduser"}) || len(rep.Rows) != 0 {
		t.Errorf("unknown users %q, rows %+v; want [olduser] and no rows", rep.UnknownUsers, rep.Rows)
	}
	for _, out := range []string{mustCtl(t, "report", "entitlements", "--at", at), mustCtl(t, "report", "entitlements", "--at", at, "-o", "csv")} {
		if !strings.Contains(out, "olduser") || !strings.Contains(out, viaUnknown) {
			t.Errorf("output lacks the unknown user's row:\n%s", out)
		}
	}
}
