package devop_test

import (
	"context"
	"net/http"
	"net/http/cookiejar"
	"net/http/httptest"
	"net/url"
	"regexp"
	"slices"
	"strings"
	"testing"

	"github.com/coreos/go-oidc/v3/oidc"
	"github.com/ferryvpn/ferry/authn/devop"
	"golang.org/x/oauth2"
)

const redirect = "https://vpn.example.test/callback"

// start serves a Provider at its own issuer URL.
func start(t *testing.T) (*devop.Provider, string) {
	t.Helper()
	var p *devop.Provider
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) { p.Handler().ServeHTTP(w, r) }))
	t.Cleanup(srv.Close)
	var err error
	p, err = devop.New(devop.Config{Issuer: srv.URL, ClientID: "ferry", ClientSecret: "secret", RedirectURIs: []string{redirect}})
	if err != nil {
		t.Fatal(err)
	}
	return p, srv.URL
}

func TestConfigValidate(t *testing.T) {
	good := devop.Config{Issuer: "http://127.0.0.1:5556", ClientID: "c", ClientSecret: "s", RedirectURIs: []string{redirect}}
	tests := []struct {
		name string
		edit func(*devop.Config)
		ok   bool
	}{
		{"good", func(*devop.Config) {}, true},
		{"issuer with path", func(c *devop.Config) { c.Issuer += "/oidc" }, false},
		{"issuer not a URL", func(c *devop.Config) { c.Issuer = "127.0.0.1:5556" }, false},
		{"no client", func(c *devop.Config) { c.ClientID = "" }, false},
		{"no secret", func(c *devop.Config) { c.ClientSecret = "" }, false},
		{"no redirect", func(c *devop.Config) { c.RedirectURIs = nil }, false},
		{"relative redirect", func(c *devop.Config) { c.RedirectURIs = []string{"/callback"} }, false},
		{"duplicate user", func(c *devop.Config) {
			c.Users = []devop.User{{Username: "a", Password: "a"}, {Username: "a", Password: "b"}}
		}, false},
		{"user without password", func(c *devop.Config) { c.Users = []devop.User{{Username: "a"}} }, false},
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

// TestCodeFlow signs in as demo with PKCE, checks the ID token with
// go-oidc, and checks that the code works once and the login form refuses
// a wrong password.
func TestCodeFlow(t *testing.T) {
	_, issuer := start(t)
	ctx := context.Background()
	prov, err := oidc.NewProvider(ctx, issuer)
	if err != nil {
		t.Fatalf("discovery: %v", err)
	}
	var meta struct {
		Methods []string `json:"code_challenge_methods_supported"`
	}
	if err := prov.Claims(&meta); err != nil || !slices.Contains(meta.Methods, "S256") {
		t.Fatalf("discovery does not offer S256 PKCE: %v %v", meta.Methods, err)
	}
	oc := oauth2.Config{ClientID: "ferry", ClientSecret: "secret", Endpoint: prov.Endpoint(), RedirectURL: redirect, Scopes: []string{oidc.ScopeOpenID, "email", "profile"}}
	verifier := oauth2.GenerateVerifier()
	jar, _ := cookiejar.New(nil)
	c := &http.Client{Jar: jar, CheckRedirect: func(*http.Request, []*http.Request) error { return http.ErrUseLastResponse }}

	resp, err := c.Get(oc.AuthCodeURL("st", oidc.Nonce("n-1"), oauth2.S256ChallengeOption(verifier)))
	if err != nil || resp.StatusCode != http.StatusFound {
		t.Fatalf("authorize: %v %v", err, resp)
	}
	loginURL, _ := resp.Location()
	id := loginURL.Query().Get("authRequestID")
	post := func(pass string) *http.Response {
		r, err := c.PostForm(issuer+"/ui/login", url.Values{"authRequestID": {id}, "username": {"demo"}, "password": {pass}})
		if err != nil {
			t.Fatal(err)
		}
		r.Body.Close()
		return r
	}
	if r := post("wrong"); r.StatusCode != http.StatusUnauthorized {
		t.Fatalf("wrong password: status %d", r.StatusCode)
	}
	r := post("demo")
	if r.StatusCode != http.StatusFound {
		t.Fatalf("login: status %d", r.StatusCode)
	}
	next, _ := r.Location()
	resp, err = c.Get(next.String())
	if err != nil || resp.StatusCode != http.StatusFound {
		t.Fatalf("authorize callback: %v %v", err, resp)
	}
	back, _ := resp.Location()
	if !strings.HasPrefix(back.String(), redirect+"?") || back.Query().Get("state") != "st" {
		t.Fatalf("sent back to %s", back)
	}
	code := back.Query().Get("code")

	if _, err := oc.Exchange(ctx, code, oauth2.VerifierOption(oauth2.GenerateVerifier())); err == nil {
		t.Fatal("a wrong PKCE verifier was accepted")
	}
	tok, err := oc.Exchange(ctx, code, oauth2.VerifierOption(verifier))
	if err != nil {
		t.Fatalf("exchange: %v", err)
	}
	raw, _ := tok.Extra("id_token").(string)
	idt, err := prov.Verifier(&oidc.Config{ClientID: "ferry"}).Verify(ctx, raw)
	if err != nil {
		t.Fatalf("ID token: %v", err)
	}
	var claims struct {
		Email  string   `json:"email"`
		Name   string   `json:"name"`
		Groups []string `json:"groups"`
	}
	if err := idt.Claims(&claims); err != nil {
		t.Fatal(err)
	}
	if idt.Nonce != "n-1" || idt.Subject != "devop-demo" || claims.Email != "demo@example.com" || !slices.Contains(claims.Groups, "ferry-admins") {
		t.Errorf("ID token: sub %q nonce %q claims %+v", idt.Subject, idt.Nonce, claims)
	}
	if _, err := oc.Exchange(ctx, code, oauth2.VerifierOption(verifier)); err == nil {
		t.Error("the code worked twice")
	}
}

func TestLoginFormUnknownRequest(t *testing.T) {
	_, issuer := start(t)
	resp, err := http.Get(issuer + "/ui/login?authRequestID=nope")
	if err != nil {
		t.Fatal(err)
	}
	resp.Body.Close()
	if resp.StatusCode != http.StatusBadRequest {
		t.Fatalf("status %d, want 400", resp.StatusCode)
	}
	if !regexp.MustCompile(`default-src 'none'`).MatchString(resp.Header.Get("Content-Security-Policy")) {
		t.Error("login form has no CSP")
	}
}
