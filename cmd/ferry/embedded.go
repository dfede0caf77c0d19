package main

import (
	"errors"
	"fmt"
	"io"
	"io/fs"
	"net"
	"net/netip"
	"os"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"sync"
	"time"

	"golang.zx2c4.com/wireguard/wgctrl/wgtypes"
)

// This file plans the embedded tunnel (what to configure, which ip
// commands to run, how the detached process reports); the platform files
// carry it out.

// defaultRunDir holds the embedded tunnel's pid and log files; it is
// root's, like the tunnel.
const defaultRunDir = "/run/ferry"

// Files under the run directory.
const (
	filePid = ifaceName + ".pid"
	fileLog = ifaceName + ".log"
)

// embeddedOptions configure runEmbedded.
type embeddedOptions struct {
	Conf wgConf
	// Name is the interface to create.
	Name string
	// RunDir receives the pid file while the tunnel runs.
	RunDir string
	// Log receives what goes wrong, and wireguard-go's errors.
	Log io.Writer
	// Ready is called once the tunnel is up.
	Ready func()
	// FastFailover runs the dead-path watchdog (failover.go).
	FastFailover bool
}

// deviceConfig is the WireGuard configuration of the embedded device: the
// device's key and its one peer, the cluster.
func deviceConfig(c wgConf, endpoint *net.UDPAddr) (wgtypes.Config, error) {
	if c.PrivateKey == nil {
		return wgtypes.Config{}, errors.New("the profile has no private key")
	}
	peerKey, err := wgtypes.ParseKey(c.PeerPublicKey)
	if err != nil {
		return wgtypes.Config{}, fmt.Errorf("server public key: %w", err)
	}
	pc := wgtypes.PeerConfig{PublicKey: peerKey, Endpoint: endpoint, ReplaceAllowedIPs: true}
	for _, p := range c.AllowedIPs {
		pc.AllowedIPs = append(pc.AllowedIPs, net.IPNet{IP: p.Addr().AsSlice(), Mask: net.CIDRMask(p.Bits(), p.Addr().BitLen())})
	}
	if c.KeepaliveSeconds > 0 {
		ka := time.Duration(c.KeepaliveSeconds) * time.Second
		pc.PersistentKeepaliveInterval = &ka
	}
	if c.PresharedKey != "" {
		psk, err := wgtypes.ParseKey(c.PresharedKey)
		if err != nil {
			return wgtypes.Config{}, fmt.Errorf("preshared key: %w", err)
		}
		pc.PresharedKey = &psk
	}
	key := c.PrivateKey.k
	return wgtypes.Config{PrivateKey: &key, ReplacePeers: true, Peers: []wgtypes.PeerConfig{pc}}, nil
}

// tunnelRoutes returns the routes into the tunnel: the allowed IPs, with a
// default route split into halves, which win over the existing default
// route by being more specific and leave it in place for the endpoint.
func tunnelRoutes(allowed []netip.Prefix) []netip.Prefix {
	var out []netip.Prefix
	for _, p := range allowed {
		switch {
		case p.Bits() == 0 && p.Addr().Is4():
			out = append(out, netip.MustParsePrefix("0.0.0.0/1"), netip.MustParsePrefix("128.0.0.0/1"))
		case p.Bits() == 0:
			out = append(out, netip.MustParsePrefix("::/1"), netip.MustParsePrefix("8000::/1"))
		default:
			out = append(out, p)
		}
	}
	return out
}

// needsBypass reports whether the server's own address falls into the
// tunnel's routes, so that it needs a host route around the tunnel.
func needsBypass(allowed []netip.Prefix, endpoint netip.Addr) bool {
	for _, p := range allowed {
		if p.Contains(endpoint) {
			return true
		}
	}
	return false
}

// hostRoute is how the server's address is reached outside the tunnel.
type hostRoute struct {
	Dst netip.Addr
	Via netip.Addr // invalid when on link
	Dev string
}

// args returns the route's "ip route add|del" arguments after the verb.
func (r hostRoute) args() []string {
	a := []string{netip.PrefixFrom(r.Dst, r.Dst.BitLen()).String()}
	if r.Via.IsValid() {
		a = append(a, "via", r.Via.String())
	}
	return append(a, "dev", r.Dev)
}

// parseRouteGet reads the answer of "ip route get DST":
// "203.0.113.5 via 10.0.2.2 dev eth0 src 10.0.2.15 uid 0".
func parseRouteGet(dst netip.Addr, out string) (hostRoute, error) {
	r := hostRoute{Dst: dst}
	f := strings.Fields(out)
	for i := 0; i+1 < len(f); i++ {
		switch f[i] {
		case "via":
			a, err := netip.ParseAddr(f[i+1])
			if err != nil {
				return hostRoute{}, fmt.Errorf("route to %s: bad gateway %q", dst, f[i+1])
			}
			r.Via = a
		case "dev":
			r.Dev = f[i+1]
		}
	}
	if r.Dev == "" {
		return hostRoute{}, fmt.Errorf("route to %s: no device in %q", dst, strings.TrimSpace(out))
	}
	if r.Dev == ifaceName {
		return hostRoute{}, fmt.Errorf("route to %s already goes through %s", dst, ifaceName)
	}
	return r, nil
}

func family(a netip.Addr) string {
	if a.Is4() {
		return "-4"
	}
	return "-6"
}

// linkPlan returns the ip commands that configure the interface, and those
// that undo what deleting the interface does not (its own addresses and
// routes go with it).
func linkPlan(name string, c wgConf, bypass *hostRoute) (up, down [][]string) {
	for _, a := range c.Addresses {
		up = append(up, []string{"ip", family(a.Addr()), "address", "add", a.String(), "dev", name})
	}
	up = append(up, []string{"ip", "link", "set", "dev", name, "mtu", strconv.Itoa(c.MTU), "up"})
	if bypass != nil {
		up = append(up, append([]string{"ip", family(bypass.Dst), "route", "add"}, bypass.args()...))
		down = append(down, append([]string{"ip", family(bypass.Dst), "route", "del"}, bypass.args()...))
	}
	for _, r := range tunnelRoutes(c.AllowedIPs) {
		up = append(up, []string{"ip", family(r.Addr()), "route", "add", r.String(), "dev", name})
	}
	return up, down
}

// resolvconfInput is the resolv.conf fragment "resolvconf -a" takes.
func resolvconfInput(c wgConf) string {
	var b strings.Builder
	for _, a := range c.DNS {
		fmt.Fprintf(&b, "nameserver %s\n", a)
	}
	if len(c.Search) > 0 {
		fmt.Fprintf(&b, "search %s\n", strings.Join(c.Search, " "))
	}
	return b.String()
}

// dnsStep is one command of a DNS plan, with its standard input.
type dnsStep struct {
	Argv  []string
	Stdin string
}

// dnsPlan is how the embedded tunnel hands the profile's DNS (servers and
// search domains) to the system, the way wg-quick does: resolvconf when it
// is installed, else systemd-resolved through resolvectl, else nothing,
// said plainly in Warning.
type dnsPlan struct {
	// Via names the tool used; empty when DNS is not configured.
	Via string
	// Up applies the DNS; Down undoes it.
	Up   []dnsStep
	Down [][]string
	// Warning says why DNS the profile sets is not configured.
	Warning string
}

// planDNS plans the DNS of interface name; lookPath finds the tools.
func planDNS(name string, c wgConf, lookPath func(string) (string, error)) dnsPlan {
	if len(c.DNS)+len(c.Search) == 0 {
		return dnsPlan{}
	}
	if _, err := lookPath("resolvconf"); err == nil {
		// As wg-quick: metric 0 and exclusive (-x), so the tunnel's
		// servers answer every name while it is up.
		return dnsPlan{Via: "resolvconf",
			Up:   []dnsStep{{Argv: []string{"resolvconf", "-a", name, "-m", "0", "-x"}, Stdin: resolvconfInput(c)}},
			Down: [][]string{{"resolvconf", "-d", name, "-f"}}}
	}
	if _, err := lookPath("resolvectl"); err == nil {
		p := dnsPlan{Via: "resolvectl", Down: [][]string{{"resolvectl", "revert", name}}}
		domains := slices.Clone(c.Search)
		if len(c.DNS) > 0 {
			argv := []string{"resolvectl", "dns", name}
			for _, a := range c.DNS {
				argv = append(argv, a.String())
			}
			p.Up = append(p.Up, dnsStep{Argv: argv})
			// "~." is what resolvconf -x means to systemd-resolved: this
			// link's servers get every name, not only the search domains.
			domains = append(domains, "~.")
		}
		p.Up = append(p.Up, dnsStep{Argv: append([]string{"resolvectl", "domain", name}, domains...)})
		return p
	}
	var what []string
	for _, a := range c.DNS {
		what = append(what, a.String())
	}
	if len(c.Search) > 0 {
		what = append(what, "search "+strings.Join(c.Search, " "))
	}
	return dnsPlan{Warning: fmt.Sprintf("the profile sets DNS (%s), but neither resolvconf nor resolvectl (systemd-resolved) is installed: "+
		"DNS was not configured, so names of the profile's host rules resolve only if your resolver asks %s", strings.Join(what, "; "), dnsTarget(c))}
}

// dnsTarget names the profile's DNS servers for a message.
func dnsTarget(c wgConf) string {
	if len(c.DNS) == 0 {
		return "ferry's DNS server"
	}
	var s []string
	for _, a := range c.DNS {
		s = append(s, a.String())
	}
	return strings.Join(s, " or ")
}

// daemonArgs are the arguments of the detached "ferry up" that runs the
// embedded tunnel and reports on file descriptor fd.
func daemonArgs(dir string, fd int, fastFailover bool) []string {
	args := []string{"up", "--foreground", "--config-dir", dir, "--ready-fd", strconv.Itoa(fd)}
	if !fastFailover {
		args = append(args, "--no-fast-failover")
	}
	return args
}

// isDaemonCmdline reports whether a /proc/PID/cmdline is that of a
// foreground "ferry up", so that down never signals a process that merely
// reuses a stale pid.
func isDaemonCmdline(b []byte) bool {
	args := strings.Split(strings.TrimRight(string(b), "\x00"), "\x00")
	if len(args) < 3 || !strings.HasPrefix(filepath.Base(args[0]), "ferry") {
		return false
	}
	up, fg := false, false
	for _, a := range args[1:] {
		up = up || a == "up"
		fg = fg || a == "--foreground"
	}
	return up && fg
}

// writePid records this process as the running tunnel.
func writePid(runDir string) error {
	if err := os.MkdirAll(runDir, 0o700); err != nil {
		return err
	}
	return os.WriteFile(filepath.Join(runDir, filePid), []byte(strconv.Itoa(os.Getpid())+"\n"), 0o600)
}

// readPid returns the pid of the running tunnel; fs.ErrNotExist when none
// was recorded.
func readPid(runDir string) (int, error) {
	b, err := os.ReadFile(filepath.Join(runDir, filePid))
	if err != nil {
		return 0, err
	}
	pid, err := strconv.Atoi(strings.TrimSpace(string(b)))
	if err != nil || pid <= 1 {
		return 0, fmt.Errorf("%s: malformed pid %q", filepath.Join(runDir, filePid), strings.TrimSpace(string(b)))
	}
	return pid, nil
}

// removePid forgets the running tunnel; a missing file is no error.
func removePid(runDir string) error {
	if err := os.Remove(filepath.Join(runDir, filePid)); err != nil && !errors.Is(err, fs.ErrNotExist) {
		return err
	}
	return nil
}

// readyReporter reports the outcome of a detached "ferry up" to the ferry
// that started it, once: "ok", or "error: " and the reason. A nil
// reporter reports nothing.
type readyReporter struct {
	once sync.Once
	f    *os.File
}

// openReady returns a reporter writing to file descriptor fd.
func openReady(fd int) (*readyReporter, error) {
	if fd < 3 {
		return nil, fmt.Errorf("--ready-fd %d: want an inherited descriptor above 2", fd)
	}
	f := os.NewFile(uintptr(fd), "ready")
	if f == nil {
		return nil, fmt.Errorf("--ready-fd %d: not open", fd)
	}
	return &readyReporter{f: f}, nil
}

// done reports err (nil: connected) the first time and returns err.
func (r *readyReporter) done(err error) error {
	if r == nil {
		return err
	}
	r.once.Do(func() {
		msg := "ok\n"
		if err != nil {
			msg = "error: " + err.Error() + "\n"
		}
		_, _ = r.f.WriteString(msg) // the starter reads EOF as failure anyway
		r.f.Close()
	})
	return err
}

// readReady reads what a detached "ferry up" reported.
func readReady(r io.Reader) error {
	b, err := io.ReadAll(io.LimitReader(r, 64<<10))
	s := strings.TrimSpace(string(b))
	switch {
	case s == "ok":
		return nil
	case strings.HasPrefix(s, "error: "):
		return errors.New(strings.TrimPrefix(s, "error: "))
	case err != nil:
		return fmt.Errorf("waiting for the tunnel: %w", err)
	}
	return errors.New("the background ferry exited before connecting")
}
