package main

import (
	"encoding/json"
	"fmt"
	"strings"
	"text/tabwriter"
	"time"

	"github.com/ferryvpn/ferry/cmd/internal/wire"
	"github.com/spf13/cobra"
)

func newProfilesCmd(g *globals) *cobra.Command {
	return &cobra.Command{
		Use:   "profiles",
		Short: "List the profiles you may use",
		Long: `profiles asks the server which access profiles are assigned to you. The one
this device uses is marked with *; switch with ferry login --profile NAME.`,
		Example: "  ferry profiles\n  ferry profiles -o json",
		Args:    cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			dir, err := g.configDir()
			if err != nil {
				return err
			}
			st, err := loadState(dir)
			if err != nil {
				return err
			}
			c, err := g.connect(dir, st)
			if err != nil {
				return err
			}
			defer c.Close()
			ps, err := c.Profiles(cmd.Context(), false)
			if err != nil {
				return err
			}
			if ps == nil {
				ps = []wire.Profile{}
			}
			if g.json() {
				enc := json.NewEncoder(g.con.out)
				enc.SetIndent("", "  ")
				return enc.Encode(wire.ProfileList{Profiles: ps})
			}
			if len(ps) == 0 {
				fmt.Fprintln(g.con.out, "No profile is assigned to you: ask your administrator.")
				return nil
			}
			tw := tabwriter.NewWriter(g.con.out, 0, 4, 2, ' ', 0)
			fmt.Fprintln(tw, "\tNAME\tTUNNEL\tMAX SESSION\tDESTINATIONS\tDESCRIPTION")
			for _, p := range ps {
				mark := ""
				if p.Name == st.Peer.Profile {
					mark = "*"
				}
				tunnel := "split"
				if p.FullTunnel {
					tunnel = "full"
				}
				var dst []string
				for _, r := range p.Rules {
					d := r.CIDR + " " + r.Protocol
					if len(r.Ports) > 0 {
						d += " " + strings.Join(r.Ports, ",")
					}
					dst = append(dst, d)
				}
				fmt.Fprintf(tw, "%s\t%s\t%s\t%s\t%s\t%s\n", mark, p.Name, tunnel, orDash(fmtMaxSession(p.MaxSession)), orDash(strings.Join(dst, "; ")), orDash(p.Description))
			}
			return tw.Flush()
		},
	}
}

func orDash(s string) string {
	if s = strings.Join(strings.Fields(s), " "); s == "" {
		return "-"
	}
	return s
}

// fmtMaxSession shows the server's Go duration ("12h0m0s") as people
// write it ("12h").
func fmtMaxSession(s string) string {
	d, err := time.ParseDuration(s)
	if err != nil || d <= 0 {
		return s
	}
	return fmtDuration(d)
}
