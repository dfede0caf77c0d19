package main

import (
	"errors"
	"fmt"
	"io"
	"os"

	"github.com/spf13/cobra"

	"github.com/ferryvpn/ferry/audit"
)

func newAuditCmd(stdout io.Writer) *cobra.Command {
	cmd := &cobra.Command{
		Use:   "audit",
		Short: "Offline audit tools",
	}
	var keyFile string
	var noTrailer bool
	verify := &cobra.Command{
		Use:   "verify FILE --key KEY.json",
		Short: "Verify an audit export offline",
		Long: `verify recomputes an export's hash chain, checks its checkpoints' and its
trailer's signatures with the audit public key, and names the first record
that was edited, deleted, reordered or cut off. It needs no cluster: the key
comes from "ferryctl audit key" (keep a copy with the export).

Files written by the file sink have no trailer: use --no-trailer for them.`,
		Example: `  ferryctl audit key > audit-key.json
  ferryctl audit export --output export.jsonl
  ferryd audit verify export.jsonl --key audit-key.json`,
		Args: cobra.ExactArgs(1),
		RunE: func(cmd *cobra.Command, args []string) error {
			if keyFile == "" {
				return errors.New("--key: required (the audit public key, from ferryctl audit key)")
			}
			kb, err := os.ReadFile(keyFile)
			if err != nil {
				return err
			}
			keys, err := audit.ParseKeys(kb)
			if err != nil {
				return fmt.Errorf("--key %s: %w", keyFile, err)
			}
			f, err := os.Open(args[0])
			if err != nil {
				return err
			}
			defer f.Close()
			rep, err := audit.VerifyFile(f, audit.VerifyOptions{Keys: keys, RequireTrailer: !noTrailer})
			if err != nil {
				return fmt.Errorf("%s FAILED verification: %w", args[0], err)
			}
			fmt.Fprintf(stdout, "%s: %d records (%d..%d, %d events, %d checkpoints) verified; signed through %d",
				args[0], rep.Records, rep.First, rep.Last, rep.Events, rep.Checkpoints, rep.Signed)
			if rep.Duplicates > 0 {
				fmt.Fprintf(stdout, "; %d repeated deliveries", rep.Duplicates)
			}
			fmt.Fprintln(stdout)
			return nil
		},
	}
	verify.Flags().StringVar(&keyFile, "key", "", "the audit public key record (JSON)")
	verify.Flags().BoolVar(&noTrailer, "no-trailer", false, "accept a file without a signed trailer (sink output)")
	cmd.AddCommand(verify)
	return cmd
}
