package main

import (
	"os/exec"
	"slices"
	"strings"
	"testing"
)

// TestDeps: ferryctl speaks to ferryd through the HTTP API only. Of the
// project's packages it links the API client, the wire types, the sign-in
// flow and the audit export format (to verify exports offline); it links
// no cluster store, no other domain package and no data plane (STYLE.md
// §1).
func TestDeps(t *testing.T) {
	out, err := exec.Command("go", "list", "-deps", ".").Output()
	if err != nil {
		t.Skipf("go list unavailable: %v", err)
	}
	allowed := []string{"cmd/ferryctl", "cmd/internal/client", "cmd/internal/wire", "cmd/internal/loginflow", "audit/auditfile"}
	banned := []string{"hashicorp/raft", "go.etcd.io/bbolt", "boltdb", "google/nftables", "ti-mo/conntrack", "zitadel", "coreos/go-oidc", "golang.zx2c4.com/wireguard"}
	for _, dep := range strings.Fields(string(out)) {
		if rest, ok := strings.CutPrefix(dep, "github.com/ferryvpn/ferry/"); ok && !slices.Contains(allowed, rest) {
			t.Errorf("ferryctl links %s: it may link only %v of the project", dep, allowed)
		}
		for _, b := range banned {
			if strings.Contains(dep, b) {
				t.Errorf("ferryctl links %s", dep)
			}
		}
	}
}
