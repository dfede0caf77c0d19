package vmtest_test

import (
	"debug/buildinfo"
	"os/exec"
	"slices"
	"strings"
	"testing"

	"github.com/ferryvpn/ferry/tunnel/tunneltest"
	"github.com/ferryvpn/ferry/tunnel/vmtest"
)

// TestResultVerdict reads a guest's test output: its failures, and which
// tests passed, by their exact names.
func TestResultVerdict(t *testing.T) {
	out := strings.Join([]string{
		"=== RUN   TestThreeNodes",
		"--- PASS: TestThreeNodes (98.20s)",
		"=== RUN   TestDataPlane",
		"    --- FAIL: TestDataPlane/denied (1.00s)",
		"--- FAIL: TestDataPlane (3.10s)",
		"    --- PASS: TestListenPortInUse/kernel (0.50s)",
		"the log says --- PASS: TestNotAtLineStart (1.00s)",
		"FAIL",
	}, "\n")
	r := &vmtest.Result{Output: out}
	wantFails := []string{"    --- FAIL: TestDataPlane/denied (1.00s)", "--- FAIL: TestDataPlane (3.10s)"}
	if got := r.Failures(); !slices.Equal(got, wantFails) {
		t.Errorf("Failures() = %q, want %q", got, wantFails)
	}
	for _, tc := range []struct {
		name string
		want bool
	}{
		{"TestThreeNodes", true},
		{"TestListenPortInUse/kernel", true},
		{"TestThreeNodesKernelVM", false}, // a longer name is another test
		{"TestThreeNode", false},          // so is a shorter one
		{"TestDataPlane", false},          // failed
		{"TestNotAtLineStart", false},     // not a verdict line
		{"TestListenPortInUse", false},    // only its subtest's verdict is there
	} {
		if got := r.Passed(tc.name); got != tc.want {
			t.Errorf("Passed(%q) = %v, want %v", tc.name, got, tc.want)
		}
	}
	if (&vmtest.Result{}).Passed("TestThreeNodes") || len((&vmtest.Result{}).Failures()) != 0 {
		t.Error("an empty output passed or failed a test")
	}
}

// TestPlainTestBinary: the binary that goes into a machine is never built
// with the race detector, whether or not the running tests are.
func TestPlainTestBinary(t *testing.T) {
	if _, err := exec.LookPath("go"); err != nil {
		t.Skip("needs the go command")
	}
	bin := vmtest.PlainTestBinary(t, "github.com/ferryvpn/ferry/tunnel/vmtest")
	info, err := buildinfo.ReadFile(bin)
	if err != nil {
		t.Fatalf("reading the build information of %s: %v", bin, err)
	}
	for _, s := range info.Settings {
		if s.Key == "-race" && s.Value == "true" {
			t.Fatalf("%s was built with -race", bin)
		}
	}
}

// TestLinkKind: the kind of an interface in a namespace, and an error for
// one that is not there. A veth is not a kernel WireGuard interface.
func TestLinkKind(t *testing.T) {
	tunneltest.Require(t)
	n := tunneltest.NewNet(t)
	ns := n.NS("vmtlk")
	n.Must("ip", "-n", ns, "link", "add", "vmtva0", "type", "veth", "peer", "name", "vmtvb0")
	if kind, err := vmtest.LinkKind(ns, "vmtva0"); err != nil || kind != "veth" {
		t.Errorf("LinkKind(veth) = %q, %v, want veth", kind, err)
	}
	if kind, err := vmtest.LinkKind(ns, "lo"); err != nil || kind != "" {
		t.Errorf("LinkKind(lo) = %q, %v, want no kind", kind, err)
	}
	if kind, err := vmtest.LinkKind(ns, "nosuch0"); err == nil {
		t.Errorf("LinkKind of a missing interface = %q, want an error", kind)
	}
}
