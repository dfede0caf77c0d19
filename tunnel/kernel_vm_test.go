package tunnel_test

import (
	"flag"
	"regexp"
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
	run := kernelSuite
	if *vmRun != "" {
		run = *vmRun
	}
	want := []string{"TestDataPlane"}
	if run != kernelSuite {
		want = nil
	}
	vmtest.RunTests(t, kernelMachine(t, run), want...)
}

// kernelMachine is the machine of the kernel suite, running the tunnel
// package's tests that match run on kernel WireGuard (-tunnel.kernel). It
// skips t, saying why, where the machine cannot be had.
func kernelMachine(t testing.TB, run string) vmtest.Config {
	t.Helper()
	tunneltest.Require(t, "wg", "wg-quick", "sysctl", "nft", "nsenter", "bash")
	k := vmtest.Require(t)
	wgGo := findWireGuardGo(t)
	ferry := tunneltest.BuildFerry(t)
	testBin := vmtest.PlainTestBinary(t, "github.com/ferryvpn/ferry/tunnel")
	return vmtest.Config{
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
	}
}

// BenchmarkConvergeKernelVM reports how long a gateway on kernel
// WireGuard takes from start to a device holding 10,000 peers
// (TestConvergeTenThousandPeers in the kernel suite's machine). The
// machine runs under QEMU's software emulation (TCG), several times
// slower than hardware, so the figure has no goal; it shows the kernel
// path converging at this scale and how its time moves.
//
//	go test -run '^$' -bench ConvergeKernelVM -benchtime 1x ./tunnel/
func BenchmarkConvergeKernelVM(b *testing.B) {
	if *kernelDevice {
		b.Skip("already in the kernel suite's machine")
	}
	cfg := kernelMachine(b, "^TestConvergeTenThousandPeers$")
	b.ResetTimer()
	res := vmtest.RunTests(b, cfg, "TestConvergeTenThousandPeers")
	b.StopTimer()
	m := convergedLine.FindStringSubmatch(res.Output)
	if m == nil {
		b.Fatalf("the machine's output has no convergence line:\n%s", res.Output)
	}
	took, err := time.ParseDuration(m[1])
	if err != nil {
		b.Fatal(err)
	}
	b.ReportMetric(took.Seconds(), "vm-kernel-converge-10k-s")
}

// convergedLine is TestConvergeTenThousandPeers's report on kernel
// WireGuard.
var convergedLine = regexp.MustCompile(`converged 10000 peers on the wireguard device: (\S+) from start`)

// requireKernelLink fails t if -tunnel.kernel is set and the interface
// in namespace ns is not a kernel WireGuard interface: a silent fallback
// to the embedded device would test the wrong path.
func requireKernelLink(t testing.TB, ns, iface string) {
	t.Helper()
	if *kernelDevice {
		vmtest.RequireKernelLink(t, ns, iface)
	}
}
