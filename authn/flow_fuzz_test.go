package authn

import (
	"bytes"
	"errors"
	"fmt"
	"net/url"
	"strings"
	"testing"
)

const fuzzChallenge = "E9Melhoa2OwvFrEMTJguCHaoeK1t8URWbuGJSstw-cM"

func FuzzParseLoginRequest(f *testing.F) {
	for _, s := range []string{
		"",
		"client=browser",
		"client=desktop&redirect_uri=http%3A%2F%2F127.0.0.1%3A8765%2Fcallback&code_challenge=" + fuzzChallenge + "&code_challenge_method=S256&state=abc",
		"client=desktop&redirect_uri=http%3A%2F%2F%5B%3A%3A1%5D%3A1%2Fcallback&code_challenge=" + fuzzChallenge + "&code_challenge_method=S256&state=a.b~c&admin=1",
		"client=desktop&redirect_uri=http%3A%2F%2F127.0.0.1%3A08765%2Fcallback",
		"admin=1&admin=0",
		"client=desktop&redirect_uri=http://127.0.0.1:65536/callback",
		"client=desktop&redirect_uri=http://127.0.0.1:1/callback%2F..",
	} {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, raw string) {
		q, err := url.ParseQuery(raw)
		if err != nil {
			return
		}
		req, err := parseLoginRequest(q)
		if err != nil {
			return
		}
		d := req.desktop
		if d == nil {
			if req.admin || (q.Get("client") != "" && q.Get("client") != "browser") {
				t.Fatalf("browser request accepted with %q", raw)
			}
			return
		}
		if _, err := checkLoopbackRedirect(d.RedirectURI); err != nil {
			t.Fatalf("accepted redirect %q fails its own check: %v", d.RedirectURI, err)
		}
		u, err := url.Parse(d.RedirectURI)
		if err != nil || u.Scheme != "http" || (u.Hostname() != "127.0.0.1" && u.Hostname() != "::1") || u.Path != PathCallback || u.RawQuery != "" || u.User != nil {
			t.Fatalf("accepted redirect %q is not a loopback callback", d.RedirectURI)
		}
		if len(d.Challenge) != s256ChallengeLen || !isBase64URL(d.Challenge) {
			t.Fatalf("accepted challenge %q", d.Challenge)
		}
		if d.State == "" || len(d.State) > maxClientState || !isUnreserved(d.State) {
			t.Fatalf("accepted state %q", d.State)
		}
		// What we send back must stay a loopback URL with our parameters.
		back, err := url.Parse(loopbackURL(d, "code"))
		if err != nil || back.Host != u.Host || back.Query().Get("state") != d.State {
			t.Fatalf("loopback URL for %q: %v", raw, err)
		}
	})
}

func FuzzDecodeTokenRequest(f *testing.F) {
	for _, s := range []string{
		`{"code":"abc","code_verifier":"` + strings.Repeat("a", 43) + `","redirect_uri":"http://127.0.0.1:1/callback"}`,
		`{}`, `null`, `[]`, `{"code":1}`, `{"code":"a"}{"code":"b"}`, `{"code":"a","extra":true}`,
		`{"code":"a\u0000b"}`, `{"code":"` + strings.Repeat("A", 100) + `"}`,
	} {
		f.Add([]byte(s))
	}
	f.Fuzz(func(t *testing.T, body []byte) {
		req, err := decodeTokenRequest(bytes.NewReader(body))
		if err != nil {
			return
		}
		if req.Code == "" || len(req.Code) > maxLoopbackCode || !isBase64URL(req.Code) {
			t.Fatalf("accepted code %q", req.Code)
		}
		if len(req.CodeVerifier) > maxVerifierLen || len(req.RedirectURI) > maxRedirectURI {
			t.Fatalf("accepted oversized fields from %q", body)
		}
		if len(body) > maxTokenBody+1 {
			t.Fatalf("accepted a body of %d bytes", len(body))
		}
	})
}

func TestCheckLoopbackRedirect(t *testing.T) {
	tests := []struct {
		name string
		in   string
		ok   bool
	}{
		{"ipv4", "http://127.0.0.1:8765/callback", true},
		{"ipv6", "http://[::1]:1/callback", true},
		{"max port", "http://127.0.0.1:65535/callback", true},
		{"port too big", "http://127.0.0.1:65536/callback", false},
		{"leading zero", "http://127.0.0.1:08765/callback", false},
		{"no port", "http://127.0.0.1/callback", false},
		{"empty port", "http://127.0.0.1:/callback", false},
		{"localhost", "http://localhost:8765/callback", false},
		{"long ipv6", "http://[0:0:0:0:0:0:0:1]:8765/callback", false},
		{"https", "https://127.0.0.1:8765/callback", false},
		{"upper scheme", "HTTP://127.0.0.1:8765/callback", false},
		{"trailing slash", "http://127.0.0.1:8765/callback/", false},
		{"dot segments", "http://127.0.0.1:8765/x/../callback", false},
		{"escaped path", "http://127.0.0.1:8765/%63allback", false},
		{"fragment", "http://127.0.0.1:8765/callback#x", false},
		{"empty query", "http://127.0.0.1:8765/callback?", false},
		{"user info", "http://u@127.0.0.1:8765/callback", false},
		{"other host", "http://192.0.2.1:8765/callback", false},
		{"empty", "", false},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			got, err := checkLoopbackRedirect(tt.in)
			if (err == nil) != tt.ok {
				t.Fatalf("checkLoopbackRedirect(%q) = %q, %v; want ok=%v", tt.in, got, err, tt.ok)
			}
			if err != nil && !errors.Is(err, errNotLoopback) {
				t.Errorf("error %v does not wrap errNotLoopback", err)
			}
		})
	}
}

func TestIdentityClaims(t *testing.T) {
	rp, err := newRelyingParty(OIDCConfig{
		Issuer: "https://idp.example.com", ClientID: "c", ClientSecret: "s",
		RedirectURL: "https://vpn.example.com/callback", GroupsClaim: "roles", UserIDClaim: "oid",
	})
	if err != nil {
		t.Fatal(err)
	}
	tests := []struct {
		name   string
		claims map[string]any
		want   Identity
		reason string
	}{
		{"list of groups", map[string]any{"oid": "u1", "email": "a@x", "name": "A", "roles": []any{"g1", "g2"}},
			Identity{UserID: "u1", Email: "a@x", Name: "A", Groups: []string{"g1", "g2"}}, ""},
		{"one group as a string", map[string]any{"oid": "u1", "roles": "g1"}, Identity{UserID: "u1", Groups: []string{"g1"}}, ""},
		{"no groups", map[string]any{"oid": "u1", "sub": "ignored"}, Identity{UserID: "u1"}, ""},
		{"missing user ID", map[string]any{"sub": "u1"}, Identity{}, frClaims},
		{"user ID not a string", map[string]any{"oid": 7}, Identity{}, frClaims},
		{"group not a string", map[string]any{"oid": "u1", "roles": []any{"g", 1}}, Identity{}, frClaims},
		{"groups an object", map[string]any{"oid": "u1", "roles": map[string]any{}}, Identity{}, frClaims},
		{"user ID too long", map[string]any{"oid": strings.Repeat("x", maxClaimLen+1)}, Identity{}, frClaims},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			got, err := rp.identity(tt.claims)
			if tt.reason != "" {
				if signinReason(err) != tt.reason {
					t.Fatalf("err %v, want reason %q", err, tt.reason)
				}
				return
			}
			if err != nil || got.Subject != tt.want.UserID || got.Email != tt.want.Email || got.Name != tt.want.Name || strings.Join(got.Groups, ",") != strings.Join(tt.want.Groups, ",") {
				t.Fatalf("identity = %+v, %v; want %+v", got, err, tt.want)
			}
		})
	}
}

func TestOIDCConfigValidate(t *testing.T) {
	good := OIDCConfig{Issuer: "https://idp.example.com", ClientID: "c", ClientSecret: "s", RedirectURL: "https://vpn.example.com/callback"}
	tests := []struct {
		name string
		edit func(*OIDCConfig)
		ok   bool
	}{
		{"good", func(*OIDCConfig) {}, true},
		{"http issuer on loopback", func(c *OIDCConfig) { c.Issuer = "http://127.0.0.1:5556" }, true},
		{"http issuer elsewhere", func(c *OIDCConfig) { c.Issuer = "http://idp.example.com" }, false},
		{"issuer with a fragment", func(c *OIDCConfig) { c.Issuer = "https://idp.example.com#x" }, false},
		{"issuer with a query", func(c *OIDCConfig) { c.Issuer = "https://idp.example.com?tenant=x" }, false},
		{"no issuer", func(c *OIDCConfig) { c.Issuer = "" }, false},
		{"no client ID", func(c *OIDCConfig) { c.ClientID = "" }, false},
		{"no secret", func(c *OIDCConfig) { c.ClientSecret = "" }, false},
		{"redirect path", func(c *OIDCConfig) { c.RedirectURL = "https://vpn.example.com/oidc" }, false},
		{"redirect http", func(c *OIDCConfig) { c.RedirectURL = "http://vpn.example.com/callback" }, false},
		{"redirect query", func(c *OIDCConfig) { c.RedirectURL = "https://vpn.example.com/callback?x=1" }, false},
		{"bad domain", func(c *OIDCConfig) { c.AllowedEmailDomains = []string{"@example.com"} }, false},
		{"empty group", func(c *OIDCConfig) { c.RequiredGroups = []string{""} }, false},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			c := good
			tt.edit(&c)
			if err := c.Validate(); (err == nil) != tt.ok {
				t.Fatalf("Validate() = %v, want ok=%v", err, tt.ok)
			}
		})
	}
}

func TestClientSecretNeverPrints(t *testing.T) {
	s := NewClientSecret([]byte("  hunter2\n"))
	if s.Reveal() != "hunter2" || !s.Equal("hunter2") {
		t.Fatalf("secret = %q", s.Reveal())
	}
	c := OIDCConfig{ClientSecret: s}
	if out := fmt.Sprintf("%v %+v %#v %s %q", c, c, c, s, s); strings.Contains(out, "hunter2") {
		t.Fatalf("secret printed: %s", out)
	}
}

// FuzzCheckReturn: whatever return address is accepted resolves, against
// this server's address, to this server, and holds nothing a browser
// would rewrite (backslashes, tabs, newlines).
func FuzzCheckReturn(f *testing.F) {
	for _, s := range []string{"/portal", "/admin/x?y=1", "//evil", "/\\evil", "/\t/evil", "https://evil", "/%2F%2Fevil", "/.//evil", "/..//evil"} {
		f.Add(s)
	}
	base, _ := url.Parse("https://vpn.example.com/login")
	f.Fuzz(func(t *testing.T, s string) {
		got, ok := checkReturn(s)
		if !ok {
			return
		}
		if got != s || strings.ContainsAny(s, "\\\t\r\n") {
			t.Fatalf("accepted %q as %q", s, got)
		}
		u, err := url.Parse(s)
		if err != nil {
			t.Fatalf("accepted unparsable %q", s)
		}
		if r := base.ResolveReference(u); r.Host != base.Host || r.Scheme != base.Scheme {
			t.Fatalf("accepted %q, which leads to %s", s, r)
		}
	})
}
