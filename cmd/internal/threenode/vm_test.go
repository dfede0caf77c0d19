package threenode

import (
	"testing"
	"time"

	"github.com/ferryvpn/ferry/tunnel/tunneltest"
	"github.com/ferryvpn/ferry/tunnel/vmtest"
)

// TestThreeNodesKernelVM runs TestThreeNodes in a QEMU machine (TCG)
// booting Debian's cloud kernel with wireguard.ko loaded: the three
// ferryd nodes and the client then run on kernel WireGuard, and the
// scenario fails if any interface is not a kernel one. It skips, saying
// why, where QEMU, busybox or the kernel package cannot be had; .ci/run
// installs them.
func TestThreeNodesKernelVM(t *testing.T) {
	if *hubNS != "" || *kernelOnly {
		t.Skip("already in the machine")
	}
	if testing.Short() {
		t.Skip("boots a virtual machine")
	}
	tunneltest.Require(t, "wg", "sysctl")
	k := vmtest.Require(t)
	ferryd := ferrydBinary(t)
	testBin := vmtest.PlainTestBinary(t, "github.com/ferryvpn/ferry/cmd/internal/threenode")
	vmtest.RunTests(t, vmtest.Config{
		Kernel:  k,
		Modules: vmtest.DataPlaneModules(),
		Tools:   []string{"ip", "wg", "sysctl"},
		Files: map[string]string{
			"/usr/bin/threenode.test": testBin,
			"/usr/bin/ferryd":         ferryd,
		},
		Env: []string{"FERRY_THREENODE_FERRYD=/usr/bin/ferryd", "HOME=/root"},
		Command: []string{"/usr/bin/threenode.test", "-test.run", "^TestThreeNodes$", "-test.v", "-test.count=1",
			"-test.timeout=12m", "-threenode.kernel"},
		MemoryMiB: 2048,
		Timeout:   14 * time.Minute,
	}, "TestThreeNodes")
}
