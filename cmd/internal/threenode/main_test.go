package threenode

import (
	"flag"
	"os"
	"os/exec"
	"path/filepath"
	"testing"

	"github.com/ferryvpn/ferry/tunnel/tunneltest"
)

var (
	// hubNS is set when this process runs inside the hub namespace that
	// TestThreeNodes created: it then runs the scenario itself.
	hubNS = flag.String("threenode.hub", "", "run the scenario in this (hub) namespace (set by TestThreeNodes)")
	// kernelOnly makes every WireGuard interface of the scenario a kernel
	// one, failing on a fallback to the embedded device (set in the VM).
	kernelOnly = flag.Bool("threenode.kernel", false, "require kernel WireGuard for the nodes and the client (set by TestThreeNodesKernelVM)")
)

func TestMain(m *testing.M) {
	tunneltest.MaybeRunAgent()
	flag.Parse()
	os.Exit(m.Run())
}

// TestThreeNodes runs the scenario (scenario_test.go) in a namespace of
// its own, the hub: the test process re-executes itself there, so the
// identity provider it serves, the browser it drives and the bridge that
// joins the nodes never touch the host's own network.
func TestThreeNodes(t *testing.T) {
	tunneltest.Require(t, "wg", "sysctl")
	if testing.Short() {
		t.Skip("runs three ferryd processes")
	}
	if *hubNS != "" {
		runScenario(t)
		return
	}
	n := tunneltest.NewNet(t)
	hub := n.NS("tnhub")
	args := []string{"netns", "exec", hub, os.Args[0], "-test.run=^TestThreeNodes$", "-test.v", "-threenode.hub=" + hub}
	if *kernelOnly {
		args = append(args, "-threenode.kernel")
	}
	cmd := exec.Command("ip", args...)
	cmd.Env = append(os.Environ(), "FERRY_THREENODE_FERRYD="+ferrydBinary(t))
	cmd.Stdout, cmd.Stderr = os.Stdout, os.Stderr
	if err := cmd.Run(); err != nil {
		t.Fatalf("the scenario in namespace %s failed: %v", hub, err)
	}
}

// ferrydBinary returns the ferryd binary to run: FERRY_THREENODE_FERRYD
// when set (the VM, the hub process), else one built now.
func ferrydBinary(t testing.TB) string {
	t.Helper()
	if bin := os.Getenv("FERRY_THREENODE_FERRYD"); bin != "" {
		return bin
	}
	bin := filepath.Join(t.TempDir(), "ferryd")
	out, err := exec.Command("go", "build", "-o", bin, "github.com/ferryvpn/ferry/cmd/ferryd").CombinedOutput()
	if err != nil {
		t.Fatalf("building ferryd: %v\n%s", err, out)
	}
	return bin
}
