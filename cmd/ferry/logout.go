package main

import (
	"errors"
	"fmt"
	"net/http"

	"github.com/ferryvpn/ferry/cmd/internal/client"
	"github.com/spf13/cobra"
)

func newLogoutCmd(g *globals) *cobra.Command {
	return &cobra.Command{
		Use:   "logout",
		Short: "Sign out: revoke this device, disconnect, delete the key",
		Long: `logout revokes this device's peer on the server, so that its key stops working
on every node at once, brings the tunnel down if it is up (which needs root),
and deletes the session token, the private key and the profile from this
computer.

If the server cannot be reached or the session has expired, the peer cannot
be revoked: logout deletes the private key anyway, so nobody can use the peer,
and it expires on its own.`,
		Example: "  ferry logout\n  sudo ferry logout   # when the tunnel is up",
		Args:    cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			dir, err := g.configDir()
			if err != nil {
				return err
			}
			st, err := loadState(dir)
			if errors.Is(err, errNotSignedIn) {
				fmt.Fprintln(g.con.out, "Not signed in.")
				return nil
			}
			if err != nil {
				return err
			}
			// Check first that everything can be done, so that logout
			// does not stop halfway.
			if g.con.linkExists(ifaceName) && !g.con.root {
				return fmt.Errorf("the tunnel is up, and bringing it down needs root: run sudo ferry logout")
			}
			warn := revokeOwnPeer(g, dir, st, cmd)
			if g.con.linkExists(ifaceName) {
				if _, err := g.bringDown(cmd.Context(), dir); err != nil {
					return err
				}
			}
			if err := forget(dir, st); err != nil {
				return err
			}
			if warn != "" {
				fmt.Fprintf(g.con.err, "ferry: %s\n", warn)
			}
			fmt.Fprintf(g.con.out, "Signed out of %s; this device's key and profile are deleted.\n", st.Server)
			return nil
		},
	}
}

// revokeOwnPeer revokes this device's peer on the server. It returns a
// warning for the person when that could not be done; the key is deleted
// regardless, which leaves the peer unusable until it expires.
func revokeOwnPeer(g *globals, dir string, st state, cmd *cobra.Command) string {
	if st.Peer.ID == "" {
		return ""
	}
	unrevoked := fmt.Sprintf("this device's peer was not revoked on the server; its key is deleted, and it expires at %s", fmtTime(st.Peer.Expires))
	c, err := g.connect(dir, st)
	if errors.Is(err, errNotSignedIn) {
		return "not signed in: " + unrevoked
	}
	if err != nil {
		return fmt.Sprintf("%v: %s", err, unrevoked)
	}
	defer c.Close()
	err = c.RevokePeer(cmd.Context(), st.Peer.ID, "signed out on the device")
	// End the session too; a session already gone is fine.
	defer c.Logout(cmd.Context())
	switch client.StatusOf(err) {
	case 0:
		if err != nil {
			return fmt.Sprintf("%v: %s", err, unrevoked)
		}
		return ""
	case http.StatusNotFound: // already gone
		return ""
	case http.StatusUnauthorized:
		return "the session has expired: " + unrevoked
	}
	return fmt.Sprintf("%v: %s", explain(err), unrevoked)
}
