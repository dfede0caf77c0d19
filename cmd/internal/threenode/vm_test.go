package threenode

import (
	"context"
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

// vmModules are the kernel modules the scenario needs in the guest: the
// data plane's, and the bridge of the hub.
var vmModules = []string{
	"wireguard", "tun", "veth", "bridge",
	"nf_tables", "nft_ct", "nft_chain_nat", "nft_masq", "nft_nat", "nft_objref", "nf_conntrack_netlink",
}

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
	testBin := plainTestBinary(t)
	res, err := vmtest.Run(context.Background(), vmtest.Config{
		Kernel:  k,
		Modules: vmModules,
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
	})
	if err != nil {
		if res != nil {
			t.Logf("guest output:\n%s\nconsole:\n%s", res.Output, res.Console)
		}
		t.Fatal(err)
	}
	t.Logf("three-node scenario in the machine (%s, %s in all, boot %s):\n%s", k.Release, res.Elapsed.Round(time.Second), res.Boot.Round(100*time.Millisecond), res.Output)
	if fails := regexp.MustCompile(`(?m)^\s*--- FAIL: .*$`).FindAllString(res.Output, -1); len(fails) > 0 || res.ExitCode != 0 {
		t.Errorf("the scenario failed in the machine (exit %d):\n%s", res.ExitCode, strings.Join(fails, "\n"))
	}
	if !strings.Contains(res.Output, "--- PASS: TestThreeNodes") {
		t.Errorf("TestThreeNodes did not pass in the machine")
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
	bin := filepath.Join(t.TempDir(), "threenode.test")
	out, err := exec.Command("go", "test", "-c", "-o", bin, "github.com/ferryvpn/ferry/cmd/internal/threenode").CombinedOutput()
	if err != nil {
		t.Fatalf("building the threenode tests without -race: %v\n%s", err, out)
	}
	return bin
}
