package main

import (
	"errors"
	"fmt"
	"io"
	"os"

	"github.com/spf13/cobra"

	"github.com/ferryvpn/ferry/audit/auditfile"
)

func newAuditCmd(stdout io.Writer) *cobra.Command {
	cmd := &cobra.Command{
		Use:   "audit",
		Short: "Offline audit tools",
	}
	var keyFile string
	var noTrailer, acceptUnsigned bool
	verify := &cobra.Command{
		Use:   "verify FILE --key KEY.json",
		Short: "Verify an audit export offline",
		Long: `verify recomputes an export's hash chain, checks its checkpoints' and its
trailer's signatures with the audit public key, and names the first record
that was edited, deleted, reordered or cut off. It needs no cluster: the key
comes from "ferryctl audit key" (keep a copy apart from the cluster). It is
the same check as "ferryctl audit verify FILE --key KEY.json".

Files written by the file sink have no trailer: use --no-trailer for them.`,
		Example: `  ferryctl audit key > audit-key.json
  ferryctl audit export --output export.jsonl
  ferryd audit verify export.jsonl --key audit-key.json
  ferryctl audit verify export.jsonl --key audit-key.json   # the same, on an admin's machine`,
		Args: cobra.ExactArgs(1),
		RunE: func(cmd *cobra.Command, args []string) error {
			if keyFile == "" {
				return errors.New("--key: required (the audit public key, from ferryctl audit key)")
			}
			keys, err := auditfile.ReadKeysFile(keyFile)
			if err != nil {
				return fmt.Errorf("--key: %w", err)
			}
			f, err := os.Open(args[0])
			if err != nil {
				return err
			}
			defer f.Close()
			rep, err := auditfile.VerifyFile(f, auditfile.VerifyOptions{Keys: keys, RequireTrailer: !noTrailer, AcceptUnsignedTail: acceptUnsigned})
			for _, p := range rep.Problems {
				fmt.Fprintf(stdout, "%s: %s: %s\n", args[0], p.Kind, p.Detail)
			}
			if err != nil {
				return fmt.Errorf("%s FAILED verification: %w", args[0], err)
			}
			fmt.Fprintf(stdout, "%s: %s\n", args[0], rep.Summary())
			return nil
		},
	}
	verify.Flags().StringVar(&keyFile, "key", "", "the audit public key record (JSON)")
	verify.Flags().BoolVar(&noTrailer, "no-trailer", false, "accept a file without a signed trailer (sink output)")
	verify.Flags().BoolVar(&acceptUnsigned, "accept-unsigned-tail", false, "accept records after the last checkpoint, which no signature covers")
	cmd.AddCommand(verify)
	return cmd
}
