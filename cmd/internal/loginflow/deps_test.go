package loginflow_test

import (
	"os/exec"
	"strings"
	"testing"
)

// loginflow is linked into the ferry and ferryctl clients: of the
// project's packages it may import only cmd/internal/wire, and it must
// not pull in raft, bbolt or the data plane.
func TestClientDeps(t *testing.T) {
	const pkg = "github.com/ferryvpn/ferry/cmd/internal/loginflow"
	out, err := exec.Command("go", "list", "-deps", pkg).Output()
	if err != nil {
		t.Skipf("go list unavailable: %v", err)
	}
	for _, dep := range strings.Fields(string(out)) {
		if rest, ok := strings.CutPrefix(dep, "github.com/ferryvpn/ferry/"); ok && rest != "cmd/internal/loginflow" && rest != "cmd/internal/wire" {
			t.Errorf("%s imports %s: loginflow may import only cmd/internal/wire", pkg, dep)
		}
		for _, banned := range []string{"hashicorp/raft", "go.etcd.io/bbolt", "wireguard", "nftables", "zitadel", "coreos/go-oidc"} {
			if strings.Contains(dep, banned) {
				t.Errorf("%s pulls in %s", pkg, dep)
			}
		}
	}
}
