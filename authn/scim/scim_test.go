package scim_test

import (
	"bytes"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"net/http/httptest"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"

	"github.com/ferryvpn/ferry/audit"
	"github.com/ferryvpn/ferry/authn"
	"github.com/ferryvpn/ferry/authn/authntest"
	"github.com/ferryvpn/ferry/authn/scim"
	"github.com/ferryvpn/ferry/cluster/clustertest"
	"github.com/ferryvpn/ferry/cluster/seal"
)

const testIssuer = "https://idp.example.com"

func userKey(ext string) string { return authn.UserKey(testIssuer, ext) }

type env struct {
	svc   *scim.Service
	users *authn.Users
	rec   *authntest.Recorder
	srv   *httptest.Server
	token scim.Token
}

func newEnv(t testing.TB) *env {
	t.Helper()
	c := clustertest.Start(t, 1, clustertest.Options{Fast: true})
	key, err := seal.GenerateKey()
	if err != nil {
		t.Fatal(err)
	}
	rec := &authntest.Recorder{}
	users := authn.NewUsers(c.Node(0), nil, rec)
	svc, err := scim.New(scim.Config{Store: c.Node(0), Key: key, Users: users, Recorder: rec, Issuer: testIssuer})
	if err != nil {
		t.Fatal(err)
	}
	tok, err := svc.RotateToken(t.Context(), audit.Actor{UserID: "admin"})
	if err != nil {
		t.Fatal(err)
	}
	mux := http.NewServeMux()
	mux.Handle(scim.PathPrefix+"/", svc)
	srv := httptest.NewServer(mux)
	t.Cleanup(srv.Close)
	return &env{svc: svc, users: users, rec: rec, srv: srv, token: tok}
}

// do sends one request with the bearer token and returns status and body.
func (e *env) do(t testing.TB, method, path string, body []byte, token string) (int, []byte) {
	t.Helper()
	var rd io.Reader
	if body != nil {
		rd = bytes.NewReader(body)
	}
	req, err := http.NewRequestWithContext(t.Context(), method, e.srv.URL+scim.PathPrefix+path, rd)
	if err != nil {
		t.Fatal(err)
	}
	req.Header.Set("Content-Type", "application/scim+json")
	if token != "" {
		req.Header.Set("Authorization", "Bearer "+token)
	}
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	b, _ := io.ReadAll(resp.Body)
	return resp.StatusCode, b
}

type step struct {
	Name      string            `json:"name"`
	Method    string            `json:"method"`
	Path      string            `json:"path"`
	Body      json.RawMessage   `json:"body"`
	Status    int               `json:"status"`
	Save      map[string]string `json:"save"`
	Expect    map[string]any    `json:"expect"`
	NoContent bool              `json:"nocontent"`
	User      *struct {
		External string    `json:"external"`
		Email    string    `json:"email"`
		Name     string    `json:"name"`
		Active   *bool     `json:"active"`
		Groups   *[]string `json:"groups"`
	} `json:"user"`
}

// TestRecordedExchanges replays the RFC 7644 examples and the request
// shapes Okta and Entra ID document, in order, checking each answer and
// what reached ferry's user record.
func TestRecordedExchanges(t *testing.T) {
	files, err := filepath.Glob("testdata/*.json")
	if err != nil || len(files) == 0 {
		t.Fatalf("no testdata: %v", err)
	}
	for _, f := range files {
		t.Run(strings.TrimSuffix(filepath.Base(f), ".json"), func(t *testing.T) {
			raw, err := os.ReadFile(f)
			if err != nil {
				t.Fatal(err)
			}
			var script struct {
				Steps []step `json:"steps"`
			}
			if err := json.Unmarshal(raw, &script); err != nil {
				t.Fatal(err)
			}
			e := newEnv(t)
			vars := map[string]string{}
			subst := func(s string) string {
				for k, v := range vars {
					s = strings.ReplaceAll(s, "{"+k+"}", v)
				}
				return s
			}
			for _, st := range script.Steps {
				var body []byte
				if len(st.Body) > 0 {
					body = []byte(subst(string(st.Body)))
				}
				status, got := e.do(t, st.Method, subst(st.Path), body, e.token.Reveal())
				if status != st.Status {
					t.Fatalf("%s: status %d, want %d: %s", st.Name, status, st.Status, got)
				}
				if st.NoContent && len(got) != 0 {
					t.Errorf("%s: body on 204: %s", st.Name, got)
				}
				var resp map[string]any
				if len(got) > 0 {
					if err := json.Unmarshal(got, &resp); err != nil {
						t.Fatalf("%s: answer not JSON: %v: %s", st.Name, err, got)
					}
				}
				if status >= 400 {
					if sch, _ := resp["schemas"].([]any); len(sch) != 1 || sch[0] != "urn:ietf:params:scim:api:messages:2.0:Error" {
						t.Errorf("%s: error body without the Error schema: %s", st.Name, got)
					}
				}
				for k, want := range st.Expect {
					if k == "startIndex" || k == "totalResults" {
						want = want.(float64)
					}
					if gotv := resp[k]; !equalJSON(gotv, want) {
						t.Errorf("%s: %s = %v, want %v", st.Name, k, gotv, want)
					}
				}
				for name, field := range st.Save {
					v, _ := resp[field].(string)
					if v == "" {
						t.Fatalf("%s: no %s in %s", st.Name, field, got)
					}
					vars[name] = v
				}
				if u := st.User; u != nil {
					rec, ok, err := e.users.Get(t.Context(), userKey(u.External))
					if err != nil || !ok {
						t.Fatalf("%s: ferry user %s: %v, %v", st.Name, u.External, ok, err)
					}
					if u.Email != "" && rec.Email != u.Email {
						t.Errorf("%s: email %q, want %q", st.Name, rec.Email, u.Email)
					}
					if u.Name != "" && rec.Name != u.Name {
						t.Errorf("%s: name %q, want %q", st.Name, rec.Name, u.Name)
					}
					if u.Active != nil && rec.Disabled == *u.Active {
						t.Errorf("%s: disabled %v, want active %v", st.Name, rec.Disabled, *u.Active)
					}
					if u.Groups != nil && !slices.Equal(rec.Groups, *u.Groups) && !(len(rec.Groups) == 0 && len(*u.Groups) == 0) {
						t.Errorf("%s: groups %q, want %q", st.Name, rec.Groups, *u.Groups)
					}
				}
			}
			// Every write is audited, with its outcome.
			writes := 0
			for _, st := range script.Steps {
				if st.Method != http.MethodGet {
					writes++
				}
			}
			scimEvents := e.rec.Filter(func(ev audit.Event) bool {
				return ev.Type == audit.TypeAdmin && strings.HasPrefix(ev.Action, "scim.") && ev.Action != scim.ActionRotateToken
			})
			if len(scimEvents) != writes {
				t.Errorf("%d scim audit events for %d writes", len(scimEvents), writes)
			}
		})
	}
}

func equalJSON(a, b any) bool {
	x, _ := json.Marshal(a)
	y, _ := json.Marshal(b)
	return bytes.Equal(x, y)
}

func newEnvNoToken(t *testing.T) *env {
	t.Helper()
	c := clustertest.Start(t, 1, clustertest.Options{Fast: true})
	key, _ := seal.GenerateKey()
	rec := &authntest.Recorder{}
	users := authn.NewUsers(c.Node(0), nil, rec)
	svc, err := scim.New(scim.Config{Store: c.Node(0), Key: key, Users: users, Recorder: rec, Issuer: testIssuer})
	if err != nil {
		t.Fatal(err)
	}
	mux := http.NewServeMux()
	mux.Handle(scim.PathPrefix+"/", svc)
	srv := httptest.NewServer(mux)
	t.Cleanup(srv.Close)
	return &env{svc: svc, users: users, rec: rec, srv: srv}
}

// TestSignInGroupsStandWithoutPushedGroups: a provider that pushes users
// but no groups leaves sign-ins' groups alone; once it pushes groups, SCIM
// decides them.
func TestSignInGroupsStandWithoutPushedGroups(t *testing.T) {
	e := newEnv(t)
	if _, err := e.users.Upsert(t.Context(), authn.Identity{UserID: userKey("s1"), Issuer: testIssuer, Subject: "s1", Groups: []string{"eng"}}); err != nil {
		t.Fatal(err)
	}
	user := `{"schemas":["urn:ietf:params:scim:schemas:core:2.0:User"],"userName":"s1@example.com","externalId":"s1"}`
	status, got := e.do(t, http.MethodPost, "/Users", []byte(user), e.token.Reveal())
	if status != 201 {
		t.Fatalf("create: %d %s", status, got)
	}
	if u, _, _ := e.users.Get(t.Context(), userKey("s1")); !slices.Equal(u.Groups, []string{"eng"}) {
		t.Errorf("groups %q after a user push without groups, want [eng]", u.Groups)
	}
	var res struct{ ID string }
	json.Unmarshal(got, &res)
	group := `{"schemas":["urn:ietf:params:scim:schemas:core:2.0:Group"],"displayName":"ops","members":[{"value":"` + res.ID + `"}]}`
	if status, got := e.do(t, http.MethodPost, "/Groups", []byte(group), e.token.Reveal()); status != 201 {
		t.Fatalf("group: %d %s", status, got)
	}
	if u, _, _ := e.users.Get(t.Context(), userKey("s1")); !slices.Equal(u.Groups, []string{"ops"}) {
		t.Errorf("groups %q once groups are pushed, want [ops]", u.Groups)
	}
}

// TestAdminDisableSticks: the provider saying active: true does not undo
// an administrator's disable; it undoes its own.
func TestAdminDisableSticks(t *testing.T) {
	e := newEnv(t)
	user := `{"schemas":["urn:ietf:params:scim:schemas:core:2.0:User"],"userName":"d@example.com","externalId":"d","active":true}`
	status, got := e.do(t, http.MethodPost, "/Users", []byte(user), e.token.Reveal())
	if status != 201 {
		t.Fatalf("create: %d %s", status, got)
	}
	var res struct{ ID string }
	json.Unmarshal(got, &res)
	patch := func(active bool) {
		t.Helper()
		body := fmt.Sprintf(`{"schemas":["urn:ietf:params:scim:api:messages:2.0:PatchOp"],"Operations":[{"op":"replace","path":"active","value":%v}]}`, active)
		if status, got := e.do(t, http.MethodPatch, "/Users/"+res.ID, []byte(body), e.token.Reveal()); status != 200 {
			t.Fatalf("patch: %d %s", status, got)
		}
	}
	disabled := func() bool {
		u, _, _ := e.users.Get(t.Context(), userKey("d"))
		return u.Disabled
	}
	patch(false)
	patch(true)
	if disabled() {
		t.Error("SCIM could not undo its own disable")
	}
	if err := e.users.SetDisabled(t.Context(), userKey("d"), true, audit.Actor{UserID: "admin", Email: "admin@example.com"}, authn.Source{}); err != nil {
		t.Fatal(err)
	}
	patch(true)
	if !disabled() {
		t.Error("SCIM active: true undid an administrator's disable")
	}
}
