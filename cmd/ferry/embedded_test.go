package main

import (
	"errors"
	"io/fs"
	"net"
	"net/netip"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"
	"time"

	"golang.zx2c4.com/wireguard/wgctrl/wgtypes"
)

// localConf is serverConf with a private key, as ferry login writes it.
func localConf(t *testing.T, edit func(string) string) wgConf {
	t.Helper()
	k, err := newPrivateKey()
	if err != nil {
		t.Fatal(err)
	}
	text, err := withPrivateKey(edit(serverConf), k)
	if err != nil {
		t.Fatal(err)
	}
	c, err := parseConf(text)
	if err != nil {
		t.Fatal(err)
	}
	return c
}

func same(s string) string { return s }

func TestDeviceConfig(t *testing.T) {
	c := localConf(t, same)
	ep := &net.UDPAddr{IP: net.IPv4(203, 0, 113, 5), Port: 51820}
	cfg, err := deviceConfig(c, ep)
	if err != nil {
		t.Fatal(err)
	}
	if cfg.PrivateKey == nil || *cfg.PrivateKey != c.PrivateKey.k || !cfg.ReplacePeers || len(cfg.Peers) != 1 || cfg.ListenPort != nil {
		t.Fatalf("config %+v", cfg)
	}
	p := cfg.Peers[0]
	wantKey, _ := wgtypes.ParseKey("HIgo9xNzJMWLKASShiTqIybxZ0U3wGLiUeJ1PKf8ykw=")
	var allowed []string
	for _, n := range p.AllowedIPs {
		allowed = append(allowed, n.String())
	}
	if p.PublicKey != wantKey || p.Endpoint != ep || !p.ReplaceAllowedIPs || p.PersistentKeepaliveInterval == nil ||
		*p.PersistentKeepaliveInterval != 25*time.Second || p.PresharedKey != nil || !slices.Equal(allowed, []string{"10.0.0.0/16", "10.3.0.0/16"}) {
		t.Errorf("peer %+v", p)
	}
	if _, err := deviceConfig(wgConf{PeerPublicKey: c.PeerPublicKey}, ep); err == nil {
		t.Error("a config without a private key was accepted")
	}
}

func TestLinkPlan(t *testing.T) {
	split := localConf(t, same)
	full := localConf(t, func(s string) string { return strings.Replace(s, "10.0.0.0/16, 10.3.0.0/16", "0.0.0.0/0", 1) })
	bypass := &hostRoute{Dst: netip.MustParseAddr("203.0.113.5"), Via: netip.MustParseAddr("192.168.1.1"), Dev: "wlan0"}
	onLink := &hostRoute{Dst: netip.MustParseAddr("192.168.1.9"), Dev: "eth0"}
	tests := []struct {
		name     string
		conf     wgConf
		bypass   *hostRoute
		up, down []string
	}{
		{
			name: "split tunnel",
			conf: split,
			up: []string{
				"ip -4 address add 100.64.3.7/32 dev ferry0",
				"ip link set dev ferry0 mtu 1420 up",
				"ip -4 route add 10.0.0.0/16 dev ferry0",
				"ip -4 route add 10.3.0.0/16 dev ferry0",
			},
		},
		{
			name:   "full tunnel: default route in halves, the server around the tunnel",
			conf:   full,
			bypass: bypass,
			up: []string{
				"ip -4 address add 100.64.3.7/32 dev ferry0",
				"ip link set dev ferry0 mtu 1420 up",
				"ip -4 route add 203.0.113.5/32 via 192.168.1.1 dev wlan0",
				"ip -4 route add 0.0.0.0/1 dev ferry0",
				"ip -4 route add 128.0.0.0/1 dev ferry0",
			},
			down: []string{"ip -4 route del 203.0.113.5/32 via 192.168.1.1 dev wlan0"},
		},
		{
			name:   "server on the local link",
			conf:   full,
			bypass: onLink,
			up: []string{
				"ip -4 address add 100.64.3.7/32 dev ferry0",
				"ip link set dev ferry0 mtu 1420 up",
				"ip -4 route add 192.168.1.9/32 dev eth0",
				"ip -4 route add 0.0.0.0/1 dev ferry0",
				"ip -4 route add 128.0.0.0/1 dev ferry0",
			},
			down: []string{"ip -4 route del 192.168.1.9/32 dev eth0"},
		},
	}
	join := func(cmds [][]string) []string {
		var out []string
		for _, c := range cmds {
			out = append(out, strings.Join(c, " "))
		}
		return out
	}
	for _, tt := range tests {
		up, down := linkPlan(ifaceName, tt.conf, tt.bypass)
		if !slices.Equal(join(up), tt.up) || !slices.Equal(join(down), tt.down) {
			t.Errorf("%s:\nup   %q\ndown %q\nwant %q\n     %q", tt.name, join(up), join(down), tt.up, tt.down)
		}
	}
}

func TestNeedsBypass(t *testing.T) {
	allowed := []netip.Prefix{netip.MustParsePrefix("10.0.0.0/8")}
	if needsBypass(allowed, netip.MustParseAddr("203.0.113.5")) || !needsBypass(allowed, netip.MustParseAddr("10.1.2.3")) ||
		!needsBypass([]netip.Prefix{netip.MustParsePrefix("0.0.0.0/0")}, netip.MustParseAddr("203.0.113.5")) {
		t.Error("needsBypass")
	}
}

func TestParseRouteGet(t *testing.T) {
	dst := netip.MustParseAddr("203.0.113.5")
	tests := []struct {
		out     string
		want    hostRoute
		wantErr string
	}{
		{out: "203.0.113.5 via 10.0.2.2 dev eth0 src 10.0.2.15 uid 0 \n    cache \n", want: hostRoute{Dst: dst, Via: netip.MustParseAddr("10.0.2.2"), Dev: "eth0"}},
		{out: "203.0.113.5 dev wlan0 src 203.0.113.9 uid 1000\n    cache\n", want: hostRoute{Dst: dst, Dev: "wlan0"}},
		{out: "203.0.113.5 dev ferry0 src 100.64.3.7\n", wantErr: "already goes through ferry0"},
		{out: "RTNETLINK answers: Network is unreachable", wantErr: "no device"},
		{out: "203.0.113.5 via nonsense dev eth0", wantErr: "bad gateway"},
	}
	for _, tt := range tests {
		got, err := parseRouteGet(dst, tt.out)
		if tt.wantErr != "" {
			if err == nil || !strings.Contains(err.Error(), tt.wantErr) {
				t.Errorf("%q: %v, want %q", tt.out, err, tt.wantErr)
			}
			continue
		}
		if err != nil || got != tt.want {
			t.Errorf("%q: %+v %v, want %+v", tt.out, got, err, tt.want)
		}
	}
}

func TestUpMode(t *testing.T) {
	have := func(string) (string, error) { return "/usr/bin/wg-quick", nil }
	missing := func(string) (string, error) { return "", errors.New("not found") }
	tests := []struct {
		name                 string
		foreground, embedded bool
		look                 func(string) (string, error)
		want                 upModeKind
	}{
		{"wg-quick installed", false, false, have, modeWGQuick},
		{"wg-quick missing", false, false, missing, modeDaemon},
		{"--embedded", false, true, have, modeDaemon},
		{"--foreground", true, false, have, modeForeground},
		{"--foreground --embedded", true, true, missing, modeForeground},
	}
	for _, tt := range tests {
		if got := upMode(tt.foreground, tt.embedded, tt.look); got != tt.want {
			t.Errorf("%s: %v, want %v", tt.name, got, tt.want)
		}
	}
}

// TestDaemonArgs: the detached ferry is started with arguments its own up
// command accepts, in the foreground, on the same config directory.
func TestDaemonArgs(t *testing.T) {
	args := daemonArgs("/home/alice/.config/ferry", 3, false)
	if args[0] != "up" {
		t.Fatalf("args %q", args)
	}
	cmd, rest, err := newRootCmd(&globals{}).Find(args)
	if err != nil || cmd.Name() != "up" {
		t.Fatalf("find %q: %v %v", args, cmd, err)
	}
	if err := cmd.ParseFlags(rest); err != nil {
		t.Fatalf("up rejects its own daemon arguments %q: %v", args, err)
	}
	fg, _ := cmd.Flags().GetBool("foreground")
	fd, _ := cmd.Flags().GetInt("ready-fd")
	dir, _ := cmd.Flags().GetString("config-dir")
	noFast, _ := cmd.Flags().GetBool("no-fast-failover")
	if !fg || fd != 3 || dir != "/home/alice/.config/ferry" || !noFast {
		t.Errorf("parsed foreground=%v ready-fd=%d config-dir=%q no-fast-failover=%v", fg, fd, dir, noFast)
	}
	if slices.Contains(daemonArgs("/x", 3, true), "--no-fast-failover") {
		t.Error("fast failover is turned off by default")
	}
	if upMode(fg, false, lookPath) != modeForeground {
		t.Error("the daemon would not run in the foreground")
	}
	if !isDaemonCmdline([]byte(strings.Join(append([]string{"/usr/local/bin/ferry"}, args...), "\x00") + "\x00")) {
		t.Error("down would not recognise the daemon")
	}
}

func TestIsDaemonCmdline(t *testing.T) {
	for cmdline, want := range map[string]bool{
		"/usr/bin/ferry\x00up\x00--foreground\x00":                             true,
		"ferry\x00up\x00--foreground\x00--config-dir\x00/x\x00--ready-fd\x003": true,
		"/usr/bin/ferry\x00up\x00":                                             false,
		"/usr/bin/sshd\x00up\x00--foreground\x00":                              false,
		"": false, // exited, waiting to be reaped
	} {
		if got := isDaemonCmdline([]byte(cmdline)); got != want {
			t.Errorf("isDaemonCmdline(%q) = %v", cmdline, got)
		}
	}
}

// TestReady: the detached ferry's report reaches its starter once.
func TestReady(t *testing.T) {
	tests := []struct {
		name    string
		report  func(*readyReporter)
		wantErr string
	}{
		{"connected", func(r *readyReporter) { r.done(nil); r.done(errors.New("later")) }, ""},
		{"failed", func(r *readyReporter) { r.done(errors.New("creating the TUN device ferry0: busy\nsecond line")) }, "creating the TUN device ferry0: busy\nsecond line"},
		{"exited without a word", func(r *readyReporter) { r.f.Close() }, "exited before connecting"},
	}
	for _, tt := range tests {
		pr, pw, err := os.Pipe()
		if err != nil {
			t.Fatal(err)
		}
		tt.report(&readyReporter{f: pw})
		err = readReady(pr)
		pr.Close()
		if (tt.wantErr == "") != (err == nil) || (err != nil && err.Error() != tt.wantErr && !strings.Contains(err.Error(), tt.wantErr)) {
			t.Errorf("%s: %v, want %q", tt.name, err, tt.wantErr)
		}
	}
	var none *readyReporter
	if err := none.done(errors.New("x")); err == nil {
		t.Error("a nil reporter swallowed the error")
	}
	if _, err := openReady(1); err == nil {
		t.Error("openReady accepted standard output")
	}
}

func TestPidFile(t *testing.T) {
	dir := filepath.Join(t.TempDir(), "run")
	if _, err := readPid(dir); !errors.Is(err, fs.ErrNotExist) {
		t.Fatalf("readPid before: %v", err)
	}
	if err := writePid(dir); err != nil {
		t.Fatal(err)
	}
	if pid, err := readPid(dir); err != nil || pid != os.Getpid() {
		t.Errorf("readPid = %d, %v", pid, err)
	}
	if m := fileMode(t, dir); m != 0o700 {
		t.Errorf("run dir mode %04o", m)
	}
	// A pid that is not a running "ferry up --foreground" is stale: down
	// forgets it and signals nothing (this test process is not one).
	if stopped, err := stopDaemon(dir, time.Second); stopped || err != nil {
		t.Errorf("stopDaemon of a stale pid: %v %v", stopped, err)
	}
	if _, err := readPid(dir); !errors.Is(err, fs.ErrNotExist) {
		t.Errorf("stale pid file kept: %v", err)
	}
	if err := os.WriteFile(filepath.Join(dir, filePid), []byte("garbage"), 0o600); err != nil {
		t.Fatal(err)
	}
	if _, err := readPid(dir); err == nil {
		t.Error("garbage pid accepted")
	}
}

// TestUpDownRefusals: up and down say what is wrong before touching the
// network.
func TestUpDownRefusals(t *testing.T) {
	dir := isolate(t)
	srv := server(t)
	user := console{root: false}
	if _, _, err := ferryConsole(t, user, "up"); !errors.Is(err, errNotSignedIn) {
		t.Errorf("up before login: %v", err)
	}
	st := enrolled(t, srv, dir, "eng")
	if _, _, err := ferryConsole(t, user, "up"); err == nil || err.Error() != "ferry up needs root to manage the ferry0 network interface: run sudo ferry up" {
		t.Errorf("up as a user: %v", err)
	}
	if _, _, err := ferryConsole(t, user, "down"); err == nil || err.Error() != "ferry down needs root to manage the ferry0 network interface: run sudo ferry down" {
		t.Errorf("down as a user: %v", err)
	}
	// An expired profile does not connect, root or not.
	st.Peer.Expires = time.Now().Add(-time.Minute)
	if err := saveState(dir, st); err != nil {
		t.Fatal(err)
	}
	if _, _, err := ferryConsole(t, console{root: true}, "up"); err == nil || !strings.Contains(err.Error(), "your profile expired at") {
		t.Errorf("up with an expired profile: %v", err)
	}
	out, _ := ferry(t, "status")
	if !strings.Contains(out, "(expired: run ferry login)") {
		t.Errorf("status of an expired profile:\n%s", out)
	}
	// A config others can read is refused.
	st.Peer.Expires = time.Now().Add(time.Hour)
	if err := saveState(dir, st); err != nil {
		t.Fatal(err)
	}
	if err := os.Chmod(filepath.Join(dir, fileConfig), 0o644); err != nil {
		t.Fatal(err)
	}
	if _, _, err := ferryConsole(t, console{root: true}, "up"); err == nil || !strings.Contains(err.Error(), "is readable by others") {
		t.Errorf("up with a world-readable config: %v", err)
	}
}

func TestBuildStatusStats(t *testing.T) {
	hs := time.Now().Add(-42 * time.Second)
	stats := func(name string) (*wgtypes.Device, error) {
		if name != ifaceName {
			t.Errorf("stats of %q", name)
		}
		return &wgtypes.Device{Peers: []wgtypes.Peer{{
			Endpoint: &net.UDPAddr{IP: net.IPv4(203, 0, 113, 5), Port: 51820}, LastHandshakeTime: hs, ReceiveBytes: 1536, TransmitBytes: 3 << 20,
		}}}, nil
	}
	st := state{Server: "https://vpn.example.com", Device: "laptop"}
	st.Peer.Expires = time.Now().Add(time.Hour)
	s := buildStatus(st, true, time.Now(), true, stats)
	if !s.Up || s.Endpoint != "203.0.113.5:51820" || s.LastHandshake == nil || !s.LastHandshake.Equal(hs) || s.RxBytes != 1536 || s.TxBytes != 3<<20 || s.SecondsLeft < 3590 {
		t.Errorf("status %+v", s)
	}
	var b strings.Builder
	(&globals{con: console{out: &b}}).printStatus(s)
	for _, want := range []string{"Tunnel:     up (ferry0)", "Endpoint:   203.0.113.5:51820", "Handshake:  42s ago", "Traffic:    1.5 KiB received, 3.0 MiB sent"} {
		if !strings.Contains(b.String(), want) {
			t.Errorf("status lacks %q:\n%s", want, b.String())
		}
	}
	s = buildStatus(st, true, time.Now(), true, func(string) (*wgtypes.Device, error) { return nil, os.ErrPermission })
	if s.StatsError == "" {
		t.Error("a stats error was dropped")
	}
	if s = buildStatus(st, true, time.Now(), false, nil); s.Up || s.StatsError != "" {
		t.Errorf("down: %+v", s)
	}
}
