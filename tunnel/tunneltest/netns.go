// Package tunneltest runs ferry's data plane for tests and benchmarks in
// network namespaces: a topology of client, gateway and "VPC" namespaces
// joined by veth pairs, and agents — the test binary itself, re-executed
// inside a namespace — that run a gateway with its cluster node, a WireGuard
// client, or echo services, and obey a control socket.
//
// Namespaces are per thread, so nothing here enters one from a goroutine:
// every process that must live in a namespace is started with
// `ip netns exec`. Names carry the test process's pid, since UAPI sockets
// and interface names are machine-wide.
package tunneltest

import (
	"bytes"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
)

// Require skips t unless this process can build namespaces: root, ip(8)
// and the tools listed.
func Require(t testing.TB, tools ...string) {
	t.Helper()
	if os.Geteuid() != 0 {
		t.Skip("needs root for network namespaces, WireGuard devices and nftables")
	}
	for _, tool := range append([]string{"ip"}, tools...) {
		if _, err := exec.LookPath(tool); err != nil {
			t.Skipf("needs %s on PATH: %v", tool, err)
		}
	}
	if _, err := os.Stat("/dev/net/tun"); err != nil {
		t.Skipf("needs /dev/net/tun: %v", err)
	}
}

// Net is a set of namespaces and links that Close removes.
type Net struct {
	t      testing.TB
	suffix string
	ns     []string
	procs  []*os.Process
}

// NewNet returns an empty topology whose names end in a per-process suffix.
func NewNet(t testing.TB) *Net {
	n := &Net{t: t, suffix: fmt.Sprint(os.Getpid() % 100000)}
	t.Cleanup(n.Close)
	return n
}

// Name returns base with the topology's suffix: unique machine-wide.
func (n *Net) Name(base string) string { return base + n.suffix }

// NS creates a namespace named Name(base) with loopback up.
func (n *Net) NS(base string) string {
	n.t.Helper()
	name := n.Name(base)
	exec.Command("ip", "netns", "del", name).Run() // a leftover of a crashed run
	n.Must("ip", "netns", "add", name)
	n.ns = append(n.ns, name)
	n.Must("ip", "-n", name, "link", "set", "lo", "up")
	return name
}

// Veth joins namespaces a and b with a veth pair named ifA/ifB, giving
// each side an address (CIDR, empty for none) and bringing both up.
func (n *Net) Veth(a, ifA, addrA, b, ifB, addrB string) {
	n.t.Helper()
	n.Must("ip", "link", "add", ifA, "netns", a, "type", "veth", "peer", "name", ifB, "netns", b)
	for _, s := range [][3]string{{a, ifA, addrA}, {b, ifB, addrB}} {
		if s[2] != "" {
			n.Must("ip", "-n", s[0], "addr", "add", s[2], "dev", s[1])
		}
		n.Must("ip", "-n", s[0], "link", "set", s[1], "up")
	}
}

// Must runs a command and fails the test if it fails.
func (n *Net) Must(name string, args ...string) string {
	n.t.Helper()
	out, err := exec.Command(name, args...).CombinedOutput()
	if err != nil {
		n.t.Fatalf("%s %s: %v\n%s", name, strings.Join(args, " "), err, out)
	}
	return string(out)
}

// In runs a command inside namespace ns and returns its combined output.
func (n *Net) In(ns string, env []string, name string, args ...string) (string, error) {
	cmd := exec.Command("ip", append([]string{"netns", "exec", ns, name}, args...)...)
	cmd.Env = append(os.Environ(), env...)
	var out bytes.Buffer
	cmd.Stdout, cmd.Stderr = &out, &out
	err := cmd.Run()
	return out.String(), err
}

// Sysctl sets a sysctl inside ns.
func (n *Net) Sysctl(ns, key, value string) {
	n.t.Helper()
	n.Must("ip", "netns", "exec", ns, "sysctl", "-qw", key+"="+value)
}

// Track makes Close kill p.
func (n *Net) Track(p *os.Process) { n.procs = append(n.procs, p) }

// Close kills every process started in the namespaces and removes them;
// it runs even when the test failed.
func (n *Net) Close() {
	for _, p := range n.procs {
		p.Kill() // an error means it already exited
		p.Wait()
	}
	n.procs = nil
	for i := len(n.ns) - 1; i >= 0; i-- {
		ns := n.ns[i]
		// Processes left in the namespace (wireguard-go daemons started by
		// wg-quick) are ours: end them by pid.
		if out, err := exec.Command("ip", "netns", "pids", ns).Output(); err == nil {
			for _, f := range strings.Fields(string(out)) {
				var pid int
				if _, err := fmt.Sscan(f, &pid); err == nil && pid > 1 {
					if p, err := os.FindProcess(pid); err == nil {
						p.Kill()
					}
				}
			}
		}
		exec.Command("ip", "netns", "del", ns).Run()
	}
	n.ns = nil
	// UAPI sockets of userspace devices that were killed rather than
	// stopped; ours carry the suffix.
	if socks, err := filepath.Glob("/var/run/wireguard/*" + n.suffix + ".sock"); err == nil {
		for _, s := range socks {
			os.Remove(s)
		}
	}
}
