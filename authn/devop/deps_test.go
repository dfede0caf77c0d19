package devop_test

import (
	"os/exec"
	"strings"
	"testing"
)

// devop stands alone: it imports nothing of ferry's, so ferryd dev and
// tests can run it without the rest.
func TestImportsNothingOfFerry(t *testing.T) {
	const pkg = "github.com/ferryvpn/ferry/authn/devop"
	out, err := exec.Command("go", "list", "-deps", pkg).Output()
	if err != nil {
		t.Skipf("go list unavailable: %v", err)
	}
	for _, dep := range strings.Fields(string(out)) {
		if strings.HasPrefix(dep, "github.com/ferryvpn/ferry/") && dep != pkg {
			t.Errorf("%s imports %s", pkg, dep)
		}
	}
}
