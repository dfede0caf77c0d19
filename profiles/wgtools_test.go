package profiles_test

import (
	"fmt"
	"net"
	"net/netip"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"golang.zx2c4.com/wireguard/conn"
	"golang.zx2c4.com/wireguard/device"
	"golang.zx2c4.com/wireguard/ipc"
	"golang.zx2c4.com/wireguard/tun"

	"github.com/ferryvpn/ferry/profiles"
)

// The rendered config is accepted by the official tools: wg-quick strips it
// to wg's format and wg setconf loads that into a real (userspace) device.
func TestRenderedConfigAcceptedByWireGuardTools(t *testing.T) {
	for _, tool := range []string{"wg", "wg-quick"} {
		if _, err := exec.LookPath(tool); err != nil {
			t.Skipf("%s not installed (apt wireguard-tools): %v", tool, err)
		}
	}
	if os.Geteuid() != 0 {
		t.Skip("needs root to create a TUN device for wg setconf")
	}
	prof, err := profiles.ParseFile([]byte(goodFile), netip.MustParsePrefix("100.64.0.0/16"))
	if err != nil {
		t.Fatal(err)
	}
	ifname := fmt.Sprintf("fpt%d", os.Getpid()%100000)
	dev := startUserspaceDevice(t, ifname)
	defer dev.Close()
	for _, p := range prof {
		peer := profiles.Peer{UserID: "alice", Device: "laptop", Address: netip.MustParseAddr("100.64.3.7"), Expires: time.Now().Add(time.Hour)}
		conf := profiles.RenderConfig(peer, p, profiles.Server{PublicKey: pubkey(t), Endpoint: "127.0.0.1:51820"}, pubkey(t))
		path := filepath.Join(t.TempDir(), "wg0.conf")
		if err := os.WriteFile(path, []byte(conf), 0o600); err != nil {
			t.Fatal(err)
		}
		out, err := exec.Command("wg-quick", "strip", path).CombinedOutput()
		if err != nil {
			t.Fatalf("wg-quick strip rejected the %s config: %v\n%s\n%s", p.Name, err, out, conf)
		}
		stripped := filepath.Join(t.TempDir(), "stripped.conf")
		if err := os.WriteFile(stripped, out, 0o600); err != nil {
			t.Fatal(err)
		}
		if out, err := exec.Command("wg", "setconf", ifname, stripped).CombinedOutput(); err != nil {
			t.Fatalf("wg setconf rejected the %s config: %v\n%s", p.Name, err, out)
		}
		show, err := exec.Command("wg", "show", ifname, "allowed-ips").CombinedOutput()
		if err != nil {
			t.Fatal(err)
		}
		for _, a := range p.AllowedIPs(false) {
			if !strings.Contains(string(show), a.String()) {
				t.Fatalf("device does not route %s after setconf:\n%s", a, show)
			}
		}
	}
}

type userspaceDevice struct {
	dev *device.Device
	ln  net.Listener
}

func (d *userspaceDevice) Close() {
	d.ln.Close()
	d.dev.Close()
}

// startUserspaceDevice runs wireguard-go in-process with its UAPI socket, so
// that the wg tool can configure it.
func startUserspaceDevice(t *testing.T, name string) *userspaceDevice {
	t.Helper()
	td, err := tun.CreateTUN(name, 1420)
	if err != nil {
		t.Skipf("cannot create TUN device: %v", err)
	}
	dev := device.NewDevice(td, conn.NewDefaultBind(), device.NewLogger(device.LogLevelSilent, ""))
	f, err := ipc.UAPIOpen(name)
	if err != nil {
		dev.Close()
		t.Fatal(err)
	}
	ln, err := ipc.UAPIListen(name, f)
	if err != nil {
		dev.Close()
		t.Fatal(err)
	}
	go func() {
		for {
			c, err := ln.Accept()
			if err != nil {
				return
			}
			go dev.IpcHandle(c)
		}
	}()
	return &userspaceDevice{dev: dev, ln: ln}
}
