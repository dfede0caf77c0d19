package auditfile_test

import (
	"os/exec"
	"strings"
	"testing"
)

// auditfile is what clients link to verify exports offline: it must stay
// standard library only, so that ferryctl links no cluster, Raft or bbolt
// through it.
func TestImportsOnlyStandardLibrary(t *testing.T) {
	out, err := exec.Command("go", "list", "-deps", "github.com/ferryvpn/ferry/audit/auditfile").Output()
	if err != nil {
		t.Skipf("go list unavailable: %v", err)
	}
	for _, dep := range strings.Fields(string(out)) {
		first, _, _ := strings.Cut(dep, "/")
		if dep == "github.com/ferryvpn/ferry/audit/auditfile" || !strings.Contains(first, ".") {
			continue
		}
		t.Errorf("auditfile imports %s: it may import only the standard library", dep)
	}
}
