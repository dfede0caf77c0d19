package tunnel_test

import (
	"errors"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"golang.zx2c4.com/wireguard/wgctrl/wgtypes"

	"github.com/ferryvpn/ferry/cluster/clustertest"
	"github.com/ferryvpn/ferry/tunnel"
	"github.com/ferryvpn/ferry/tunnel/tunneltest"
)

// TestListenPortInUse starts a gateway on a UDP port that something else
// in its namespace already holds: a plain UDP socket, or another
// WireGuard device (a kernel one in the kernel suite's machine, stock
// wireguard-go on the host). The start must fail with an error naming the
// port, and leave no interface behind. It runs on both paths.
func TestListenPortInUse(t *testing.T) {
	tunneltest.Require(t, "wg", "sysctl", "nft")
	n := tunneltest.NewNet(t)
	ca := clustertest.NewCA(t)
	caKey, err := ca.KeyPEM()
	if err != nil {
		t.Fatal(err)
	}
	srvKey, err := wgtypes.GeneratePrivateKey()
	if err != nil {
		t.Fatal(err)
	}
	for i, tc := range []struct {
		name string
		hold func(t *testing.T, ns string, port int)
	}{
		{"udp socket", func(t *testing.T, ns string, port int) {
			tunneltest.StartAgent(t, n, ns, "holder", tunneltest.AgentConfig{Echo: []string{fmt.Sprintf("udp:0.0.0.0:%d", port)}})
		}},
		{"another wireguard device", func(t *testing.T, ns string, port int) {
			otherWireGuard(t, n, ns, port)
		}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			ns := n.NS(fmt.Sprintf("lp%d", i))
			port := 51830 + i
			tc.hold(t, ns, port)
			iface := n.Name(fmt.Sprintf("lpw%d-", i))
			a, err := tunneltest.TryStartAgent(t, n, ns, "gw", tunneltest.AgentConfig{Server: &tunneltest.ServerConfig{
				NodeID: "n1", DataDir: filepath.Join(t.TempDir(), "gw"), Bind: "127.0.0.1:7946", Bootstrap: true,
				CACert: ca.CertPEM(), CAKey: caKey, Interface: iface, ListenPort: port, PrivateKey: srvKey.String(),
				Address: "100.64.0.1/16", NoFlows: true, Kernel: *kernelDevice}})
			if err == nil {
				a.Do(tunneltest.Request{Op: "quit"})
				t.Fatalf("the gateway started on udp port %d, which is taken", port)
			}
			want := fmt.Sprintf("listen port %d/udp is in use", port)
			if !strings.Contains(err.Error(), want) {
				t.Fatalf("start failed without saying %q:\n%v", want, err)
			}
			if *kernelDevice && strings.Contains(err.Error(), "wguser") {
				t.Fatalf("the kernel suite's gateway answered from the embedded device:\n%v", err)
			}
			if kind := linkKind(ns, iface); kind != "" {
				t.Errorf("a failed start left a %s interface %s behind", kind, iface)
			}
		})
	}
}

// otherWireGuard puts a WireGuard device that is not ferry's on udp port
// in ns: a kernel interface in the kernel suite, else stock wireguard-go.
func otherWireGuard(t *testing.T, n *tunneltest.Net, ns string, port int) {
	t.Helper()
	iface := n.Name("lpo")
	key := filepath.Join(t.TempDir(), "key")
	k, err := wgtypes.GeneratePrivateKey()
	if err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(key, []byte(k.String()), 0o600); err != nil {
		t.Fatal(err)
	}
	set := func() error {
		out, err := exec.Command("ip", "netns", "exec", ns, "wg", "set", iface, "private-key", key, "listen-port", fmt.Sprint(port)).CombinedOutput()
		if err != nil {
			return fmt.Errorf("wg set: %v: %s", err, out)
		}
		return nil
	}
	if *kernelDevice {
		n.Must("ip", "-n", ns, "link", "add", iface, "type", "wireguard")
		if err := set(); err != nil {
			t.Fatal(err)
		}
		n.Must("ip", "-n", ns, "link", "set", iface, "up")
		return
	}
	wgd := exec.Command("ip", "netns", "exec", ns, findWireGuardGo(t), "-f", iface)
	if err := wgd.Start(); err != nil {
		t.Fatal(err)
	}
	n.Track(wgd.Process)
	// The daemon's UAPI socket appears a moment after it starts.
	waitFor(t, "configuring stock wireguard-go", 10*time.Second, set)
	n.Must("ip", "-n", ns, "link", "set", iface, "up")
}

// TestPortInUseError checks the error's wording and what it unwraps to.
func TestPortInUseError(t *testing.T) {
	var err error = &tunnel.PortInUseError{Port: 51820, Err: errors.New("address already in use")}
	if !strings.Contains(err.Error(), "listen port 51820/udp is in use") {
		t.Errorf("error %q does not name the port", err)
	}
	var pe *tunnel.PortInUseError
	if !errors.As(fmt.Errorf("starting: %w", err), &pe) || pe.Port != 51820 {
		t.Errorf("errors.As does not find the port")
	}
}
