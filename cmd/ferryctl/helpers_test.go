package main

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"golang.zx2c4.com/wireguard/wgctrl/wgtypes"

	"github.com/ferryvpn/ferry/authn"
	"github.com/ferryvpn/ferry/authn/authntest"
	"github.com/ferryvpn/ferry/cmd/internal/apitest"
	"github.com/ferryvpn/ferry/cmd/internal/client"
	"github.com/ferryvpn/ferry/cmd/internal/wire"
)

// ferryctlBin is the ferryctl binary built by TestMain.
var ferryctlBin string

// TestMain builds the binary first, while HOME is still the real one (and
// with it the Go build and module caches).
func TestMain(m *testing.M) {
	dir, err := os.MkdirTemp("", "ferryctl-test-")
	if err != nil {
		fmt.Fprintln(os.Stderr, err)
		os.Exit(1)
	}
	ferryctlBin = filepath.Join(dir, "ferryctl")
	if out, err := exec.Command("go", "build", "-o", ferryctlBin, ".").CombinedOutput(); err != nil {
		fmt.Fprintf(os.Stderr, "building ferryctl: %v\n%s", err, out)
		os.RemoveAll(dir)
		os.Exit(1)
	}
	code := m.Run()
	os.RemoveAll(dir)
	os.Exit(code)
}

// isolate points the config directory at a fresh temporary home, so that
// tests never read or write the real user's files.
func isolate(t *testing.T) string {
	t.Helper()
	home := t.TempDir()
	t.Setenv("HOME", home)
	t.Setenv("XDG_CONFIG_HOME", filepath.Join(home, ".config"))
	return filepath.Join(home, ".config", "ferry")
}

// ctl runs ferryctl in this process with stdin as input, not on a
// terminal, and returns its standard output.
func ctl(t *testing.T, stdin string, args ...string) (string, error) {
	t.Helper()
	out, _, err := ctlConsole(t, console{in: strings.NewReader(stdin)}, args...)
	return out, err
}

// ctlConsole runs ferryctl with a console of the test's making.
func ctlConsole(t *testing.T, con console, args ...string) (stdout, stderr string, err error) {
	t.Helper()
	var o, e bytes.Buffer
	con.out, con.err = &o, &e
	if con.in == nil {
		con.in = strings.NewReader("")
	}
	if con.openBrowser == nil {
		con.openBrowser = func(string) error { t.Error("a browser was opened"); return nil }
	}
	ctx, cancel := context.WithTimeout(t.Context(), 60*time.Second)
	defer cancel()
	err = runWith(ctx, args, con)
	return o.String(), e.String(), err
}

// mustCtl is ctl that fails the test on error.
func mustCtl(t *testing.T, args ...string) string {
	t.Helper()
	out, err := ctl(t, "", args...)
	if err != nil {
		t.Fatalf("ferryctl %s: %v", strings.Join(args, " "), err)
	}
	return out
}

// ctlJSON runs a command with -o json and decodes its output into v.
func ctlJSON(t *testing.T, v any, args ...string) {
	t.Helper()
	out := mustCtl(t, append(args, "-o", "json")...)
	if err := decodeStrict(out, v); err != nil {
		t.Fatalf("ferryctl %s -o json: %v\n%s", strings.Join(args, " "), err, out)
	}
}

// decodeStrict decodes JSON that must have exactly v's fields.
func decodeStrict(s string, v any) error {
	dec := json.NewDecoder(strings.NewReader(s))
	dec.DisallowUnknownFields()
	return dec.Decode(v)
}

// signIn saves a session for token as "ferryctl login" would, without the
// browser.
func signIn(t *testing.T, srv *apitest.Server, token string) {
	t.Helper()
	if err := saveSession(session{Server: srv.URL, CAFile: srv.CAFile, Token: token}); err != nil {
		t.Fatal(err)
	}
}

// alice is an ordinary user.
var alice = authn.Identity{UserID: "alice", Email: "alice@example.com", Name: "Alice", Groups: []string{"engineering"}}

// enrollTOTP enrolls id's authenticator, as the sign-in pages would.
func enrollTOTP(t *testing.T, srv *apitest.Server, id authn.Identity) {
	t.Helper()
	en, err := srv.MFA.BeginEnroll(t.Context(), id)
	if err != nil {
		t.Fatal(err)
	}
	code, err := authntest.TOTPCode(en.URI, time.Now())
	if err != nil {
		t.Fatal(err)
	}
	if _, err := srv.MFA.ConfirmEnroll(t.Context(), id, code, authn.Source{Addr: "127.0.0.1"}); err != nil {
		t.Fatal(err)
	}
}

// userClient returns an API client holding token.
func userClient(t *testing.T, srv *apitest.Server, token string) *client.Client {
	t.Helper()
	tlsConf, err := client.TLSConfig(srv.CAFile)
	if err != nil {
		t.Fatal(err)
	}
	c, err := client.New(client.Config{BaseURL: srv.URL, TLS: tlsConf, Token: token})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(c.Close)
	return c
}

// issue gives a device of the token's user a peer under profile.
func issue(t *testing.T, srv *apitest.Server, token, device, profile string) wire.Peer {
	t.Helper()
	k, err := wgtypes.GeneratePrivateKey()
	if err != nil {
		t.Fatal(err)
	}
	res, err := userClient(t, srv, token).Issue(t.Context(), wire.IssueRequest{PublicKey: k.PublicKey().String(), Device: device, Profile: profile})
	if err != nil {
		t.Fatalf("issue: %v", err)
	}
	return res.Peer
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
