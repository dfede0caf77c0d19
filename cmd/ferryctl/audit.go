package main

import (
	"encoding/json"
	"fmt"
	"io"
	"os"
	"time"

	"github.com/spf13/cobra"

	"github.com/ferryvpn/ferry/cmd/internal/client"
)

func newAuditCmd(g *globals) *cobra.Command {
	cmd := &cobra.Command{
		Use:   "audit",
		Short: "Read, export and verify the audit log",
		Long: `The audit log records every sign-in, MFA attempt, admin change, tunnel
session and flow, hash-chained in commit order with signed checkpoints.

  tail      print the newest records; -f keeps following
  export    write records (JSON lines with chain fields and a signed trailer,
            or CEF/OCSF) for an auditor
  key       print the audit public key, for verifying exports offline
  verify    check the live journal of the node that answers (--live)

An export is verified offline, on any machine, with
  ferryd audit verify FILE --key KEY.json`,
	}
	cmd.AddCommand(newAuditTailCmd(g), newAuditExportCmd(g), newAuditKeyCmd(g), newAuditVerifyCmd(g))
	return cmd
}

// auditFlags are the filters tail and export share.
type auditFlags struct {
	since, until, user, format string
	types                      []string
}

func (f *auditFlags) add(cmd *cobra.Command) {
	fl := cmd.Flags()
	fl.StringVar(&f.since, "since", "", "only records at or after this time (RFC 3339, or a duration ago such as 24h)")
	fl.StringVar(&f.until, "until", "", "only records before this time (RFC 3339, or a duration ago)")
	fl.StringSliceVar(&f.types, "type", nil, "only these event types; a trailing * matches a prefix (auth.*)")
	fl.StringVar(&f.user, "user", "", "only events of this user ID")
	fl.StringVar(&f.format, "format", "json", "json, cef, ocsf or syslog")
}

func (f *auditFlags) query() (client.AuditQuery, error) {
	q := client.AuditQuery{Types: f.types, User: f.user, Format: f.format}
	var err error
	if q.Since, err = timeArg("--since", f.since); err != nil {
		return q, err
	}
	q.Until, err = timeArg("--until", f.until)
	return q, err
}

// timeArg accepts RFC 3339 or a duration before now.
func timeArg(flag, v string) (string, error) {
	if v == "" {
		return "", nil
	}
	if _, err := time.Parse(time.RFC3339, v); err == nil {
		return v, nil
	}
	d, err := time.ParseDuration(v)
	if err != nil || d < 0 {
		return "", fmt.Errorf("%s %q: want an RFC 3339 time (2026-11-28T12:00:00Z) or a duration ago (24h)", flag, v)
	}
	return time.Now().Add(-d).UTC().Format(time.RFC3339), nil
}

func newAuditTailCmd(g *globals) *cobra.Command {
	var f auditFlags
	var follow bool
	var lines uint64
	cmd := &cobra.Command{
		Use:     "tail",
		Short:   "Print the newest audit records; -f follows new ones",
		Example: "  ferryctl audit tail -n 50\n  ferryctl audit tail -f --type 'auth.*'",
		Args:    cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			c, err := g.connect()
			if err != nil {
				return err
			}
			defer c.Close()
			q, err := f.query()
			if err != nil {
				return err
			}
			st, err := c.ClusterStatus(cmd.Context())
			if err != nil {
				return err
			}
			if st.JournalSeq > lines {
				q.FromSeq = st.JournalSeq - lines + 1
			}
			q.Follow = follow
			return c.AuditRecords(cmd.Context(), q, g.con.out)
		},
	}
	f.add(cmd)
	cmd.Flags().BoolVarP(&follow, "follow", "f", false, "keep printing new records until interrupted")
	cmd.Flags().Uint64VarP(&lines, "lines", "n", 10, "start this many records before the end")
	return cmd
}

func newAuditExportCmd(g *globals) *cobra.Command {
	var f auditFlags
	var out string
	cmd := &cobra.Command{
		Use:   "export",
		Short: "Export audit records for an auditor or a SIEM",
		Example: `  ferryctl audit export --since 720h --output audit-2026-11.jsonl
  ferryctl audit export --type 'admin.*' --format cef > admin.cef`,
		Args: cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			c, err := g.connect()
			if err != nil {
				return err
			}
			defer c.Close()
			q, err := f.query()
			if err != nil {
				return err
			}
			var w io.Writer = g.con.out
			var p *progress
			if out != "" && out != "-" {
				file, err := os.OpenFile(out, os.O_CREATE|os.O_WRONLY|os.O_EXCL, 0o600)
				if err != nil {
					return err
				}
				defer file.Close()
				p = &progress{w: file, to: g.con.err, every: time.Second}
				w = p
			}
			if err := c.AuditRecords(cmd.Context(), q, w); err != nil {
				return err
			}
			if p != nil {
				p.done(out)
			}
			return nil
		},
	}
	f.add(cmd)
	cmd.Flags().StringVar(&out, "output", "", "write to this new file (0600) and show progress; default standard output")
	return cmd
}

// progress counts records (lines) as they are written and reports them
// on a line of their own at most every interval.
type progress struct {
	w            io.Writer
	to           io.Writer
	every        time.Duration
	lines, bytes int64
	last         time.Time
}

func (p *progress) Write(b []byte) (int, error) {
	n, err := p.w.Write(b)
	p.bytes += int64(n)
	for _, c := range b[:n] {
		if c == '\n' {
			p.lines++
		}
	}
	if time.Since(p.last) >= p.every {
		p.last = time.Now()
		fmt.Fprintf(p.to, "\rexported %d records (%d KiB)", p.lines, p.bytes>>10)
	}
	return n, err
}

func (p *progress) done(name string) {
	fmt.Fprintf(p.to, "\rexported %d records (%d KiB) to %s\n", p.lines, p.bytes>>10, name)
}

func newAuditKeyCmd(g *globals) *cobra.Command {
	return &cobra.Command{
		Use:     "key",
		Short:   "Print the audit public key (JSON) for offline verification",
		Example: "  ferryctl audit key > audit-key.json\n  ferryd audit verify export.jsonl --key audit-key.json",
		Args:    cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			c, err := g.connect()
			if err != nil {
				return err
			}
			defer c.Close()
			k, err := c.AuditKey(cmd.Context())
			if err != nil {
				return err
			}
			var v any
			if err := json.Unmarshal(k, &v); err != nil {
				return err
			}
			return writeJSON(g.con.out, v)
		},
	}
}

func newAuditVerifyCmd(g *globals) *cobra.Command {
	var live bool
	cmd := &cobra.Command{
		Use:   "verify --live",
		Short: "Verify the live audit journal of the answering node",
		Long: `verify --live asks the node that answers to recompute its whole journal:
every record's hash, its link to the one before, the checkpoint signatures,
and that nothing was cut from the end. A problem names the record.

To verify an exported file offline, use ferryd audit verify FILE --key KEY.`,
		Example: "  ferryctl audit verify --live\n  ferryctl --server https://node2.internal:8443 audit verify --live",
		Args:    cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			if !live {
				return fmt.Errorf("say --live to verify the cluster's journal; to verify an export file use: ferryd audit verify FILE --key KEY")
			}
			c, err := g.connect()
			if err != nil {
				return err
			}
			defer c.Close()
			r, err := c.AuditVerify(cmd.Context())
			if err != nil {
				return err
			}
			if g.json() {
				if err := writeJSON(g.con.out, r); err != nil {
					return err
				}
			} else if r.OK {
				fmt.Fprintf(g.con.out, "node %s: %d records (%d..%d) verified; signed through %d\n", r.Node, r.Records, r.First, r.Last, r.Signed)
			}
			if !r.OK {
				return fmt.Errorf("node %s: audit journal FAILED verification: %s", r.Node, r.Problem)
			}
			return nil
		},
	}
	cmd.Flags().BoolVar(&live, "live", false, "verify the journal stored in the cluster")
	return cmd
}
