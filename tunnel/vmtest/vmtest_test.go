package vmtest_test

import (
	"context"
	"strings"
	"testing"
	"time"

	"github.com/ferryvpn/ferry/tunnel/vmtest"
)

// TestBootKernelWireGuard boots Debian's kernel, loads wireguard.ko and
// creates a kernel WireGuard interface with the host's ip(8).
func TestBootKernelWireGuard(t *testing.T) {
	k := vmtest.Require(t)
	res, err := vmtest.Run(context.Background(), vmtest.Config{
		Kernel:  k,
		Modules: []string{"wireguard"},
		Tools:   []string{"ip"},
		Command: []string{"sh", "-c", "uname -r && /usr/bin/ip link add wgt0 type wireguard && /usr/bin/ip -d link show wgt0 && exit 3"},
		Timeout: 3 * time.Minute,
	})
	if err != nil {
		t.Fatalf("%v\nconsole:\n%s", err, res.Console)
	}
	t.Logf("boot and run took %s (boot %s):\n%s", res.Elapsed, res.Boot, res.Output)
	if res.Boot <= 0 || res.Boot >= res.Elapsed {
		t.Errorf("Boot %s: want the time until the command started, more than 0 and less than the whole run (%s)", res.Boot, res.Elapsed)
	}
	if res.ExitCode != 3 {
		t.Errorf("exit code %d, want 3 (the command's)\nconsole:\n%s", res.ExitCode, res.Console)
	}
	if !strings.Contains(res.Output, k.Release) || !strings.Contains(res.Output, "wireguard") {
		t.Errorf("no kernel WireGuard interface in the guest:\n%s\nconsole:\n%s", res.Output, res.Console)
	}
}

func TestLoadOrder(t *testing.T) {
	k := vmtest.Require(t)
	order, err := k.LoadOrder("wireguard")
	if err != nil {
		t.Fatal(err)
	}
	if len(order) < 2 || !strings.HasSuffix(order[len(order)-1], "/wireguard.ko") {
		t.Fatalf("load order %v: want dependencies, then wireguard.ko", order)
	}
	if _, err := k.LoadOrder("no_such_module"); err == nil {
		t.Error("a missing module was not reported")
	}
}
