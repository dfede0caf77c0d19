package main

import (
	"fmt"
	"os"

	"github.com/spf13/cobra"

	"github.com/ferryvpn/ferry/cmd/internal/wire"
)

func newClusterCmd(g *globals) *cobra.Command {
	cmd := &cobra.Command{
		Use:   "cluster",
		Short: "Inspect and operate the cluster",
		Long: `status   the answering node's view: leader, indexes, members and their health
remove   take a node out of the cluster (after it is gone for good)
backup   a consistent snapshot of the whole state, to a file
restore  replace the whole state with a backup (send it to the leader)

New nodes join with ferryd token and ferryd join on the new machine.`,
	}
	cmd.AddCommand(newClusterStatusCmd(g), newClusterRemoveCmd(g), newClusterBackupCmd(g), newClusterRestoreCmd(g))
	return cmd
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
			fmt.Fprintln(g.con.out)
			rows := make([][]string, 0, len(st.Members))
			for _, m := range st.Members {
				rows = append(rows, []string{m.ID, m.Addr, yesNo(m.Voter), yesNo(m.Leader), health(m)})
			}
			return writeTable(g.con.out, []string{"MEMBER", "ADDRESS", "VOTER", "LEADER", "HEALTHY"}, rows)
		},
	}
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
	var out string
	cmd := &cobra.Command{
		Use:     "backup --output FILE",
		Short:   "Write a consistent snapshot of the cluster's state to a file",
		Example: "  ferryctl cluster backup --output ferry-$(date +%F).snap",
		Args:    cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			if out == "" {
				return fmt.Errorf("--output: required (the backup holds sealed secrets and the audit log; keep it safe)")
			}
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
			st, _ := os.Stat(out)
			fmt.Fprintf(g.con.out, "Wrote %s (%d bytes).\n", out, st.Size())
			return nil
		},
	}
	cmd.Flags().StringVar(&out, "output", "", "the new backup file (0600)")
	return cmd
}

func newClusterRestoreCmd(g *globals) *cobra.Command {
	var yes bool
	cmd := &cobra.Command{
		Use:   "restore FILE",
		Short: "Replace the whole cluster's state with a backup",
		Long: `restore replaces every profile, peer, user, session and audit record with
the backup's. The backup is checked whole first: a damaged file changes
nothing. Send it to the leader (--server); another node answers with the
leader's ID.`,
		Example: "  ferryctl --server https://n1.internal:8443 cluster restore ferry-2026-11-28.snap --yes",
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
