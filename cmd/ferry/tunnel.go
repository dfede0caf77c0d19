package main

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"net"
	"os/exec"
	"path/filepath"
	"strings"
	"time"

	"github.com/spf13/cobra"
	"golang.zx2c4.com/wireguard/wgctrl"
	"golang.zx2c4.com/wireguard/wgctrl/wgtypes"
)

// maxConfFile bounds the config file ferry reads.
const maxConfFile = 64 << 10

// errNeedRoot explains why a command failed without privileges.
func errNeedRoot(cmd string) error {
	return fmt.Errorf("ferry %s needs root to manage the %s network interface: run sudo ferry %s", cmd, ifaceName, cmd)
}

// loadConf reads and checks this device's config.
func loadConf(dir string) (wgConf, string, error) {
	path := filepath.Join(dir, fileConfig)
	b, err := readPrivate(path, maxConfFile)
	if err != nil {
		return wgConf{}, path, fmt.Errorf("reading the profile: %w (run ferry login)", err)
	}
	c, err := parseConf(string(b))
	if err != nil {
		return wgConf{}, path, fmt.Errorf("%s: %w", path, err)
	}
	if c.PrivateKey == nil {
		return wgConf{}, path, fmt.Errorf("%s has no private key: run ferry login again", path)
	}
	return c, path, nil
}

// linkExists reports whether a network interface exists.
func linkExists(name string) bool {
	_, err := net.InterfaceByName(name)
	return err == nil
}

func newUpCmd(g *globals) *cobra.Command {
	var (
		foreground     bool
		embedded       bool
		noFastFailover bool
		readyFD        int
	)
	cmd := &cobra.Command{
		Use:   "up [--foreground] [--embedded] [--no-fast-failover]",
		Short: "Connect: bring the tunnel up",
		Long: `up brings up the ferry0 tunnel with the profile from ferry login. It needs root.

When WireGuard's wg-quick is installed, up runs "wg-quick up" on the profile.
Otherwise, or with --embedded, ferry runs WireGuard itself (wireguard-go on a
TUN device) in the background and sets the address, routes and the
profile's DNS as wg-quick would: with resolvconf when installed, else with
systemd-resolved (resolvectl dns and domain), else it says that DNS was not
configured. ferry down undoes it. With --foreground it stays in the foreground
until interrupted (Ctrl-C), which is handy under a service manager.

The embedded WireGuard fails over fast: ferry's servers share one address
behind a load balancer, and when the server carrying your session goes away
the next one must handshake with you anew. Stock WireGuard notices after
about 15 seconds; ferry forces a new handshake as soon as what you send has
gone unanswered for 1.5 seconds, at most every 2 seconds and less often
while no server answers (up to every 30 seconds). Traffic that only flows
out, with no replies at all, gets an extra handshake now and then.
--no-fast-failover turns this off and leaves it to WireGuard's own timers
(wg-quick always does).

An expired profile does not connect: sign in again with ferry login.`,
		Example: `  sudo ferry up
  sudo ferry up --embedded
  sudo ferry up --foreground
  sudo ferry up --embedded --no-fast-failover`,
		Args: cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) (err error) {
			// A detached "ferry up" reports to the ferry that started it
			// once: connected, or why not.
			var ready *readyReporter
			if cmd.Flags().Changed("ready-fd") {
				if ready, err = openReady(readyFD); err != nil {
					return err
				}
			}
			defer func() { _ = ready.done(err) }()
			dir, err := g.configDir()
			if err != nil {
				return err
			}
			st, err := loadState(dir)
			if err != nil {
				return err
			}
			if now := time.Now(); !now.Before(st.Peer.Expires) {
				return fmt.Errorf("your profile expired at %s: run ferry login", fmtTime(st.Peer.Expires))
			}
			c, path, err := loadConf(dir)
			if err != nil {
				return err
			}
			if !g.con.root {
				return errNeedRoot("up")
			}
			if g.con.linkExists(ifaceName) {
				return fmt.Errorf("%s is already up (ferry status shows it; sudo ferry down first to reconnect)", ifaceName)
			}
			switch upMode(foreground, embedded, lookPath) {
			case modeWGQuick:
				if err := wgQuickUp(cmd.Context(), c, path); err != nil {
					return err
				}
			case modeForeground:
				fmt.Fprintf(g.con.err, "ferry: running %s in the foreground until interrupted\n", ifaceName)
				return runEmbedded(cmd.Context(), embeddedOptions{
					Conf: c, Name: ifaceName, RunDir: g.con.runDir, Log: g.con.err,
					FastFailover: !noFastFailover,
					Ready: func() {
						g.printConnected(st)
						_ = ready.done(nil)
					},
				})
			case modeDaemon:
				// The detached tunnel logs it too; say it where the user looks.
				if w := planDNS(ifaceName, c, lookPath).Warning; w != "" {
					fmt.Fprintf(g.con.err, "ferry: %s\n", w)
				}
				if err := startDaemon(dir, g.con.runDir, !noFastFailover); err != nil {
					return err
				}
			}
			g.printConnected(st)
			return nil
		},
	}
	f := cmd.Flags()
	f.BoolVar(&foreground, "foreground", false, "run the embedded WireGuard in the foreground until interrupted")
	f.BoolVar(&embedded, "embedded", false, "run ferry's embedded WireGuard even when wg-quick is installed")
	f.BoolVar(&noFastFailover, "no-fast-failover", false, "embedded WireGuard: do not force a new handshake when the server stops answering (see above)")
	f.IntVar(&readyFD, "ready-fd", 0, "file descriptor to report readiness on (used by ferry itself)")
	f.MarkHidden("ready-fd")
	return cmd
}

// Ways up brings the tunnel up.
type upModeKind int

const (
	modeWGQuick    upModeKind = iota // wg-quick up CONF
	modeForeground                   // embedded wireguard-go in this process
	modeDaemon                       // embedded wireguard-go in a detached ferry up --foreground
)

// upMode picks how up brings the tunnel up: wg-quick when it is installed
// and neither --foreground nor --embedded is given.
func upMode(foreground, embedded bool, lookPath func(string) (string, error)) upModeKind {
	if foreground {
		return modeForeground
	}
	if !embedded {
		if _, err := lookPath("wg-quick"); err == nil {
			return modeWGQuick
		}
	}
	return modeDaemon
}

func lookPath(name string) (string, error) { return exec.LookPath(name) }

// wgQuickUp runs wg-quick up on the config.
func wgQuickUp(ctx context.Context, c wgConf, path string) error {
	if len(c.DNS)+len(c.Search) > 0 {
		if _, err := lookPath("resolvconf"); err != nil {
			return errors.New("the profile sets DNS, which wg-quick applies with resolvconf, and resolvconf is not installed: install it (openresolv), or run sudo ferry up --embedded, which applies DNS through systemd-resolved (resolvectl) or says it could not")
		}
	}
	return wgQuick(ctx, "up", path)
}

// wgQuick runs wg-quick with its output kept for the error.
func wgQuick(ctx context.Context, verb, path string) error {
	var out bytes.Buffer
	cmd := exec.CommandContext(ctx, "wg-quick", verb, path)
	cmd.Stdout, cmd.Stderr = &out, &out
	if err := cmd.Run(); err != nil {
		hint := ""
		if verb == "up" {
			hint = "\n(sudo ferry up --embedded runs ferry's own WireGuard instead)"
		}
		return fmt.Errorf("wg-quick %s: %w\n%s%s", verb, err, strings.TrimSpace(out.String()), hint)
	}
	return nil
}

func (g *globals) printConnected(st state) {
	fmt.Fprintf(g.con.out, "Connected: %s %s, profile %s, until %s.\n", ifaceName, st.Peer.Address, st.Peer.Profile, fmtExpiry(st.Peer.Expires, time.Now()))
}

func newDownCmd(g *globals) *cobra.Command {
	return &cobra.Command{
		Use:   "down",
		Short: "Disconnect: bring the tunnel down",
		Long: `down stops the ferry0 tunnel, however "ferry up" started it, and restores the
routes and DNS. It needs root. Your sign-in and profile stay: "ferry up"
connects again until the profile expires.`,
		Example: "  sudo ferry down",
		Args:    cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			if !g.con.root {
				return errNeedRoot("down")
			}
			dir, err := g.configDir()
			if err != nil {
				return err
			}
			stopped, err := g.bringDown(cmd.Context(), dir)
			if err != nil {
				return err
			}
			if stopped {
				fmt.Fprintln(g.con.out, "Disconnected.")
			} else {
				fmt.Fprintln(g.con.out, "Not connected.")
			}
			return nil
		},
	}
}

// bringDown stops the tunnel: the embedded daemon when one runs, else
// wg-quick down, else the interface is deleted. It reports whether there
// was a tunnel.
func (g *globals) bringDown(ctx context.Context, dir string) (bool, error) {
	stopped, err := stopDaemon(g.con.runDir, 10*time.Second)
	if err != nil || stopped {
		return stopped, err
	}
	if !g.con.linkExists(ifaceName) {
		return false, nil
	}
	path := filepath.Join(dir, fileConfig)
	if _, err := lookPath("wg-quick"); err == nil {
		if _, _, cerr := loadConf(dir); cerr == nil {
			return true, wgQuick(ctx, "down", path)
		}
	}
	if out, err := exec.CommandContext(ctx, "ip", "link", "delete", "dev", ifaceName).CombinedOutput(); err != nil {
		return true, fmt.Errorf("deleting %s: %w: %s", ifaceName, err, strings.TrimSpace(string(out)))
	}
	return true, nil
}

// status is what ferry status reports; -o json prints it with these
// field names.
type status struct {
	SignedIn    bool      `json:"signed_in"`
	Server      string    `json:"server,omitempty"`
	Email       string    `json:"email,omitempty"`
	UserID      string    `json:"user_id,omitempty"`
	Device      string    `json:"device,omitempty"`
	PeerID      string    `json:"peer_id,omitempty"`
	Profile     string    `json:"profile,omitempty"`
	Address     string    `json:"address,omitempty"`
	Expires     time.Time `json:"expires,omitzero"`
	SecondsLeft int64     `json:"seconds_left"`
	Expired     bool      `json:"expired"`
	Interface   string    `json:"interface"`
	Up          bool      `json:"up"`
	// Statistics, when the interface is up and readable (root).
	Endpoint      string     `json:"endpoint,omitempty"`
	LastHandshake *time.Time `json:"last_handshake,omitempty"`
	RxBytes       int64      `json:"rx_bytes"`
	TxBytes       int64      `json:"tx_bytes"`
	StatsError    string     `json:"stats_error,omitempty"`
}

func newStatusCmd(g *globals) *cobra.Command {
	return &cobra.Command{
		Use:   "status",
		Short: "Show the server, profile, time left and traffic",
		Long: `status shows where you are signed in, your profile, tunnel address and the time
left before you must sign in again, and, when the tunnel is up, the last
handshake with the server and the bytes received and sent (root is needed to
read those).`,
		Example: "  ferry status\n  sudo ferry status -o json",
		Args:    cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			dir, err := g.configDir()
			if err != nil {
				return err
			}
			st, err := loadState(dir)
			if err != nil && !errors.Is(err, errNotSignedIn) {
				return err
			}
			s := buildStatus(st, err == nil, time.Now(), g.con.linkExists(ifaceName), g.tunnelStats)
			if g.json() {
				enc := json.NewEncoder(g.con.out)
				enc.SetIndent("", "  ")
				return enc.Encode(s)
			}
			g.printStatus(s)
			return nil
		},
	}
}

// statsFunc reads the interface's peer statistics.
type statsFunc func(name string) (*wgtypes.Device, error)

// wgStats reads a WireGuard interface through wgctrl.
func wgStats(name string) (*wgtypes.Device, error) {
	c, err := wgctrl.New()
	if err != nil {
		return nil, err
	}
	defer c.Close()
	return c.Device(name)
}

// tunnelStats reads the tunnel's statistics. The counters include the
// traffic of peers that the embedded tunnel's watchdog replaced, whose
// counters the device forgot.
func (g *globals) tunnelStats(name string) (*wgtypes.Device, error) {
	dev, err := wgStats(name)
	if err != nil || len(dev.Peers) == 0 {
		return dev, err
	}
	c, err := tunnelCarried(g.con.runDir)
	if err != nil {
		return nil, err
	}
	dev.Peers[0].ReceiveBytes += c.RxBytes
	dev.Peers[0].TransmitBytes += c.TxBytes
	return dev, nil
}

// buildStatus puts together the saved state and, when the interface is
// up, its statistics.
func buildStatus(st state, signedIn bool, now time.Time, up bool, stats statsFunc) status {
	s := status{SignedIn: signedIn, Interface: ifaceName, Up: up}
	if signedIn {
		p := st.Peer
		s.Server, s.Email, s.UserID, s.Device = st.Server, st.Email, p.UserID, st.Device
		s.PeerID, s.Profile, s.Address, s.Expires = p.ID, p.Profile, p.Address, p.Expires
		if left := p.Expires.Sub(now); left > 0 {
			s.SecondsLeft = int64(left / time.Second)
		} else {
			s.Expired = true
		}
	}
	if !s.Up {
		return s
	}
	dev, err := stats(ifaceName)
	if err != nil {
		s.StatsError = err.Error()
		return s
	}
	for _, p := range dev.Peers {
		if p.Endpoint != nil {
			s.Endpoint = p.Endpoint.String()
		}
		if !p.LastHandshakeTime.IsZero() {
			t := p.LastHandshakeTime
			s.LastHandshake = &t
		}
		s.RxBytes += p.ReceiveBytes
		s.TxBytes += p.TransmitBytes
	}
	return s
}

func (g *globals) printStatus(s status) {
	w := g.con.out
	if !s.SignedIn {
		fmt.Fprintln(w, "Not signed in: run ferry login https://SERVER")
	} else {
		fmt.Fprintf(w, "Server:     %s\n", s.Server)
		if s.Email != "" {
			fmt.Fprintf(w, "Signed in:  %s\n", s.Email)
		}
		fmt.Fprintf(w, "Device:     %s\n", s.Device)
		fmt.Fprintf(w, "Profile:    %s\n", s.Profile)
		fmt.Fprintf(w, "Address:    %s\n", s.Address)
		fmt.Fprintf(w, "Expires:    %s\n", fmtExpiry(s.Expires, time.Now()))
	}
	if !s.Up {
		fmt.Fprintf(w, "Tunnel:     down (%s)\n", ifaceName)
		return
	}
	fmt.Fprintf(w, "Tunnel:     up (%s)\n", ifaceName)
	if s.StatsError != "" {
		fmt.Fprintf(w, "Traffic:    unknown (%s; run as root to read it)\n", s.StatsError)
		return
	}
	if s.Endpoint != "" {
		fmt.Fprintf(w, "Endpoint:   %s\n", s.Endpoint)
	}
	if s.LastHandshake != nil {
		fmt.Fprintf(w, "Handshake:  %s ago\n", fmtDuration(time.Since(*s.LastHandshake)))
	} else {
		fmt.Fprintln(w, "Handshake:  none yet")
	}
	fmt.Fprintf(w, "Traffic:    %s received, %s sent\n", fmtBytes(s.RxBytes), fmtBytes(s.TxBytes))
}

// fmtBytes shows a byte count in binary units.
func fmtBytes(n int64) string {
	const unit = 1024
	if n < unit {
		return fmt.Sprintf("%d B", n)
	}
	div, exp := int64(unit), 0
	for m := n / unit; m >= unit; m /= unit {
		div *= unit
		exp++
	}
	return fmt.Sprintf("%.1f %ciB", float64(n)/float64(div), "KMGTPE"[exp])
}
