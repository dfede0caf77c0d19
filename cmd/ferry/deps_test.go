package main

import (
	"os/exec"
	"slices"
	"strings"
	"testing"
)

// TestDeps: ferry speaks to ferryd through the HTTP API only. Of the
// project's packages it links the API client, the wire types and the
// sign-in flow; it links no cluster store, no domain package and not the
// server's data plane. WireGuard itself (wireguard-go, wgctrl) it may
// link: it runs the tunnel (STYLE.md §1).
func TestDeps(t *testing.T) {
	out, err := exec.Command("go", "list", "-deps", ".").Output()
	if err != nil {
		t.Skipf("go list unavailable: %v", err)
	}
	allowed := []string{"cmd/ferry", "cmd/internal/client", "cmd/internal/wire", "cmd/internal/loginflow"}
	banned := []string{"hashicorp/raft", "go.etcd.io/bbolt", "boltdb", "google/nftables", "ti-mo/conntrack", "zitadel", "coreos/go-oidc"}
	for _, dep := range strings.Fields(string(out)) {
		if rest, ok := strings.CutPrefix(dep, "github.com/ferryvpn/ferry/"); ok && !slices.Contains(allowed, rest) {
			t.Errorf("ferry links %s: it may link only %v of the project", dep, allowed)
		}
		for _, b := range banned {
			if strings.Contains(dep, b) {
				t.Errorf("ferry links %s", dep)
			}
		}
	}
}
