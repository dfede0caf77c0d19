package vmtest

import (
	"encoding/json"
	"fmt"
	"os"
	"os/exec"
	"path"
	"path/filepath"
	"regexp"
	"strings"
	"testing"
	"time"
)

// This file holds what the suites that run a Go test binary in a machine
// share: the modules of the data plane, the binary to copy in, the
// verdict on what the guest printed, and the check that an interface is a
// kernel WireGuard one.

// DataPlaneModules returns the kernel modules ferry's data plane needs in
// a guest: WireGuard, TUN, veth and bridge for the test topologies, and the
// nftables, NAT and conntrack modules of the gateway's rules. The slice is
// new on every call.
func DataPlaneModules() []string {
	return []string{
		"wireguard", "tun", "veth", "bridge",
		"nf_tables", "nft_ct", "nft_chain_nat", "nft_masq", "nft_nat", "nft_objref", "nf_conntrack_netlink",
	}
}

// PlainTestBinary returns the running test binary, or, when it was built
// with the race detector (several times too slow under TCG), a copy of the
// tests of package pkg (an import path, the caller's own package) built now
// without it, in a directory that t removes.
func PlainTestBinary(t testing.TB, pkg string) string {
	t.Helper()
	if !raceEnabled {
		self, err := os.Executable()
		if err != nil {
			t.Fatalf("finding the test binary: %v", err)
		}
		return self
	}
	bin := filepath.Join(t.TempDir(), path.Base(pkg)+".test")
	out, err := exec.Command("go", "test", "-c", "-o", bin, pkg).CombinedOutput()
	if err != nil {
		t.Fatalf("building the tests of %s without -race: %v\n%s", pkg, err, out)
	}
	return bin
}

var failLine = regexp.MustCompile(`(?m)^\s*--- FAIL: .*$`)

// Failures returns the "--- FAIL:" lines of a Go test binary's Output.
func (r *Result) Failures() []string {
	return failLine.FindAllString(r.Output, -1)
}

// Passed reports whether Output has the "--- PASS:" line of the test (or
// subtest) with exactly this name.
func (r *Result) Passed(name string) bool {
	return regexp.MustCompile(`(?m)^\s*--- PASS: ` + regexp.QuoteMeta(name) + ` \(`).MatchString(r.Output)
}

// RunTests runs cfg, whose Command is a Go test binary, in a machine (Run,
// bounded by t's context), logs what the guest printed and fails t unless
// the binary ended with status 0, printed no "--- FAIL:" line and passed
// every test named in mustPass. It returns the Result.
func RunTests(t testing.TB, cfg Config, mustPass ...string) *Result {
	t.Helper()
	res, err := Run(t.Context(), cfg)
	if err != nil {
		if res != nil {
			t.Logf("guest output:\n%s\nconsole:\n%s", res.Output, res.Console)
		}
		t.Fatal(err)
	}
	bin := path.Base(cfg.Command[0])
	t.Logf("%s in the machine (%s, %s in all, boot %s):\n%s", bin, cfg.Kernel.Release,
		res.Elapsed.Round(time.Second), res.Boot.Round(100*time.Millisecond), res.Output)
	if fails := res.Failures(); len(fails) > 0 || res.ExitCode != 0 {
		t.Errorf("%s failed in the machine (exit %d):\n%s", bin, res.ExitCode, strings.Join(fails, "\n"))
	}
	for _, name := range mustPass {
		if !res.Passed(name) {
			t.Errorf("%s did not pass in the machine", name)
		}
	}
	return res
}

// LinkKind returns the kind of network interface iface in namespace ns
// ("wireguard" for a kernel WireGuard interface, "tun" for the embedded
// device's), as ip -d link reports it.
func LinkKind(ns, iface string) (string, error) {
	out, err := exec.Command("ip", "-n", ns, "-d", "-j", "link", "show", "dev", iface).Output()
	if err != nil {
		return "", fmt.Errorf("ip -n %s -d link show %s: %w", ns, iface, err)
	}
	var links []struct {
		LinkInfo struct {
			Kind string `json:"info_kind"`
		} `json:"linkinfo"`
	}
	if err := json.Unmarshal(out, &links); err != nil {
		return "", fmt.Errorf("decoding ip -d -j link show %s: %w: %s", iface, err, out)
	}
	if len(links) != 1 {
		return "", fmt.Errorf("ip -d -j link show %s: %d interfaces, want 1: %s", iface, len(links), out)
	}
	return links[0].LinkInfo.Kind, nil
}

// RequireKernelLink fails t unless iface in namespace ns is a kernel
// WireGuard interface: suites that run in a machine to test the kernel path
// call it so that a silent fallback to the embedded device fails instead of
// testing the wrong path.
func RequireKernelLink(t testing.TB, ns, iface string) {
	t.Helper()
	kind, err := LinkKind(ns, iface)
	if err != nil {
		t.Fatal(err)
	}
	if kind != "wireguard" {
		t.Fatalf("%s is a %q device, want kernel wireguard", iface, kind)
	}
}
