package scim_test

import (
	"encoding/json"
	"net/http"
	"os"
	"path/filepath"
	"testing"

	"github.com/ferryvpn/ferry/authn/scim"
)

// FuzzNormalizePatch: the Entra ID rewrite never panics, and what it
// returns for valid JSON is valid JSON.
func FuzzNormalizePatch(f *testing.F) {
	f.Add([]byte(`{"schemas":["urn:ietf:params:scim:api:messages:2.0:PatchOp"],"Operations":[{"op":"Replace","path":"active","value":"False"}]}`))
	f.Add([]byte(`{"Operations":[{"op":"replace","value":{"active":"True","x":1}}]}`))
	f.Add([]byte(`{"Operations":null}`))
	f.Add([]byte(`[]`))
	f.Fuzz(func(t *testing.T, b []byte) {
		out := scim.NormalizePatch(b)
		if json.Valid(b) && !json.Valid(out) {
			t.Fatalf("valid input %q became invalid %q", b, out)
		}
	})
}

// FuzzRequests sends arbitrary bodies to every write endpoint: the answer
// is never a server error (501 for what is not implemented aside), and
// the service keeps answering.
func FuzzRequests(f *testing.F) {
	files, _ := filepath.Glob("testdata/*.json")
	for _, file := range files {
		raw, _ := os.ReadFile(file)
		var script struct {
			Steps []struct {
				Method string          `json:"method"`
				Body   json.RawMessage `json:"body"`
			} `json:"steps"`
		}
		json.Unmarshal(raw, &script)
		for _, st := range script.Steps {
			if len(st.Body) > 0 {
				f.Add(uint8(0), []byte(st.Body))
				f.Add(uint8(2), []byte(st.Body))
			}
		}
	}
	e := newEnv(f)
	_, got := e.do(f, http.MethodPost, "/Users", []byte(`{"schemas":["urn:ietf:params:scim:schemas:core:2.0:User"],"userName":"fuzz","externalId":"fuzz"}`), e.token.Reveal())
	var u, g struct{ ID string }
	json.Unmarshal(got, &u)
	_, got = e.do(f, http.MethodPost, "/Groups", []byte(`{"schemas":["urn:ietf:params:scim:schemas:core:2.0:Group"],"displayName":"fuzzers","members":[{"value":"`+u.ID+`"}]}`), e.token.Reveal())
	json.Unmarshal(got, &g)
	if u.ID == "" || g.ID == "" {
		f.Fatal("seeding the fuzz target failed")
	}
	f.Fuzz(func(t *testing.T, which uint8, body []byte) {
		targets := []struct{ method, path string }{
			{http.MethodPost, "/Users"},
			{http.MethodPost, "/Groups"},
			{http.MethodPatch, "/Users/" + u.ID},
			{http.MethodPatch, "/Groups/" + g.ID},
			{http.MethodPut, "/Users/" + u.ID},
			{http.MethodPut, "/Groups/" + g.ID},
			{http.MethodPost, "/Users/.search"},
		}
		tg := targets[int(which)%len(targets)]
		status, got := e.do(t, tg.method, tg.path, body, e.token.Reveal())
		if status >= 500 && status != http.StatusNotImplemented {
			t.Fatalf("%s %s with %q: %d %s", tg.method, tg.path, body, status, got)
		}
	})
}
