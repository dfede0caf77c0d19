package main

import (
	"bytes"
	"context"
	"encoding/json"
	"net/netip"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/ferryvpn/ferry/audit"
	"github.com/ferryvpn/ferry/authn"
	"github.com/ferryvpn/ferry/cmd/internal/apitest"
	"github.com/ferryvpn/ferry/cmd/internal/client"
	"github.com/ferryvpn/ferry/cmd/internal/loginflow"
	"github.com/ferryvpn/ferry/profiles"
	"github.com/ferryvpn/ferry/tunnel/tunneltest"
)

// TestMain lets the test binary serve as a tunneltest agent inside a
// network namespace (failover_netns_test.go).
func TestMain(m *testing.M) {
	tunneltest.MaybeRunAgent()
	os.Exit(m.Run())
}

// isolate points the config directory at a fresh temporary home, so that
// tests never read or write the real user's files, and returns ferry's
// directory in it.
func isolate(t *testing.T) string {
	t.Helper()
	home := t.TempDir()
	t.Setenv("HOME", home)
	t.Setenv("XDG_CONFIG_HOME", filepath.Join(home, ".config"))
	t.Setenv("SUDO_USER", "")
	return filepath.Join(home, ".config", "ferry")
}

// ferry runs the client in this process as an ordinary user and returns
// its standard output.
func ferry(t *testing.T, args ...string) (string, error) {
	t.Helper()
	out, _, err := ferryConsole(t, console{}, args...)
	return out, err
}

// ferryConsole runs the client with a console of the test's making; the
// run directory is the test's own.
func ferryConsole(t *testing.T, con console, args ...string) (stdout, stderr string, err error) {
	t.Helper()
	var o, e bytes.Buffer
	con.out, con.err = &o, &e
	if con.runDir == "" {
		con.runDir = t.TempDir()
	}
	if con.linkExists == nil {
		// The host's own ferry0, if any, is not the test's: never touch it.
		con.linkExists = func(string) bool { return false }
	}
	if con.openBrowser == nil {
		con.openBrowser = func(string) error { t.Error("a browser was opened"); return nil }
	}
	ctx, cancel := context.WithTimeout(t.Context(), 60*time.Second)
	defer cancel()
	err = runWith(ctx, args, con)
	return o.String(), e.String(), err
}

// decodeStrict decodes JSON that must have exactly v's fields.
func decodeStrict(s string, v any) error {
	dec := json.NewDecoder(strings.NewReader(s))
	dec.DisallowUnknownFields()
	return dec.Decode(v)
}

// alice is an ordinary user in the engineering group.
var alice = authn.Identity{UserID: "alice", Email: "alice@example.com", Name: "Alice", Groups: []string{"engineering"}}

// server is a real API with two profiles for engineering.
func server(t *testing.T) *apitest.Server {
	t.Helper()
	srv := apitest.Start(t)
	for _, p := range []profiles.Profile{
		{
			Name: "eng", Description: "Engineers", Groups: []string{"engineering"},
			Rules:         []profiles.Rule{{CIDR: netip.MustParsePrefix("10.0.0.0/16"), Protocol: "tcp", Ports: []profiles.PortRange{{From: 22, To: 22}, {From: 443, To: 443}}}},
			DNS:           []netip.Addr{netip.MustParseAddr("10.0.0.2")},
			SearchDomains: []string{"corp.example.com"},
		},
		{
			Name: "full", Groups: []string{"engineering"}, FullTunnel: true, MaxSession: time.Hour,
			Rules: []profiles.Rule{{CIDR: netip.MustParsePrefix("10.0.0.0/8"), Protocol: "any"}},
		},
	} {
		if _, err := srv.Profiles.Put(t.Context(), p, nil, audit.Actor{UserID: "admin"}); err != nil {
			t.Fatal(err)
		}
	}
	return srv
}

// signedIn saves a session for alice as "ferry login" does after the
// browser, and returns the API client holding it.
func signedIn(t *testing.T, srv *apitest.Server, dir string) *client.Client {
	t.Helper()
	tok := srv.Token(t, alice)
	if err := loginflow.SaveToken(dir, srv.URL, srv.CAFile, tok); err != nil {
		t.Fatal(err)
	}
	return newTestClient(t, srv, tok)
}

// clientT is the API client of the tests.
type clientT = client.Client

// newTestClient returns an API client of srv holding tok.
func newTestClient(t *testing.T, srv *apitest.Server, tok string) *client.Client {
	t.Helper()
	tlsConf, err := client.TLSConfig(srv.CAFile)
	if err != nil {
		t.Fatal(err)
	}
	c, err := client.New(client.Config{BaseURL: srv.URL, TLS: tlsConf, Token: tok})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(c.Close)
	return c
}

// enrolled signs alice in and fetches her profile into dir.
func enrolled(t *testing.T, srv *apitest.Server, dir, profile string) state {
	t.Helper()
	c := signedIn(t, srv, dir)
	st, err := enroll(t.Context(), c, dir, enrollment{Server: srv.URL, CAFile: srv.CAFile, Email: alice.Email, Device: "laptop", Profile: profile})
	if err != nil {
		t.Fatalf("enroll: %v", err)
	}
	return st
}

// fileMode returns the permission bits of path.
func fileMode(t *testing.T, path string) os.FileMode {
	t.Helper()
	fi, err := os.Stat(path)
	if err != nil {
		t.Fatal(err)
	}
	return fi.Mode().Perm()
}
