package main

import (
	"context"
	"errors"
	"fmt"
	"github.com/ferryvpn/ferry/cmd/internal/cli"
	"net/http"
	"os"
	"path/filepath"
	"strings"
	"time"

	"github.com/ferryvpn/ferry/cmd/internal/client"
	"github.com/ferryvpn/ferry/cmd/internal/loginflow"
	"github.com/ferryvpn/ferry/cmd/internal/wire"
	"github.com/spf13/cobra"
)

func newLoginCmd(g *globals) *cobra.Command {
	var (
		caFile    string
		profile   string
		device    string
		noBrowser bool
	)
	cmd := &cobra.Command{
		Use:   "login https://SERVER [--profile NAME] [--device NAME] [--no-browser] [--ca FILE]",
		Short: "Sign in and fetch your WireGuard profile",
		Long: `login opens your browser at the server's sign-in page, where you sign in with
your company account and your authenticator code. ferry then makes a new
WireGuard key pair on this computer, sends only the public key, and saves the
profile the server issues, with the private key added, as ferry0.conf in your
config directory (readable by you only). The private key never leaves this
computer. Signing in again from the same device replaces its key and keeps
its tunnel address.

The browser must run on this computer: the server sends it back to a loopback
address that ferry listens on. With --no-browser the address is printed for
you to open by hand.

Use --profile when you have more than one profile (see ferry profiles), and
--ca when the server's certificate is signed by your company's own CA.`,
		Example: `  ferry login https://vpn.example.com
  ferry login https://vpn.example.com --profile engineering --device work-laptop
  ferry login https://vpn.example.com:8443 --ca ~/Downloads/ferry-ca.pem --no-browser`,
		Args: cobra.MaximumNArgs(1),
		RunE: func(cmd *cobra.Command, args []string) error {
			ctx := cmd.Context()
			dir, err := g.configDir()
			if err != nil {
				return err
			}
			old, oldErr := loadState(dir)
			server := ""
			if len(args) == 1 {
				server = args[0]
			} else if oldErr == nil {
				server = old.Server
			} else {
				return errors.New("give the server URL: ferry login https://SERVER")
			}
			if server, err = canonicalServer(server); err != nil {
				return err
			}
			if caFile == "" && oldErr == nil && old.Server == server {
				caFile = old.CAFile
			}
			if caFile != "" {
				if caFile, err = filepath.Abs(caFile); err != nil {
					return err
				}
			}
			if device == "" {
				if device = defaultDevice(); device == "" {
					return errors.New("cannot name this device from its host name: give --device NAME")
				}
			}
			tlsConf, err := client.TLSConfig(caFile)
			if err != nil {
				return err
			}
			// The profile is fetched while the browser waits, so that its
			// last page names the account, the device and the next step.
			var st state
			finish := func(ctx context.Context, res wire.AuthTokenResponse) (loginflow.EndPage, error) {
				if err := loginflow.SaveToken(dir, server, caFile, res.Token); err != nil {
					return loginflow.EndPage{}, err
				}
				c, err := client.New(client.Config{BaseURL: server, TLS: tlsConf, Timeout: g.timeout, Token: res.Token})
				if err != nil {
					return loginflow.EndPage{}, err
				}
				defer c.Close()
				st, err = enroll(ctx, c, dir, enrollment{Server: server, CAFile: caFile, Email: res.Email, Device: device, Profile: profile})
				if noProfile(err) {
					return loginflow.EndPage{}, fmt.Errorf("signed in to %s as %s, but no VPN profile is assigned to you yet: ask your administrator to add you to one (by group or by name), then run ferry login again", server, who(res.Email, res.Name))
				}
				if err != nil {
					return loginflow.EndPage{}, err
				}
				return desktopEndPage(server, who(res.Email, res.Name), st.Peer, g.con.linkExists(ifaceName)), nil
			}
			res, err := loginflow.Login(ctx, loginflow.Options{
				Server: server, TLSConfig: tlsConf,
				OpenBrowser: g.con.openBrowser, NoBrowser: noBrowser, Out: g.con.err,
				Finish: finish,
			})
			if err != nil {
				return err
			}
			fmt.Fprintf(g.con.out, "Signed in to %s as %s.\n", server, who(res.Email, res.Name))
			g.printPeer(st.Peer, filepath.Join(dir, fileConfig))
			if g.con.linkExists(ifaceName) {
				fmt.Fprintf(g.con.out, "The tunnel is up with this device's previous key: reconnect with sudo ferry down && sudo ferry up\n")
			} else {
				fmt.Fprintf(g.con.out, "Connect with: sudo ferry up\n")
			}
			return nil
		},
	}
	f := cmd.Flags()
	f.StringVar(&caFile, "ca", "", "PEM file of the CA to trust for the server (default: the one of the last login, else the system roots)")
	f.StringVar(&profile, "profile", "", "the profile to use (default: your only or first profile)")
	f.StringVar(&device, "device", "", "a name for this device (default: the host name)")
	f.BoolVar(&noBrowser, "no-browser", false, "print the sign-in address instead of opening a browser")
	return cmd
}

// desktopEndPage is the browser's last page of `ferry login`: who is
// signed in, which device got which profile, and the command to connect.
func desktopEndPage(server, account string, p wire.Peer, tunnelUp bool) loginflow.EndPage {
	host := strings.TrimPrefix(server, "https://")
	page := loginflow.EndPage{
		Title: "ferry is signed in on this computer",
		Lines: []string{
			"Signed in to " + host + " as " + account + ".",
			"This computer is the device \"" + p.Device + "\" in your profile " + p.Profile + ", with the tunnel address " + p.Address + ". It has a new WireGuard key; the private key stays on this computer.",
		},
		Next: "sudo ferry up",
	}
	if tunnelUp {
		page.Lines = append(page.Lines, "The tunnel is up with this device's previous key: reconnect to use the new one.")
		page.Next = "sudo ferry down && sudo ferry up"
	}
	return page
}

func (g *globals) printPeer(p wire.Peer, conf string) {
	fmt.Fprintf(g.con.out, "Profile:  %s (version %d)\n", p.Profile, p.ProfileVersion)
	fmt.Fprintf(g.con.out, "Device:   %s\n", p.Device)
	fmt.Fprintf(g.con.out, "Address:  %s\n", p.Address)
	if p.Address6 != "" {
		fmt.Fprintf(g.con.out, "Address6: %s\n", p.Address6)
	}
	fmt.Fprintf(g.con.out, "Expires:  %s\n", fmtExpiry(p.Expires, time.Now()))
	fmt.Fprintf(g.con.out, "Config:   %s\n", conf)
}

// noProfile reports whether err is the server's refusal to issue because
// no profile is assigned to the person at all.
func noProfile(err error) bool {
	var ce *client.Error
	return errors.As(err, &ce) && ce.Status == http.StatusForbidden && strings.Contains(ce.Message, "no profile is assigned")
}

// enrollment is what enroll asks the server for.
type enrollment struct {
	Server, CAFile, Email string
	Device, Profile       string
}

// enroll makes a fresh WireGuard key pair on this device, asks the server
// for the device's peer with the public key only, and writes the key, the
// config (the server's, with the private key added) and the state under
// dir, each 0600. Each sign-in rotates the key; the server keeps the
// device's address.
func enroll(ctx context.Context, c *client.Client, dir string, e enrollment) (state, error) {
	key, err := newPrivateKey()
	if err != nil {
		return state{}, err
	}
	res, err := c.Issue(ctx, wire.IssueRequest{PublicKey: key.Public(), Device: e.Device, Profile: e.Profile})
	if err != nil {
		return state{}, fmt.Errorf("fetching the profile: %w", err)
	}
	if res.Peer.PublicKey != key.Public() {
		return state{}, errors.New("the server issued a peer for another key: refusing it")
	}
	conf, err := withPrivateKey(res.Config, key)
	if err != nil {
		return state{}, err
	}
	st := state{Server: e.Server, CAFile: e.CAFile, Email: e.Email, Device: e.Device, Peer: res.Peer}
	if err := loginflow.WritePrivateFile(filepath.Join(dir, fileKey), []byte(key.reveal()+"\n")); err != nil {
		return state{}, err
	}
	if err := loginflow.WritePrivateFile(filepath.Join(dir, fileConfig), []byte(conf)); err != nil {
		return state{}, err
	}
	if err := saveState(dir, st); err != nil {
		return state{}, err
	}
	return st, nil
}

// defaultDevice names this device after its host name, in the characters
// the server accepts (letters, digits, space, '.', '_', '-'; at most 64).
func defaultDevice() string {
	h, err := os.Hostname()
	if err != nil {
		return ""
	}
	return deviceName(h)
}

func deviceName(h string) string {
	h = strings.Map(func(r rune) rune {
		if r >= 'a' && r <= 'z' || r >= 'A' && r <= 'Z' || r >= '0' && r <= '9' || r == '.' || r == '_' || r == '-' || r == ' ' {
			return r
		}
		return '-'
	}, h)
	h = strings.TrimLeft(h, " ._-")
	if len(h) > 64 {
		h = h[:64]
	}
	return strings.TrimRight(h, " ")
}

// who names a person by email, else name: never by the user ID, which
// holds the identity provider's opaque subject.
func who(email, name string) string {
	switch {
	case email != "":
		return email
	case name != "":
		return name
	}
	return "your account"
}

// The shared client vocabulary (cmd/internal/cli).
var (
	fmtTime     = cli.Time
	fmtDuration = cli.Duration
)

// fmtExpiry shows an expiry with the time left.
func fmtExpiry(t, now time.Time) string { return cli.Expiry(t, now, ": run ferry login") }
