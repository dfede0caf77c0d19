package tunnel_test

import (
	"flag"
	"testing"
	"time"

	"github.com/ferryvpn/ferry/tunnel/tunneltest"
	"github.com/ferryvpn/ferry/tunnel/vmtest"
)

// vmRun narrows what TestKernelSuiteVM runs in its machine.
var vmRun = flag.String("tunnel.vmrun", "", "run only these tests in TestKernelSuiteVM's machine (default: the whole kernel suite)")

// kernelDevice is set inside the kernel suite's virtual machine: the
// gateways then run on kernel WireGuard, and a test fails if they fell
// back to the embedded device.
var kernelDevice = flag.Bool("tunnel.kernel", false, "run gateways on kernel WireGuard and fail without it (set by TestKernelSuiteVM)")

// kernelSuite is the one table of data-plane tests that runs on both
// paths: on the host against the embedded wireguard-go device, and in a
// virtual machine booting Debian's kernel against wireguard.ko.
const kernelSuite = `^(TestDataPlane|TestGatewayRestartOverDevice|TestConvergeTenThousandPeers|TestListenPortInUse|TestCaptureDataPlane)$`

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
	testBin := vmtest.PlainTestBinary(t, "github.com/ferryvpn/ferry/tunnel")
	run := kernelSuite
	if *vmRun != "" {
		run = *vmRun
	}
	want := []string{"TestDataPlane"}
	if run != kernelSuite {
		want = nil
	}
	vmtest.RunTests(t, vmtest.Config{
		Kernel:  k,
		Modules: vmtest.DataPlaneModules(),
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
	}, want...)
}

// requireKernelLink fails t if -tunnel.kernel is set and the interface
// in namespace ns is not a kernel WireGuard interface: a silent fallback
// to the embedded device would test the wrong path.
func requireKernelLink(t testing.TB, ns, iface string) {
	t.Helper()
	if *kernelDevice {
		vmtest.RequireKernelLink(t, ns, iface)
	}
}
