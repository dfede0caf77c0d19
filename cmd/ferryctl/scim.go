package main

import (
	"fmt"

	"github.com/spf13/cobra"
)

func newSCIMCmd(g *globals) *cobra.Command {
	cmd := &cobra.Command{
		Use:   "scim",
		Short: "Connect the identity provider: SCIM token and endpoints",
		Long: `show          the URLs to enter at the identity provider (SCIM base URL,
              back-channel logout, Shared Signals push) and the SCIM token's state
rotate-token  mint a new SCIM bearer token; the old one stops working at once

SCIM, back-channel logout and Shared Signals are switched on in ferryd's
configuration (scim.enabled, oidc.backchannel_logout, ssf.issuer); see
docs/idp.md for Okta and Microsoft Entra ID.`,
	}
	cmd.AddCommand(newSCIMShowCmd(g), newSCIMRotateCmd(g))
	return cmd
}

func newSCIMShowCmd(g *globals) *cobra.Command {
	return &cobra.Command{
		Use:   "show",
		Short: "Show the endpoints to configure at the identity provider",
		Args:  cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			c, err := g.connectAdmin(cmd.Context())
			if err != nil {
				return err
			}
			defer c.Close()
			info, err := c.IdP(cmd.Context())
			if err != nil {
				return err
			}
			if g.json() {
				return writeJSON(g.con.out, info)
			}
			off := func(s, why string) string {
				if s == "" {
					return "off (" + why + ")"
				}
				return s
			}
			token := "none: run ferryctl scim rotate-token"
			if info.SCIMTokenSet {
				token = "set " + fmtTime(info.SCIMRotated) + " by " + info.SCIMRotatedBy
			}
			if info.SCIMBaseURL == "" {
				token = "-"
			}
			return writeFields(g.con.out, []field{
				{"OIDC issuer", []string{info.Issuer}},
				{"SCIM base URL", []string{off(info.SCIMBaseURL, "scim.enabled")}},
				{"SCIM auth", []string{"HTTP header Authorization: Bearer TOKEN"}},
				{"SCIM token", []string{token}},
				{"SCIM group name", []string{info.SCIMGroupName}},
				{"Back-channel logout", []string{off(info.BackChannelURL, "oidc.backchannel_logout")}},
				{"SSF push URL", []string{off(info.SSFPushURL, "ssf.issuer")}},
				{"SSF transmitter", []string{info.SSFIssuer}},
			})
		},
	}
}

func newSCIMRotateCmd(g *globals) *cobra.Command {
	return &cobra.Command{
		Use:   "rotate-token",
		Short: "Mint a new SCIM bearer token (the old one stops working)",
		Long: `rotate-token mints a new bearer token for SCIM and prints it once. The
previous token is refused from that moment on every node, so paste the new
one into the identity provider's provisioning settings right away (Okta:
the application's Provisioning > Integration > API token; Entra ID: the
enterprise application's Provisioning > Admin Credentials > Secret Token).
ferry keeps the token sealed under the cluster master key; the rotation is
audited, never the token.`,
		Args: cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			c, err := g.connectAdmin(cmd.Context())
			if err != nil {
				return err
			}
			defer c.Close()
			tok, err := c.RotateSCIMToken(cmd.Context())
			if err != nil {
				return err
			}
			if g.json() {
				return writeJSON(g.con.out, tok)
			}
			fmt.Fprintf(g.con.out, "SCIM base URL: %s\nSCIM token (shown once; the previous one no longer works):\n\n%s\n", tok.BaseURL, tok.Token)
			return nil
		},
	}
}
