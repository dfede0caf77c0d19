package main

import (
	"fmt"
	"os"
	"path/filepath"
	"time"

	"github.com/spf13/cobra"

	"github.com/ferryvpn/ferry/cmd/internal/wire"
)

func newClusterCmd(g *globals) *cobra.Command {
	cmd := &cobra.Command{
		Use:   "cluster",
		Short: "Inspect and operate the cluster",
		Long: `status   the answering node's view: leader, indexes, members and their health
join     a join token, and the ferryd join command to run on the new machine
remove   take a node out of the cluster (after it is gone for good)
backup   a consistent snapshot of the whole state, to a file
restore  replace the whole state with a backup (any node passes it to the leader)

A node that is still running leaves by itself with "ferryd leave".`,
	}
	cmd.AddCommand(newClusterStatusCmd(g), newClusterJoinCmd(g), newClusterRemoveCmd(g), newClusterBackupCmd(g), newClusterRestoreCmd(g))
	return cmd
}

func newClusterJoinCmd(g *globals) *cobra.Command {
	var (
		ttl    time.Duration
		out    string
		nodeID string
	)
	cmd := &cobra.Command{
		Use:   "join [--ttl 1h] [--node-id ID] [-f FILE]",
		Short: "Make a join token for one new node, and print how to use it",
		Long: `join asks the cluster for a join token and prints it, with the ferryd join
command to run on the new machine. The token admits one node, once (with
--node-id, only that node), until it expires; the audit log records who
minted it and which node used it. Pass it over a secure channel, and prefer
-f FILE, which writes it to a new file readable by you only instead of
printing it. The token pins the cluster's CA, so the new machine can reach
the cluster through any node or the load balancer.`,
		Example: `  ferryctl cluster join --node-id n4 -f n4.token
  ferryctl cluster join --ttl 15m`,
		Args: cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			if ttl < time.Second || ttl > wire.MaxJoinTokenTTL || ttl%time.Second != 0 {
				return fmt.Errorf("--ttl %s: want whole seconds from 1s to %s", ttl, wire.MaxJoinTokenTTL)
			}
			server, _, _, err := g.target()
			if err != nil {
				return err
			}
			c, err := g.connect()
			if err != nil {
				return err
			}
			defer c.Close()
			var f *os.File
			if out != "" {
				// Before asking: a token is not minted for a file that
				// cannot be written.
				if f, err = os.OpenFile(out, os.O_CREATE|os.O_WRONLY|os.O_EXCL, 0o600); err != nil {
					return fmt.Errorf("-f: %w", err)
				}
			}
			tok, err := c.JoinToken(cmd.Context(), ttl, nodeID)
			if err == nil && f != nil {
				_, err = fmt.Fprintln(f, tok.Token)
				if cerr := f.Close(); err == nil {
					err = cerr
				}
			}
			if err != nil {
				if f != nil {
					f.Close()
					os.Remove(out)
				}
				return err
			}
			if g.json() {
				res := struct {
					Token   string    `json:"token,omitempty"`
					File    string    `json:"file,omitempty"`
					Expires time.Time `json:"expires"`
					Command string    `json:"command"`
				}{Expires: tok.Expires, File: out}
				tokenFile := "FILE"
				if f == nil {
					res.Token = tok.Token
				} else {
					tokenFile = filepath.Base(out)
				}
				res.Command = joinCommand(server, tokenFile, nodeID)
				return writeJSON(g.con.out, res)
			}
			tokenFile := "FILE"
			if f != nil {
				tokenFile = filepath.Base(out)
				fmt.Fprintf(g.con.out, "Wrote a join token to %s (mode 0600), valid until %s.\n", out, tok.Expires.UTC().Format(time.RFC3339))
				fmt.Fprintf(g.con.out, "Copy it to the new machine as %s, then run there:\n\n", tokenFile)
			} else {
				fmt.Fprintf(g.con.out, "Join token, valid until %s (anyone holding it can add a node):\n\n%s\n\n", tok.Expires.UTC().Format(time.RFC3339), tok.Token)
				fmt.Fprintf(g.con.out, "On the new machine, save it to a file readable by root only (FILE), then run:\n\n")
			}
			fmt.Fprintf(g.con.out, "%s\n", joinCommand(server, tokenFile, nodeID))
			return nil
		},
	}
	cmd.Flags().DurationVar(&ttl, "ttl", wire.DefaultJoinTokenTTL, fmt.Sprintf("how long the token admits a node (at most %s)", wire.MaxJoinTokenTTL))
	cmd.Flags().StringVar(&nodeID, "node-id", "", "admit only the node with this ID")
	cmd.Flags().StringVarP(&out, "file", "f", "", "write the token to this new file (0600) instead of printing it")
	return cmd
}

// joinCommand is the ferryd join command line for a new machine; the
// values in capitals are the operator's to fill in.
func joinCommand(server, tokenFile, nodeID string) string {
	if nodeID == "" {
		nodeID = "NODE-ID"
	}
	return "  ferryd join --server " + server + " --token-file " + tokenFile + ` \
      --dir /etc/ferry --data-dir /var/lib/ferry --node-id ` + nodeID + ` \
      --cluster-addr THIS-HOST:7946 --api-addr 0.0.0.0:8443 --api-name THIS-HOST \
      --master-key-file /etc/ferry/master.key

NODE-ID is the new node's name, unique in the cluster; THIS-HOST its address
other nodes and clients reach (--api-name only names the cluster is
configured for: api.public_url and api.names); master.key a copy of the
cluster's master key (mode 0600). The node joins as a non-voter and votes
once it has caught up; with two voters, losing either stops writes, so join
a third soon. See "ferryd join --help".`
}

func newClusterStatusCmd(g *globals) *cobra.Command {
	return &cobra.Command{
		Use:     "status",
		Short:   "Show the cluster as the answering node sees it",
		Example: "  ferryctl cluster status\n  ferryctl cluster status -o json | jq .members",
		Args:    cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			c, err := g.connect()
			if err != nil {
				return err
			}
			defer c.Close()
			st, err := c.ClusterStatus(cmd.Context())
			if err != nil {
				return err
			}
			if g.json() {
				return writeJSON(g.con.out, st)
			}
			ready := "yes"
			if !st.Ready {
				ready = "no: " + st.NotReady
			}
			if err := writeFields(g.con.out, []field{
				{"Node", []string{st.Node}}, {"State", []string{st.State}}, {"Ready", []string{ready}}, {"Leader", []string{st.LeaderID}},
				{"Term", []string{fmt.Sprint(st.Term)}}, {"Commit index", []string{fmt.Sprint(st.CommitIndex)}},
				{"Applied index", []string{fmt.Sprint(st.AppliedIndex)}}, {"Audit records", []string{fmt.Sprint(st.JournalSeq)}},
			}); err != nil {
				return err
			}
			if st.AuditNetworkSinks != nil && *st.AuditNetworkSinks == 0 {
				fmt.Fprintln(g.con.out, "Audit export:  NO NETWORK SINK: the audit journal leaves the cluster nowhere (ferryctl audit sink add)")
			}
			fmt.Fprintln(g.con.out)
			rows := make([][]string, 0, len(st.Members))
			for _, m := range st.Members {
				rows = append(rows, []string{m.ID, m.Addr, yesNo(m.Voter), yesNo(m.Leader), health(m), certExpiry(m)})
			}
			return writeTable(g.con.out, []string{"MEMBER", "ADDRESS", "VOTER", "LEADER", "HEALTHY", "CERT EXPIRES"}, rows)
		},
	}
}

// certExpiry is when the member's node certificate expires, as recorded.
func certExpiry(m wire.ClusterMember) string {
	if m.CertNotAfter == nil {
		return "(not recorded)"
	}
	return m.CertNotAfter.UTC().Format(time.RFC3339)
}

func health(m wire.ClusterMember) string {
	if m.Healthy == nil {
		return "(ask the leader)"
	}
	return yesNo(*m.Healthy)
}

func newClusterRemoveCmd(g *globals) *cobra.Command {
	return &cobra.Command{
		Use:     "remove NODE-ID",
		Short:   "Remove a node from the cluster",
		Example: "  ferryctl cluster remove n3",
		Args:    cobra.ExactArgs(1),
		RunE: func(cmd *cobra.Command, args []string) error {
			c, err := g.connect()
			if err != nil {
				return err
			}
			defer c.Close()
			if err := c.RemoveMember(cmd.Context(), args[0]); err != nil {
				return err
			}
			fmt.Fprintf(g.con.out, "Removed %s from the cluster.\n", args[0])
			return nil
		},
	}
}

func newClusterBackupCmd(g *globals) *cobra.Command {
	cmd := &cobra.Command{
		Use:     "backup FILE",
		Short:   "Write a consistent snapshot of the cluster's state to a new file (0600)",
		Example: "  ferryctl cluster backup ferry-$(date +%F).snap",
		Args: func(cmd *cobra.Command, args []string) error {
			if len(args) != 1 || args[0] == "" {
				return fmt.Errorf("give the backup FILE (the backup holds sealed secrets and the audit log; keep it safe)")
			}
			return nil
		},
		RunE: func(cmd *cobra.Command, args []string) error {
			out := args[0]
			c, err := g.connect()
			if err != nil {
				return err
			}
			defer c.Close()
			f, err := os.OpenFile(out, os.O_CREATE|os.O_WRONLY|os.O_EXCL, 0o600)
			if err != nil {
				return err
			}
			if err := c.Backup(cmd.Context(), f); err != nil {
				f.Close()
				os.Remove(out)
				return err
			}
			if err := f.Close(); err != nil {
				return err
			}
			st, err := os.Stat(out)
			if err != nil {
				return err
			}
			if g.json() {
				return writeJSON(g.con.out, struct {
					File  string `json:"file"`
					Bytes int64  `json:"bytes"`
				}{out, st.Size()})
			}
			fmt.Fprintf(g.con.out, "Wrote %s (%d bytes).\n", out, st.Size())
			return nil
		},
	}
	return cmd
}

func newClusterRestoreCmd(g *globals) *cobra.Command {
	var yes bool
	cmd := &cobra.Command{
		Use:   "restore FILE",
		Short: "Replace the whole cluster's state with a backup",
		Long: `restore replaces every profile, peer, user, session and audit record with
the backup's. The backup is checked whole first: a damaged file changes
nothing. Any node takes it, through the load balancer too, and streams it to
the leader.`,
		Example: "  ferryctl cluster restore ferry-2026-11-28.snap --yes",
		Args:    cobra.ExactArgs(1),
		RunE: func(cmd *cobra.Command, args []string) error {
			if !yes {
				return fmt.Errorf("restore replaces the whole state of the cluster: add --yes to go ahead")
			}
			c, err := g.connect()
			if err != nil {
				return err
			}
			defer c.Close()
			f, err := os.Open(args[0])
			if err != nil {
				return err
			}
			defer f.Close()
			if err := c.Restore(cmd.Context(), f); err != nil {
				return err
			}
			fmt.Fprintf(g.con.out, "Restored the cluster from %s.\n", args[0])
			return nil
		},
	}
	cmd.Flags().BoolVar(&yes, "yes", false, "confirm replacing the whole state")
	return cmd
}
