package audit_test

import (
	"os/exec"
	"strings"
	"testing"
)

// audit sits on layer 2: of the project's packages it may import only
// cluster and its subpackages.
func TestImportsOnlyCluster(t *testing.T) {
	for _, pkg := range []string{"github.com/ferryvpn/ferry/audit", "github.com/ferryvpn/ferry/audit/audittest"} {
		out, err := exec.Command("go", "list", "-deps", pkg).Output()
		if err != nil {
			t.Skipf("go list unavailable: %v", err)
		}
		for _, dep := range strings.Fields(string(out)) {
			rest, ok := strings.CutPrefix(dep, "github.com/ferryvpn/ferry/")
			if !ok || rest == "audit" || strings.HasPrefix(rest, "audit/") || rest == "cluster" || strings.HasPrefix(rest, "cluster/") {
				continue
			}
			t.Errorf("%s imports %s: audit may import only cluster", pkg, dep)
		}
	}
}
