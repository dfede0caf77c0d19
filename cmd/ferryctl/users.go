package main

import (
	"context"
	"fmt"
	"time"

	"github.com/ferryvpn/ferry/cmd/internal/client"
	"github.com/ferryvpn/ferry/cmd/internal/wire"
	"github.com/spf13/cobra"
)

func newUserCmd(g *globals) *cobra.Command {
	cmd := &cobra.Command{
		Use:   "user",
		Short: "Manage users",
		Long: `Users are the people known from sign-ins with the company identity provider.
Disabling a user ends their sessions and revokes their peers on every node at
once; resetting their MFA makes them enroll a new TOTP at their next sign-in.`,
		Example: `  ferryctl user list
  ferryctl user disable alice@example.com`,
	}
	cmd.AddCommand(
		newUserListCmd(g),
		newUserShowCmd(g),
		newUserActionCmd(g, "disable", "Disable a user, ending their sessions and revoking their peers",
			`disable stops a user from signing in, ends every session they hold and revokes
every peer they hold, on every node within a second. enable undoes it, but
the user must sign in again.`,
			(*client.Client).DisableUser, "Disabled user %s: their sessions ended and their peers were revoked.\n"),
		newUserActionCmd(g, "enable", "Enable a disabled user again",
			`enable lets a disabled user sign in again. Their old sessions and peers stay
ended: they sign in afresh.`,
			(*client.Client).EnableUser, "Enabled user %s: they may sign in again.\n"),
		newUserActionCmd(g, "reset-mfa", "Remove a user's TOTP enrollment",
			`reset-mfa removes a user's TOTP enrollment, for a lost or replaced phone: they
enroll a new authenticator at their next sign-in. Their current sessions stay
valid; disable the user as well if the phone may be in other hands.`,
			(*client.Client).ResetMFA, "Reset the MFA of %s: they enroll a new authenticator at their next sign-in.\n"),
		newUserActionCmd(g, "unlock", "End a user's second-factor lockout, keeping their enrollment",
			`unlock ends the lockout that too many wrong codes started, and clears the
failure count. Unlike reset-mfa, the user keeps their authenticator and
recovery codes.`,
			(*client.Client).UnlockUser, "Unlocked %s: they may sign in with their authenticator again.\n"),
	)
	return cmd
}

func newUserListCmd(g *globals) *cobra.Command {
	return &cobra.Command{
		Use:     "list",
		Aliases: []string{"ls"},
		Short:   "List users",
		Example: "  ferryctl user list\n  ferryctl user list -o json | jq -r '.users[] | select(.disabled) | .email'",
		Args:    cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			c, err := g.connect()
			if err != nil {
				return err
			}
			defer c.Close()
			us, err := c.Users(cmd.Context())
			if err != nil {
				return err
			}
			if g.json() {
				return writeJSON(g.con.out, wire.UserList{Users: nonNil(us)})
			}
			if len(us) == 0 {
				fmt.Fprintln(g.con.out, "No users.")
				return nil
			}
			rows := make([][]string, 0, len(us))
			for _, u := range us {
				rows = append(rows, []string{u.ID, u.Email, u.Name, list(u.Groups), yesNo(u.MFAEnrolled), yesNo(u.Disabled), fmtTime(u.LastLogin)})
			}
			return writeTable(g.con.out, []string{"ID", "EMAIL", "NAME", "GROUPS", "MFA", "DISABLED", "LAST LOGIN"}, rows)
		},
	}
}

func newUserShowCmd(g *globals) *cobra.Command {
	return &cobra.Command{
		Use:     "show ID",
		Short:   "Show a user, why they hold (or lost) each profile and role, and their lockout",
		Example: "  ferryctl user show alice@example.com\n  ferryctl user show devop-alice -o json",
		Args:    cobra.ExactArgs(1),
		RunE: func(cmd *cobra.Command, args []string) error {
			c, err := g.connect()
			if err != nil {
				return err
			}
			defer c.Close()
			u, err := c.User(cmd.Context(), args[0])
			if err != nil {
				return err
			}
			return g.printUser(u)
		},
	}
}

func (g *globals) printUser(u wire.User) error {
	if g.json() {
		return writeJSON(g.con.out, u)
	}
	fields := []field{
		{"ID", []string{u.ID}},
		{"Email", []string{u.Email}},
		{"Name", []string{u.Name}},
		{"Groups", u.Groups},
		{"MFA enrolled", []string{yesNo(u.MFAEnrolled)}},
		{"Disabled", []string{yesNo(u.Disabled)}},
		{"Created", []string{fmtTime(u.Created)}},
		{"Last login", []string{fmtTime(u.LastLogin)}},
	}
	if u.GroupsClaimMissing {
		fields = append(fields, field{"Groups claim", []string{"missing at the last sign-in: the identity provider sent no groups (request the groups scope or add a groups mapper there; see docs/identity-providers.md)"}})
	}
	if u.Suspended != "" {
		fields = append(fields, field{"Suspended", []string{u.Suspended}})
	}
	if c := u.LastChange; c != nil {
		fields = append(fields, field{"Last change", []string{fmt.Sprintf("%s, by %s, %s", c.What, c.By, fmtTime(c.At))}})
	}
	if lk := u.Lockout; lk != nil {
		state := fmt.Sprintf("not locked (%d failed codes)", lk.Failures)
		if !lk.LockedUntil.IsZero() {
			state = fmt.Sprintf("LOCKED until %s (%d failed codes); ferryctl user unlock ends it", fmtTime(lk.LockedUntil), lk.Failures)
		}
		fields = append(fields, field{"Lockout", []string{state}})
	}
	var grants []string
	for _, gr := range u.Grants {
		name := "profile " + gr.Profile
		if gr.Role != "" {
			name = "role " + gr.Role
		}
		if gr.Held {
			grants = append(grants, fmt.Sprintf("%s: held (%s)", name, gr.Via))
		} else {
			grants = append(grants, fmt.Sprintf("%s: not held: %s", name, gr.Why))
		}
	}
	if len(grants) > 0 {
		fields = append(fields, field{"Access", grants})
	}
	var lost []string
	for _, rv := range u.Revoked {
		line := fmt.Sprintf("device %q (%s) revoked %s: %s", rv.Device, rv.Profile, fmtTime(rv.Revoked), rv.Reason)
		if rv.ByAdmin {
			line += fmt.Sprintf(" [by an administrator: reissue blocked until ferryctl peer clear %s]", rv.Peer)
		}
		lost = append(lost, line)
	}
	if len(lost) > 0 {
		fields = append(fields, field{"Revoked", lost})
	}
	return writeFields(g.con.out, fields)
}

// newUserActionCmd makes disable, enable and reset-mfa, which differ only
// in the call and what they say.
func newUserActionCmd(g *globals, name, short, long string, call func(*client.Client, context.Context, string) (wire.User, error), done string) *cobra.Command {
	return &cobra.Command{
		Use:     name + " ID",
		Short:   short,
		Long:    long,
		Example: fmt.Sprintf("  ferryctl user %s alice@example.com", name),
		Args:    cobra.ExactArgs(1),
		RunE: func(cmd *cobra.Command, args []string) error {
			c, err := g.connect()
			if err != nil {
				return err
			}
			defer c.Close()
			u, err := call(c, cmd.Context(), args[0])
			if err != nil {
				return err
			}
			if g.json() {
				return writeJSON(g.con.out, u)
			}
			fmt.Fprintf(g.con.out, done, who(u.Email, u.ID))
			return nil
		},
	}
}

func newPeerCmd(g *globals) *cobra.Command {
	cmd := &cobra.Command{
		Use:   "peer",
		Short: "Manage WireGuard peers (devices)",
		Long: `A peer is one device's WireGuard identity: its public key, its tunnel address
and the profile it was issued under, until it expires or is revoked.`,
		Example: `  ferryctl peer list --user alice@example.com
  ferryctl peer revoke 4f1c2a --reason "laptop stolen"`,
	}
	cmd.AddCommand(newPeerListCmd(g), newPeerRevokeCmd(g), newPeerClearCmd(g))
	return cmd
}

func newPeerListCmd(g *globals) *cobra.Command {
	var f client.PeerFilter
	cmd := &cobra.Command{
		Use:     "list [--user U] [--profile P] [--node N]",
		Aliases: []string{"ls"},
		Short:   "List peers, with live counters from every node",
		Long: `list shows each peer and its live WireGuard counters, collected from the
device of every node at its last poll (every 2 s): the node its tunnel is on
(the latest handshake), that handshake's age, the endpoint, and bytes
received from (RX) and sent to (TX) the device, summed over the nodes.
-o json gives each node's counters apart, and which nodes answered.`,
		Example: `  ferryctl peer list
  ferryctl peer list --profile engineering --node node-2
  ferryctl peer list --user alice@example.com -o json`,
		Args: cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			c, err := g.connectAdmin(cmd.Context())
			if err != nil {
				return err
			}
			defer c.Close()
			f.Counters = true
			l, err := c.PeerList(cmd.Context(), f)
			if err != nil {
				return err
			}
			l.Peers = nonNil(l.Peers)
			if g.json() {
				return writeJSON(g.con.out, l)
			}
			for _, n := range l.Nodes {
				if n.Error != "" {
					fmt.Fprintf(g.con.err, "warning: no live counters from node %s: %s\n", n.Node, n.Error)
				}
			}
			if len(l.Peers) == 0 {
				fmt.Fprintln(g.con.out, "No peers.")
				return nil
			}
			now := time.Now()
			rows := make([][]string, 0, len(l.Peers))
			for _, p := range l.Peers {
				live := liveCounters(p.Counters)
				rows = append(rows, []string{p.ID, who(p.Email, p.UserID), p.Device, p.Profile, p.Address, p.State, fmtExpiry(p.Expires, now), p.Node,
					live.node, live.handshake(now), live.endpoint, fmtBytes(live.rx), fmtBytes(live.tx)})
			}
			return writeTable(g.con.out, []string{"ID", "USER", "DEVICE", "PROFILE", "ADDRESS", "STATE", "EXPIRES", "NODE",
				"LIVE ON", "HANDSHAKE", "ENDPOINT", "RX", "TX"}, rows)
		},
	}
	cmd.Flags().StringVar(&f.User, "user", "", "only this user's peers (ID or email)")
	cmd.Flags().StringVar(&f.Profile, "profile", "", "only peers issued under this profile")
	cmd.Flags().StringVar(&f.Node, "node", "", "only peers issued by this node")
	return cmd
}

func newPeerRevokeCmd(g *globals) *cobra.Command {
	var reason, user, profile string
	cmd := &cobra.Command{
		Use:   "revoke [ID | --user U | --profile P] [--reason TEXT]",
		Short: "Revoke a peer, every device of a user, or every peer of a profile",
		Long: `revoke ends access on every node within a second: one device (by peer ID),
all of a user's devices (--user), or every peer issued under a profile
(--profile). People keep their sessions and may sign in again, which issues
a new key; disable the user to stop that.`,
		Example: `  ferryctl peer revoke 4f1c2a
  ferryctl peer revoke 4f1c2a --reason "laptop stolen"
  ferryctl peer revoke --user alice@example.com --reason "offboarding"
  ferryctl peer revoke --profile contractors`,
		Args: cobra.MaximumNArgs(1),
		RunE: func(cmd *cobra.Command, args []string) error {
			given := 0
			for _, v := range []bool{len(args) == 1, user != "", profile != ""} {
				if v {
					given++
				}
			}
			if given != 1 {
				return fmt.Errorf("give exactly one of a peer ID, --user or --profile")
			}
			c, err := g.connectAdmin(cmd.Context())
			if err != nil {
				return err
			}
			defer c.Close()
			if len(args) == 0 {
				n, err := c.RevokeAll(cmd.Context(), user, profile, reason)
				if err != nil {
					return err
				}
				if g.json() {
					return writeJSON(g.con.out, wire.RevokeResponse{Revoked: n})
				}
				fmt.Fprintf(g.con.out, "Revoked %d peers.\n", n)
				return nil
			}
			if err := c.RevokePeer(cmd.Context(), args[0], reason); err != nil {
				return err
			}
			p, err := c.Peer(cmd.Context(), args[0])
			if err != nil {
				return err
			}
			if g.json() {
				return writeJSON(g.con.out, p)
			}
			fmt.Fprintf(g.con.out, "Revoked peer %s (%s of %s, %s).\n", p.ID, p.Device, who(p.Email, p.UserID), p.Address)
			return nil
		},
	}
	cmd.Flags().StringVar(&reason, "reason", "", "why, for the audit log")
	cmd.Flags().StringVar(&user, "user", "", "revoke every device of this user ID")
	cmd.Flags().StringVar(&profile, "profile", "", "revoke every peer issued under this profile")
	return cmd
}

func newSessionCmd(g *globals) *cobra.Command {
	cmd := &cobra.Command{
		Use:   "session",
		Short: "Manage sign-in sessions",
		Long: `A session is one sign-in (OIDC and TOTP) by a person, from the desktop client,
the portal or ferryctl. Killing a session signs it out; the peers issued
under it stay until they expire or are revoked.`,
		Example: `  ferryctl session list --user alice@example.com
  ferryctl session kill 9b2e77`,
	}
	cmd.AddCommand(newSessionListCmd(g), newSessionKillCmd(g))
	return cmd
}

func newSessionListCmd(g *globals) *cobra.Command {
	var user string
	cmd := &cobra.Command{
		Use:     "list [--user U]",
		Aliases: []string{"ls"},
		Short:   "List sessions",
		Example: "  ferryctl session list\n  ferryctl session list --user alice@example.com -o json",
		Args:    cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			c, err := g.connect()
			if err != nil {
				return err
			}
			defer c.Close()
			ss, err := c.Sessions(cmd.Context(), user)
			if err != nil {
				return err
			}
			if g.json() {
				return writeJSON(g.con.out, wire.SessionList{Sessions: nonNil(ss)})
			}
			if len(ss) == 0 {
				fmt.Fprintln(g.con.out, "No sessions.")
				return nil
			}
			now := time.Now()
			rows := make([][]string, 0, len(ss))
			for _, s := range ss {
				rows = append(rows, []string{s.ID, who(s.Email, s.UserID), s.Role, s.MFAMethod, s.SourceIP, fmtTime(s.LastSeen), fmtExpiry(s.Expires, now)})
			}
			return writeTable(g.con.out, []string{"ID", "USER", "ROLE", "MFA", "SOURCE", "LAST SEEN", "EXPIRES"}, rows)
		},
	}
	cmd.Flags().StringVar(&user, "user", "", "only this user's sessions (ID or email)")
	return cmd
}

// killed is the JSON answer of session kill.
type killed struct {
	ID     string `json:"id"`
	Killed bool   `json:"killed"`
}

func newSessionKillCmd(g *globals) *cobra.Command {
	return &cobra.Command{
		Use:     "kill ID",
		Short:   "Sign a session out",
		Example: "  ferryctl session kill 9b2e77",
		Args:    cobra.ExactArgs(1),
		RunE: func(cmd *cobra.Command, args []string) error {
			c, err := g.connect()
			if err != nil {
				return err
			}
			defer c.Close()
			if err := c.KillSession(cmd.Context(), args[0]); err != nil {
				return err
			}
			if g.json() {
				return writeJSON(g.con.out, killed{ID: args[0], Killed: true})
			}
			fmt.Fprintf(g.con.out, "Ended session %s.\n", args[0])
			return nil
		},
	}
}

func newPeerClearCmd(g *globals) *cobra.Command {
	return &cobra.Command{
		Use:   "clear ID",
		Short: "Let the owner reissue a device an administrator revoked",
		Long: `A device an administrator revoked cannot be reissued by its owner under the
same name (a new name counts against the profile's max_devices). clear lifts
that; the peer itself stays revoked.`,
		Example: "  ferryctl peer clear 4f1c2a9e0b7d6c5a3e21",
		Args:    cobra.ExactArgs(1),
		RunE: func(cmd *cobra.Command, args []string) error {
			c, err := g.connectAdmin(cmd.Context())
			if err != nil {
				return err
			}
			defer c.Close()
			if err := c.ClearRevocation(cmd.Context(), args[0]); err != nil {
				return err
			}
			fmt.Fprintf(g.con.out, "Cleared the revocation of peer %s: its owner may reissue the device.\n", args[0])
			return nil
		},
	}
}

// peerLive is a peer's counters over the nodes: the node and endpoint of
// the latest handshake, bytes summed.
type peerLive struct {
	node, endpoint string
	last           *time.Time
	rx, tx         int64
	any            bool
}

func liveCounters(cs []wire.PeerCounters) peerLive {
	var l peerLive
	for _, c := range cs {
		l.any = true
		l.rx += c.RxBytes
		l.tx += c.TxBytes
		if c.LastHandshake != nil && (l.last == nil || c.LastHandshake.After(*l.last)) {
			l.last, l.node, l.endpoint = c.LastHandshake, c.Node, c.Endpoint
		}
	}
	return l
}

func (l peerLive) handshake(now time.Time) string {
	if l.last == nil {
		if l.any {
			return "never"
		}
		return ""
	}
	return now.Sub(*l.last).Round(time.Second).String() + " ago"
}

// fmtBytes writes a byte count in binary units.
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
