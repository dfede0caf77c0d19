// Package walkthrough runs deploy/walkthrough/walkthrough.sh, which walks
// the README's three-node walkthrough exactly as written, as part of
// `make test`. It imports nothing of ferry: like an operator, it drives the
// built binaries from outside.
package walkthrough

import (
	"context"
	"os/exec"
	"syscall"
	"testing"
	"time"
)

// TestREADMEWalkthrough: init, token, join, run, sign in, apply a profile,
// issue, kill the leader, issue again — as the README says, on loopback.
func TestREADMEWalkthrough(t *testing.T) {
	if testing.Short() {
		t.Skip("builds ferry and runs a three-node cluster; skipped with -short")
	}
	for _, tool := range []string{"make", "curl", "openssl", "python3", "setsid"} {
		if _, err := exec.LookPath(tool); err != nil {
			t.Fatalf("the walkthrough needs %s (.ci/run installs it): %v", tool, err)
		}
	}
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Minute)
	defer cancel()
	cmd := exec.CommandContext(ctx, "./walkthrough.sh")
	// On timeout, SIGTERM: the script's trap stops every node it started.
	cmd.Cancel = func() error { return cmd.Process.Signal(syscall.SIGTERM) }
	cmd.WaitDelay = 30 * time.Second
	out, err := cmd.CombinedOutput()
	if err != nil {
		t.Fatalf("walkthrough: %v\n%s", err, out)
	}
	t.Logf("%s", tail(string(out), 2000))
}

func tail(s string, n int) string {
	if len(s) > n {
		return "..." + s[len(s)-n:]
	}
	return s
}
