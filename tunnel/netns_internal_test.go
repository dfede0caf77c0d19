package tunnel

import (
	"fmt"
	"os"
	"os/exec"
	"strings"
	"testing"
)

// inNetns runs the calling test again, alone, in a fresh network namespace
// (namespaces are per thread; a child process keeps them apart from the
// test runner), and reports whether the caller is that child and should go
// on. Without root or ip(8) it skips.
func inNetns(t *testing.T) bool {
	t.Helper()
	if os.Getenv("FERRY_TUNNEL_IN_NETNS") == t.Name() {
		return true
	}
	if os.Geteuid() != 0 {
		t.Skip("needs root for network namespaces and nftables")
	}
	if _, err := exec.LookPath("ip"); err != nil {
		t.Skip("needs ip(8) (apt iproute2)")
	}
	ns := fmt.Sprintf("fti%d-%s", os.Getpid(), strings.ToLower(strings.ReplaceAll(t.Name(), "/", "-")))
	if len(ns) > 40 {
		ns = ns[:40]
	}
	if out, err := exec.Command("ip", "netns", "add", ns).CombinedOutput(); err != nil {
		t.Skipf("cannot create a network namespace: %v: %s", err, out)
	}
	t.Cleanup(func() { exec.Command("ip", "netns", "del", ns).Run() })
	exec.Command("ip", "-n", ns, "link", "set", "lo", "up").Run()
	args := []string{"netns", "exec", ns, os.Args[0], "-test.run", "^" + t.Name() + "$", "-test.count=1"}
	if testing.Verbose() {
		args = append(args, "-test.v")
	}
	cmd := exec.Command("ip", args...)
	cmd.Env = append(os.Environ(), "FERRY_TUNNEL_IN_NETNS="+t.Name())
	out, err := cmd.CombinedOutput()
	t.Logf("in namespace %s:\n%s", ns, out)
	if err != nil {
		t.Fatalf("test in namespace failed: %v", err)
	}
	return false
}
