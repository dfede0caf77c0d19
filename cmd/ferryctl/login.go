package main

import (
	"context"
	"errors"
	"fmt"
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
	var noBrowser bool
	cmd := &cobra.Command{
		Use:   "login [https://SERVER] [--ca FILE] [--no-browser]",
		Short: "Sign in as an administrator",
		Long: `login opens your browser at the server's sign-in page, where you sign in with
the company identity provider and your TOTP code. ferryctl then receives an
administrator session token and keeps it, with the server URL and the CA file,
in ctl.json in your config directory (0600). Accounts without the admin role
are refused.

The browser must run on this computer: the server sends it back to a loopback
address that ferryctl listens on. With --no-browser the address is printed
for you to open by hand. Without a server URL, login signs in again to the
server of the last login.`,
		Example: `  ferryctl login https://vpn.example.com
  ferryctl login https://vpn.example.com:8443 --ca /etc/ferry/ca.pem --no-browser
  ferryctl login`,
		Args: cobra.MaximumNArgs(1),
		RunE: func(cmd *cobra.Command, args []string) error {
			if len(args) == 1 {
				if g.server != "" && g.server != args[0] {
					return fmt.Errorf("give the server once: %s or --server %s", args[0], g.server)
				}
				g.server = args[0]
			}
			server, caFile, _, err := g.target()
			if err != nil {
				if errors.Is(err, errNotSignedIn) {
					return errors.New("give the server URL: ferryctl login https://SERVER")
				}
				return err
			}
			if caFile != "" {
				if caFile, err = filepath.Abs(caFile); err != nil {
					return err
				}
			}
			tlsConf, err := client.TLSConfig(caFile)
			if err != nil {
				return err
			}
			// The session is checked while the browser waits, so that its
			// last page says how the sign-in ended.
			finish := func(ctx context.Context, res wire.AuthTokenResponse) (loginflow.EndPage, error) {
				if err := g.finishLogin(ctx, server, caFile, res); err != nil {
					return loginflow.EndPage{}, err
				}
				return ctlEndPage(server, res), nil
			}
			_, err = loginflow.Login(cmd.Context(), loginflow.Options{
				Server: server, TLSConfig: tlsConf, Admin: true,
				OpenBrowser: g.con.openBrowser, NoBrowser: noBrowser, Out: g.con.err,
				Finish: finish,
			})
			return err
		},
	}
	cmd.Flags().BoolVar(&noBrowser, "no-browser", false, "print the sign-in address instead of opening a browser")
	return cmd
}

// ctlEndPage is the browser's last page of `ferryctl login`.
func ctlEndPage(server string, res wire.AuthTokenResponse) loginflow.EndPage {
	p := loginflow.EndPage{
		Title: "ferryctl is signed in",
		Lines: []string{"An administrator session of ferryctl on this computer is signed in to " + strings.TrimPrefix(server, "https://") + " as " + who(res.Email, res.UserID) + "."},
		Next:  "ferryctl user list",
	}
	if t, err := time.Parse(time.RFC3339, res.Expires); err == nil {
		p.Lines = append(p.Lines, "The session ends at "+t.Local().Format("15:04 on Monday 2 January")+" (this computer's time); ferryctl login starts a new one.")
	}
	return p
}

// finishLogin keeps the session a sign-in returned, then checks with the
// server that it is an administrator's; if not, the token is deleted.
func (g *globals) finishLogin(ctx context.Context, server, caFile string, res wire.AuthTokenResponse) error {
	sess := session{Server: server, CAFile: caFile, Token: res.Token, UserID: res.UserID}
	if t, err := time.Parse(time.RFC3339, res.Expires); err == nil {
		sess.Expires = t
	}
	if err := saveSession(sess); err != nil {
		return err
	}
	c, err := g.newClient(server, caFile, res.Token)
	if err == nil {
		defer c.Close()
		var me wire.Me
		if me, err = c.Me(ctx); err == nil && me.Role != roleAdmin {
			err = fmt.Errorf("signed in as %s, who is not an administrator (role %q): ferryctl needs the admin role", who(me.Email, me.UserID), me.Role)
		}
		if err == nil {
			fmt.Fprintf(g.con.out, "Signed in to %s as %s (admin) until %s.\n", server, who(me.Email, me.UserID), fmtTime(me.Expires))
			return nil
		}
	}
	if derr := deleteSession(); derr != nil {
		return errors.Join(err, derr)
	}
	return err
}

func newLogoutCmd(g *globals) *cobra.Command {
	return &cobra.Command{
		Use:   "logout",
		Short: "End the administrator session and forget its token",
		Long: `logout ends the saved administrator session on the server and deletes ctl.json.
When the server cannot be reached, the token is deleted anyway and the session
ends on its own when it expires.`,
		Example: `  ferryctl logout`,
		Args:    cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			saved, err := loadSession()
			if errors.Is(err, errNotSignedIn) {
				fmt.Fprintln(g.con.out, "Not signed in.")
				return nil
			}
			if err != nil {
				return err
			}
			var warn error
			if c, err := g.newClient(saved.Server, saved.CAFile, saved.Token); err != nil {
				warn = err
			} else {
				defer c.Close()
				me, err := c.Me(cmd.Context())
				if err == nil {
					err = c.KillSession(cmd.Context(), me.SessionID)
				}
				if err != nil && client.StatusOf(err) != 401 {
					warn = err
				}
			}
			if err := deleteSession(); err != nil {
				return err
			}
			if warn != nil {
				fmt.Fprintf(g.con.err, "ferryctl: could not end the session on the server (%v); it ends on its own when it expires.\n", explain(warn))
			}
			fmt.Fprintf(g.con.out, "Signed out of %s.\n", saved.Server)
			return nil
		},
	}
}

// who names a person by email when known.
func who(email, id string) string {
	if email != "" {
		return email
	}
	return id
}

// isTerminal reports whether f is a terminal.
func isTerminal(f *os.File) bool {
	fi, err := f.Stat()
	return err == nil && fi.Mode()&os.ModeCharDevice != 0
}
