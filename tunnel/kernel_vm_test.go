package tunnel_test

import (
	"context"
	"encoding/json"
	"flag"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"strings"
	"testing"
	"time"

	"github.com/ferryvpn/ferry/tunnel/tunneltest"
	"github.com/ferryvpn/ferry/tunnel/vmtest"
)

// kernelDevice is set inside the kernel suite's virtual machine: the
// gateways then run on kernel WireGuard, and a test fails if they fell
// back to the embedded device.
var vmRun = flag.String("tunnel.vmrun", "", "run only these tests in TestKernelSuiteVM's machine (default: the whole kernel suite)")

var kernelDevice = flag.Bool("tunnel.kernel", false, "run gateways on kernel WireGuard and fail without it (set by TestKernelSuiteVM)")

// kernelSuite is the one table of data-plane tests that runs on both
// paths: on the host against the embedded wireguard-go device, and in a
// virtual machine booting Debian's kernel against wireguard.ko.
const kernelSuite = `^(TestDataPlane|TestGatewayRestartOverDevice|TestConvergeTenThousandPeers|TestListenPortInUse|TestCaptureDataPlane)$`

// vmModules are the kernel modules the data-plane tests need in the guest.
var vmModules = []string{
	"wireguard", "tun", "veth", "bridge",
	"nf_tables", "nft_ct", "nft_chain_nat", "nft_masq", "nft_nat", "nft_objref", "nf_conntrack_netlink",
}

// vmTools are the host programs the tests run in the guest.
var vmTools = []string{"ip", "nft", "wg", "wg-quick", "bash", "nsenter", "sysctl"}

// TestKernelSuiteVM runs kernelSuite in a QEMU machine (TCG) that boots
// Debian's cloud kernel with wireguard.ko loaded, and fails with the
// guest's failures. It skips, saying why, where QEMU, busybox or the
// kernel package cannot be had; .ci/run installs them.
func TestKernelSuiteVM(t *testing.T) {
	if *kernelDevice {
		t.Skip("already in the kernel suite's machine")
	}
	if testing.Short() {
		t.Skip("boots a virtual machine")
	}
	tunneltest.Require(t, "wg", "wg-quick", "sysctl", "nft", "nsenter", "bash")
	k := vmtest.Require(t)
	wgGo := findWireGuardGo(t)
	ferry := tunneltest.BuildFerry(t)
	testBin := plainTestBinary(t)
	run := kernelSuite
	if *vmRun != "" {
		run = *vmRun
	}
	res, err := vmtest.Run(context.Background(), vmtest.Config{
		Kernel:  k,
		Modules: vmModules,
		Tools:   vmTools,
		Files: map[string]string{
			"/usr/bin/tunnel.test":  testBin,
			"/usr/bin/ferry":        ferry,
			"/usr/bin/wireguard-go": wgGo,
		},
		Env: []string{"FERRY_TEST_FERRY_BIN=/usr/bin/ferry", "HOME=/root"},
		Command: []string{"/usr/bin/tunnel.test", "-test.run", run, "-test.v", "-test.count=1",
			"-test.timeout=12m", "-tunnel.kernel"},
		MemoryMiB: 2048,
		Timeout:   14 * time.Minute,
	})
	if err != nil {
		if res != nil {
			t.Logf("guest output:\n%s\nconsole:\n%s", res.Output, res.Console)
		}
		t.Fatal(err)
	}
	t.Logf("kernel suite in the machine (%s, %s in all, boot %s):\n%s", k.Release, res.Elapsed.Round(time.Second), res.Boot.Round(100*time.Millisecond), res.Output)
	if fails := regexp.MustCompile(`(?m)^\s*--- FAIL: .*$`).FindAllString(res.Output, -1); len(fails) > 0 || res.ExitCode != 0 {
		t.Errorf("kernel suite failed (exit %d):\n%s", res.ExitCode, strings.Join(fails, "\n"))
	}
	if run == kernelSuite && !strings.Contains(res.Output, "--- PASS: TestDataPlane") {
		t.Errorf("TestDataPlane did not pass in the machine")
	}
}

// plainTestBinary returns this test binary, or, when it was built with
// -race (too slow under TCG), a copy built without it.
func plainTestBinary(t *testing.T) string {
	t.Helper()
	if !raceEnabled {
		self, err := os.Executable()
		if err != nil {
			t.Fatal(err)
		}
		return self
	}
	bin := filepath.Join(t.TempDir(), "tunnel.test")
	out, err := exec.Command("go", "test", "-c", "-o", bin, "github.com/ferryvpn/ferry/tunnel").CombinedOutput()
	if err != nil {
		t.Fatalf("building the tunnel tests without -race: %v\n%s", err, out)
	}
	return bin
}

// requireKernelLink fails t if -tunnel.kernel is set and the interface
// in namespace ns is not a kernel WireGuard interface: a silent fallback
// to the embedded device would test the wrong path.
func requireKernelLink(t testing.TB, ns, iface string) {
	t.Helper()
	if !*kernelDevice {
		return
	}
	out, err := exec.Command("ip", "-n", ns, "-d", "-j", "link", "show", "dev", iface).Output()
	if err != nil {
		t.Fatalf("ip -d link show %s: %v", iface, err)
	}
	var links []struct {
		LinkInfo struct {
			Kind string `json:"info_kind"`
		} `json:"linkinfo"`
	}
	if err := json.Unmarshal(out, &links); err != nil || len(links) != 1 {
		t.Fatalf("ip -d -j link show %s: %v: %s", iface, err, out)
	}
	if links[0].LinkInfo.Kind != "wireguard" {
		t.Fatalf("%s is a %q device, want kernel wireguard", iface, links[0].LinkInfo.Kind)
	}
}
