package scim_test

import (
	"encoding/json"
	"fmt"
	"net/http"
	"strings"
	"testing"

	"github.com/ferryvpn/ferry/audit"
	"github.com/ferryvpn/ferry/authn/scim"
)

func TestBearerToken(t *testing.T) {
	e := newEnv(t)
	old := e.token.Reveal()
	newTok, err := e.svc.RotateToken(t.Context(), audit.Actor{UserID: "admin"})
	if err != nil {
		t.Fatal(err)
	}
	for _, tc := range []struct {
		name   string
		header string
		status int
		reason string
	}{
		{"no header", "", 401, "no bearer token"},
		{"basic scheme", "Basic " + newTok.Reveal(), 401, "no bearer token"},
		{"wrong token", "Bearer ferry-scim-AAAA", 401, "wrong bearer token"},
		{"rotated-out token", "Bearer " + old, 401, "wrong bearer token"},
		{"current token", "Bearer " + newTok.Reveal(), 200, ""},
		{"scheme case-insensitive", "bearer " + newTok.Reveal(), 200, ""},
	} {
		t.Run(tc.name, func(t *testing.T) {
			before := len(e.rec.Events())
			req, _ := http.NewRequestWithContext(t.Context(), http.MethodGet, e.srv.URL+scim.PathPrefix+"/Users", nil)
			if tc.header != "" {
				req.Header.Set("Authorization", tc.header)
			}
			resp, err := http.DefaultClient.Do(req)
			if err != nil {
				t.Fatal(err)
			}
			defer resp.Body.Close()
			if resp.StatusCode != tc.status {
				t.Fatalf("status %d, want %d", resp.StatusCode, tc.status)
			}
			if tc.status != 401 {
				return
			}
			if !strings.HasPrefix(resp.Header.Get("WWW-Authenticate"), "Bearer") {
				t.Errorf("WWW-Authenticate %q", resp.Header.Get("WWW-Authenticate"))
			}
			var body map[string]any
			if err := json.NewDecoder(resp.Body).Decode(&body); err != nil {
				t.Fatal(err)
			}
			if body["status"] != "401" {
				t.Errorf("error body %v: want status \"401\" (RFC 7644 section 3.12)", body)
			}
			evs := e.rec.Events()[before:]
			if len(evs) != 1 || evs[0].Action != scim.ActionRefused || evs[0].Outcome != audit.Failure || evs[0].Reason != tc.reason {
				t.Errorf("audit %+v, want one %s failure %q", evs, scim.ActionRefused, tc.reason)
			}
			if s := fmt.Sprint(evs); strings.Contains(s, newTok.Reveal()) || strings.Contains(s, old) {
				t.Error("a token reached the audit record")
			}
		})
	}
	info, err := e.svc.TokenInfo(t.Context())
	if err != nil || !info.Set || info.RotatedBy != "admin" {
		t.Errorf("TokenInfo = %+v, %v", info, err)
	}
	if fmt.Sprint(newTok) != "[redacted]" || fmt.Sprintf("%#v", newTok) != "[redacted]" {
		t.Error("Token prints")
	}
}

func TestNoTokenRefusesEverything(t *testing.T) {
	e := newEnv(t)
	// A fresh service on a store without a token.
	c := newEnvNoToken(t)
	status, _ := c.do(t, http.MethodGet, "/Users", nil, e.token.Reveal())
	if status != 401 {
		t.Fatalf("status %d without a configured token", status)
	}
}

func TestDiscovery(t *testing.T) {
	e := newEnv(t)
	for _, tc := range []struct{ path, want string }{
		{"/ServiceProviderConfig", `"patch":{"supported":true}`},
		{"/ResourceTypes", `"endpoint":"/Users"`},
		{"/ResourceTypes", `"endpoint":"/Groups"`},
		{"/Schemas", `urn:ietf:params:scim:schemas:core:2.0:User`},
		{"/Schemas", `urn:ietf:params:scim:schemas:core:2.0:Group`},
		{"/Schemas/urn:ietf:params:scim:schemas:core:2.0:User", `"name":"userName"`},
	} {
		status, body := e.do(t, http.MethodGet, tc.path, nil, e.token.Reveal())
		if status != 200 || !strings.Contains(string(body), tc.want) {
			t.Errorf("GET %s = %d %s, want 200 with %s", tc.path, status, body, tc.want)
		}
	}
}

func TestPagination(t *testing.T) {
	e := newEnv(t)
	for i := range 7 {
		body := fmt.Sprintf(`{"schemas":["urn:ietf:params:scim:schemas:core:2.0:User"],"userName":"u%d@example.com","externalId":"ext-%d"}`, i, i)
		if status, got := e.do(t, http.MethodPost, "/Users", []byte(body), e.token.Reveal()); status != 201 {
			t.Fatalf("create %d: %d %s", i, status, got)
		}
	}
	seen := map[string]bool{}
	for start := 1; start <= 7; start += 3 {
		status, got := e.do(t, http.MethodGet, fmt.Sprintf("/Users?startIndex=%d&count=3", start), nil, e.token.Reveal())
		if status != 200 {
			t.Fatalf("page at %d: %d %s", start, status, got)
		}
		var lr struct {
			TotalResults, StartIndex, ItemsPerPage int
			Resources                              []struct{ ID string }
		}
		if err := json.Unmarshal(got, &lr); err != nil {
			t.Fatal(err)
		}
		if lr.TotalResults != 7 || lr.StartIndex != start {
			t.Errorf("page at %d: total %d start %d", start, lr.TotalResults, lr.StartIndex)
		}
		for _, r := range lr.Resources {
			if seen[r.ID] {
				t.Errorf("user %s on two pages", r.ID)
			}
			seen[r.ID] = true
		}
	}
	if len(seen) != 7 {
		t.Errorf("pages held %d users, want 7", len(seen))
	}
	if status, _ := e.do(t, http.MethodGet, "/Users?count=abc", nil, e.token.Reveal()); status != 400 {
		t.Errorf("count=abc: %d, want 400", status)
	}
}

func TestRefusedWrites(t *testing.T) {
	e := newEnv(t)
	create := `{"schemas":["urn:ietf:params:scim:schemas:core:2.0:User"],"userName":"a@example.com","externalId":"a"}`
	status, got := e.do(t, http.MethodPost, "/Users", []byte(create), e.token.Reveal())
	if status != 201 {
		t.Fatalf("create: %d %s", status, got)
	}
	var u struct{ ID string }
	json.Unmarshal(got, &u)
	for _, tc := range []struct {
		name, method, path, body string
		status                   int
		scimType                 string
	}{
		{"no externalId", "POST", "/Users", `{"schemas":["urn:ietf:params:scim:schemas:core:2.0:User"],"userName":"b@example.com"}`, 400, "invalidValue"},
		{"duplicate externalId", "POST", "/Users", `{"schemas":["urn:ietf:params:scim:schemas:core:2.0:User"],"userName":"c@example.com","externalId":"a"}`, 409, "uniqueness"},
		{"malformed JSON", "POST", "/Users", `{"schemas":`, 400, "invalidSyntax"},
		{"userName of the wrong type", "POST", "/Users", `{"schemas":["urn:ietf:params:scim:schemas:core:2.0:User"],"userName":42,"externalId":"d"}`, 400, "invalidValue"},
		{"externalId changed", "PATCH", "/Users/" + u.ID, `{"schemas":["urn:ietf:params:scim:api:messages:2.0:PatchOp"],"Operations":[{"op":"replace","path":"externalId","value":"other"}]}`, 400, "mutability"},
		{"patch without schema", "PATCH", "/Users/" + u.ID, `{"Operations":[{"op":"replace","path":"active","value":false}]}`, 400, "invalidValue"},
		{"patch unknown op", "PATCH", "/Users/" + u.ID, `{"schemas":["urn:ietf:params:scim:api:messages:2.0:PatchOp"],"Operations":[{"op":"move","path":"active","value":false}]}`, 400, "invalidValue"},
		{"remove without path", "PATCH", "/Users/" + u.ID, `{"schemas":["urn:ietf:params:scim:api:messages:2.0:PatchOp"],"Operations":[{"op":"remove"}]}`, 400, "noTarget"},
		{"active not boolean", "PATCH", "/Users/" + u.ID, `{"schemas":["urn:ietf:params:scim:api:messages:2.0:PatchOp"],"Operations":[{"op":"replace","path":"active","value":"maybe"}]}`, 400, "invalidValue"},
		{"unknown user", "DELETE", "/Users/ffffffffffffffffffffffffffffffff", "", 404, ""},
		{"group without name", "POST", "/Groups", `{"schemas":["urn:ietf:params:scim:schemas:core:2.0:Group"]}`, 400, "invalidValue"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			before := len(e.rec.Events())
			var body []byte
			if tc.body != "" {
				body = []byte(tc.body)
			}
			status, got := e.do(t, tc.method, tc.path, body, e.token.Reveal())
			if status != tc.status {
				t.Fatalf("status %d, want %d: %s", status, tc.status, got)
			}
			var eb map[string]any
			if err := json.Unmarshal(got, &eb); err != nil {
				t.Fatalf("error body: %v: %s", err, got)
			}
			if tc.scimType != "" && eb["scimType"] != tc.scimType {
				t.Errorf("scimType %v, want %s: %s", eb["scimType"], tc.scimType, got)
			}
			evs := e.rec.Events()[before:]
			if len(evs) != 1 || evs[0].Outcome != audit.Failure || !strings.HasPrefix(evs[0].Action, "scim.") {
				t.Errorf("audit %+v, want one scim failure", evs)
			}
		})
	}
	// Nothing of that changed the user.
	rec, _, _ := e.users.Get(t.Context(), userKey("a"))
	if rec.Disabled {
		t.Error("a refused write disabled the user")
	}
}

func TestBodyLimit(t *testing.T) {
	e := newEnv(t)
	big := `{"schemas":["urn:ietf:params:scim:schemas:core:2.0:User"],"userName":"x","externalId":"x","displayName":"` + strings.Repeat("a", scim.MaxBodyBytes) + `"}`
	if status, _ := e.do(t, http.MethodPost, "/Users", []byte(big), e.token.Reveal()); status != http.StatusRequestEntityTooLarge {
		t.Errorf("oversized body: %d", status)
	}
}

func TestExternalIDBounds(t *testing.T) {
	e := newEnv(t)
	for name, ext := range map[string]string{"too long": strings.Repeat("x", 300), "control character": "a\u0007b"} {
		js, _ := json.Marshal(ext)
		body := fmt.Sprintf(`{"schemas":["urn:ietf:params:scim:schemas:core:2.0:User"],"userName":"u@example.com","externalId":%s}`, js)
		status, got := e.do(t, http.MethodPost, "/Users", []byte(body), e.token.Reveal())
		if status != 400 || !strings.Contains(string(got), "invalidValue") {
			t.Errorf("%s: %d %s", name, status, got)
		}
	}
	// Nothing was kept: the userName is free.
	body := `{"schemas":["urn:ietf:params:scim:schemas:core:2.0:User"],"userName":"u@example.com","externalId":"ok"}`
	if status, got := e.do(t, http.MethodPost, "/Users", []byte(body), e.token.Reveal()); status != 201 {
		t.Errorf("create after refusals: %d %s", status, got)
	}
}
