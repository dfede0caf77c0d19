package main

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"os"
	"time"

	"github.com/spf13/cobra"

	"github.com/ferryvpn/ferry/audit/auditfile"
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
  verify    check an export file offline (FILE --key KEY.json), or the
            live journal of the node that answers (--live)
  sink      manage the network sinks (add, list, show, test, remove)`,
	}
	cmd.AddCommand(newAuditTailCmd(g), newAuditExportCmd(g), newAuditKeyCmd(g), newAuditVerifyCmd(g), newAuditSinkCmd(g), newAuditStatusCmd(g))
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
		Use:   "tail",
		Short: "Print the newest audit records; -f follows new ones",
		Long: `tail prints the newest audit records, one readable line each (time, sequence
number, actor, action, target, outcome and its reason). -o json prints the
native JSON lines instead, and --format json, cef, ocsf or syslog that
export format.`,
		Example: "  ferryctl audit tail -n 50\n  ferryctl audit tail -f --type 'auth.*'\n  ferryctl audit tail --format cef",
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
			// People get one readable line per record; scripts (-o json)
			// and SIEMs (--format) get the export format.
			if !g.json() && !cmd.Flags().Changed("format") {
				return c.AuditRecords(cmd.Context(), q, &auditLines{out: g.con.out})
			}
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
	cmd := &cobra.Command{
		Use:   "export [FILE]",
		Short: "Export audit records for an auditor or a SIEM",
		Long: `export writes the audit records that match the filters, with a signed
trailer, to FILE (a new file, mode 0600, with progress on standard error),
or to standard output without FILE or with "-".`,
		Example: `  ferryctl audit export --since 720h audit-2026-11.jsonl
  ferryctl audit export --type 'admin.*' --format cef > admin.cef`,
		Args: cobra.MaximumNArgs(1),
		RunE: func(cmd *cobra.Command, args []string) error {
			out := ""
			if len(args) == 1 {
				out = args[0]
			}
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
	return cmd
}

// progress counts the records written and reports them on a line of
// their own at most every interval. A record is a line other than the
// header and trailer of the native format.
type progress struct {
	w              io.Writer
	to             io.Writer
	every          time.Duration
	records, bytes int64
	last           time.Time
	start          []byte // the current line's first bytes, enough to tell a header or trailer
}

// Lines of the native format that frame an export rather than carry a
// record (auditfile.Header, the export's first checkpoint and
// auditfile.Trailer).
var (
	headerStart     = []byte(`{"export":`)
	checkpointStart = []byte(`{"checkpoint":`) // the longest
	trailerStart    = []byte(`{"end":`)
)

func (p *progress) Write(b []byte) (int, error) {
	n, err := p.w.Write(b)
	p.bytes += int64(n)
	p.count(b[:n])
	if time.Since(p.last) >= p.every {
		p.last = time.Now()
		fmt.Fprintf(p.to, "\rexported %d records (%d KiB)", p.records, p.bytes>>10)
	}
	return n, err
}

// count counts the records among the lines that end in b.
func (p *progress) count(b []byte) {
	for len(b) > 0 {
		line, rest, complete := bytes.Cut(b, []byte{'\n'})
		if room := len(checkpointStart) - len(p.start); room > 0 {
			p.start = append(p.start, line[:min(room, len(line))]...)
		}
		if !complete {
			return
		}
		if len(p.start) > 0 && !bytes.HasPrefix(p.start, headerStart) && !bytes.HasPrefix(p.start, checkpointStart) && !bytes.HasPrefix(p.start, trailerStart) {
			p.records++
		}
		p.start, b = p.start[:0], rest
	}
}

func (p *progress) done(name string) {
	fmt.Fprintf(p.to, "\rexported %d records (%d KiB) to %s\n", p.records, p.bytes>>10, name)
}

func newAuditStatusCmd(g *globals) *cobra.Command {
	return &cobra.Command{
		Use:   "status",
		Short: "Show the audit retention, the flow records' window and the last prune",
		Long: `status shows how long the journal keeps records (audit.retention), how long
it keeps raw flow records (audit.flow_retention: older ones are pruned to
stubs that keep the hash chain, their daily totals kept as flow.summary
events), the answering node's journal range and the last prune.`,
		Example: "  ferryctl audit status\n  ferryctl audit status -o json | jq .last_prune",
		Args:    cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			c, err := g.connect()
			if err != nil {
				return err
			}
			defer c.Close()
			st, err := c.AuditStatus(cmd.Context())
			if err != nil {
				return err
			}
			if g.json() {
				return writeJSON(g.con.out, st)
			}
			flow := st.FlowRetention
			if flow == "0s" {
				flow = "off (flow records follow the audit retention)"
			}
			last := "never"
			if p := st.LastPrune; p != nil {
				last = fmt.Sprintf("%s: %d flow records in %d runs, through record %d; %d summaries kept",
					p.Time.UTC().Format(time.RFC3339), p.Removed, p.Runs, p.Through, p.Summaries)
			}
			return writeFields(g.con.out, []field{
				{"Node", []string{st.Node}}, {"Journal", []string{fmt.Sprintf("records %d to %d", st.First, st.Head)}},
				{"Retention", []string{st.Retention}}, {"Flow retention", []string{flow}}, {"Last prune", []string{last}},
			})
		},
	}
}

func newAuditKeyCmd(g *globals) *cobra.Command {
	return &cobra.Command{
		Use:     "key",
		Short:   "Print the audit public key (JSON) for offline verification",
		Example: "  ferryctl audit key > audit-key.json\n  ferryctl audit verify export.jsonl --key audit-key.json",
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
	var live, noTrailer, acceptUnsigned bool
	var keyFile string
	cmd := &cobra.Command{
		Use:   "verify FILE | --live",
		Short: "Verify an audit export offline, or the live audit journal",
		Long: `verify FILE checks an export on this machine, without the cluster: it
recomputes the hash chain, checks the header's, the checkpoints' and the
trailer's signatures with the audit public key, and lists every problem it
finds — records edited, missing, reordered, cut off, or stored twice under
one event ID — with ranges and counts, not just the first. Records are
hashed over their RFC 8785 canonical form, so a SIEM's copy that was
re-encoded (jq, Python, other key order or escapes) still verifies.

Exit status: 0 verified; 1 tampering found (or another error); 3 nothing
tampered with, but records after the last checkpoint are not covered by a
signature (anyone could have forged them) — accept that with
--accept-unsigned-tail, as for the newest records of a sink file.

Which key it uses:
  --key KEY.json  the audit public key record, as "ferryctl audit key"
                  prints it. Keep a copy apart from the cluster and its
                  exports: only a key kept apart proves where an export
                  came from.
  no --key        when signed in, the key the server hands out (as
                  "ferryctl audit key"); ferryctl says so on standard
                  error. Whoever controls the server controls that key
                  too, so this catches accidents and edits of the file,
                  not a compromised cluster. Not signed in: an error.

Files written by the file sink have no header or trailer: use --no-trailer
for them. Checkpoints (at least every minute) then vouch for the records;
records after the last checkpoint are reported as not covered by a
signature, and a cut-off end goes unnoticed.

verify --live instead asks the node that answers to recompute its whole
journal: every record's hash, its link to the one before, the checkpoint
signatures, and that nothing was cut from the end.`,
		Example: `  ferryctl audit key > audit-key.json
  ferryctl audit export export.jsonl
  ferryctl audit verify export.jsonl --key audit-key.json
  ferryctl audit verify /var/lib/ferry/audit/audit.jsonl --key audit-key.json --no-trailer --accept-unsigned-tail
  ferryctl audit verify --live
  ferryctl --server https://node2.internal:8443 audit verify --live`,
		Args: cobra.MaximumNArgs(1),
		RunE: func(cmd *cobra.Command, args []string) error {
			switch {
			case live && len(args) > 0:
				return errors.New("give an export FILE or --live, not both")
			case live && (keyFile != "" || noTrailer || acceptUnsigned):
				return errors.New("--key, --no-trailer and --accept-unsigned-tail apply to an export FILE, not --live")
			case live:
				return verifyLive(cmd.Context(), g)
			case len(args) == 0:
				return errors.New("give an export FILE to verify offline (with --key KEY.json), or --live to verify the cluster's journal")
			}
			return verifyFile(cmd.Context(), g, args[0], keyFile, auditfile.VerifyOptions{RequireTrailer: !noTrailer, AcceptUnsignedTail: acceptUnsigned})
		},
	}
	cmd.Flags().BoolVar(&live, "live", false, "verify the journal stored in the cluster")
	cmd.Flags().StringVar(&keyFile, "key", "", "the audit public key record (JSON) to verify FILE with (default: the signed-in server's)")
	cmd.Flags().BoolVar(&noTrailer, "no-trailer", false, "accept a FILE without a signed trailer (file sink output)")
	cmd.Flags().BoolVar(&acceptUnsigned, "accept-unsigned-tail", false, "accept records after the last checkpoint, which no signature covers (exit 0 instead of 3)")
	return cmd
}

func verifyLive(ctx context.Context, g *globals) error {
	c, err := g.connect()
	if err != nil {
		return err
	}
	defer c.Close()
	r, err := c.AuditVerify(ctx)
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
}

// fileVerification is what verify FILE prints with -o json.
type fileVerification struct {
	File string `json:"file"`
	OK   bool   `json:"ok"`
	// Problem names the first record found tampered with; Kind is edited,
	// missing, reordered, truncated, forged or malformed, Seq the record
	// and Line the line of the file. Problems lists every problem.
	Problem  string        `json:"problem,omitempty"`
	Kind     string        `json:"kind,omitempty"`
	Seq      uint64        `json:"seq,omitempty"`
	Line     int           `json:"line,omitempty"`
	Problems []fileProblem `json:"problems,omitempty"`
	// Unsigned counts records after the last signature, from
	// UnsignedFirst; Reencoded records matched in canonical form;
	// DuplicateIDs events stored twice.
	Unsigned      uint64 `json:"unsigned"`
	UnsignedFirst uint64 `json:"unsigned_first,omitempty"`
	Reencoded     uint64 `json:"reencoded"`
	DuplicateIDs  uint64 `json:"duplicate_ids"`
	HeaderSigned  bool   `json:"header_signed"`
	// KeyID is the key verified with; KeyFrom the --key file, or the
	// server it was fetched from.
	KeyID       string `json:"key_id"`
	KeyFrom     string `json:"key_from"`
	Records     uint64 `json:"records"`
	Events      uint64 `json:"events"`
	Checkpoints uint64 `json:"checkpoints"`
	Duplicates  uint64 `json:"duplicates"`
	First       uint64 `json:"first"`
	Last        uint64 `json:"last"`
	Signed      uint64 `json:"signed"`
	Anchored    bool   `json:"anchored"`
	Trailer     bool   `json:"trailer"`
	Filtered    bool   `json:"filtered"`
}

// fileProblem is one problem in -o json.
type fileProblem struct {
	Kind   string `json:"kind"`
	First  uint64 `json:"first,omitempty"`
	Last   uint64 `json:"last,omitempty"`
	Count  uint64 `json:"count"`
	Line   int    `json:"line,omitempty"`
	Detail string `json:"detail"`
}

// exitError carries a process exit status other than 1.
type exitError struct {
	code int
	err  error
}

func (e *exitError) Error() string { return e.err.Error() }
func (e *exitError) Unwrap() error { return e.err }

// exitUnsigned is the exit status of a file that verifies but ends with
// records no signature covers.
const exitUnsigned = 3

// verifyFile verifies an export file with the key of keyFile, or else
// the signed-in server's, the way "ferryd audit verify" does.
func verifyFile(ctx context.Context, g *globals, path, keyFile string, opts auditfile.VerifyOptions) error {
	keys, from, err := g.auditKeys(ctx, keyFile)
	if err != nil {
		return err
	}
	f, err := os.Open(path)
	if err != nil {
		return err
	}
	defer f.Close()
	opts.Keys = keys
	rep, verr := auditfile.VerifyFile(f, opts)
	var te *auditfile.TamperError
	unsigned := errors.Is(verr, auditfile.ErrUnsigned)
	if verr != nil && !errors.As(verr, &te) && !unsigned {
		return fmt.Errorf("verifying %s: %w", path, verr)
	}
	if g.json() {
		out := fileVerification{File: path, OK: verr == nil, KeyFrom: from,
			Records: rep.Records, Events: rep.Events, Checkpoints: rep.Checkpoints, Duplicates: rep.Duplicates,
			First: rep.First, Last: rep.Last, Signed: rep.Signed, Anchored: rep.Anchored, Trailer: rep.Trailer, Filtered: rep.Filtered,
			Unsigned: rep.Unsigned, UnsignedFirst: rep.UnsignedFirst, Reencoded: rep.Reencoded, DuplicateIDs: rep.DuplicateIDs, HeaderSigned: rep.HeaderSigned}
		for _, p := range rep.Problems {
			out.Problems = append(out.Problems, fileProblem{Kind: p.Kind.String(), First: p.First, Last: p.Last, Count: p.Count, Line: p.Line, Detail: p.Detail})
		}
		for id := range keys {
			out.KeyID = id
		}
		if te != nil {
			out.Problem, out.Kind, out.Seq, out.Line = te.Error(), te.Kind.String(), te.Seq, te.Line
		}
		if err := writeJSON(g.con.out, out); err != nil {
			return err
		}
	} else {
		for _, p := range rep.Problems {
			fmt.Fprintf(g.con.out, "%s: %s: %s\n", path, p.Kind, p.Detail)
		}
		if rep.ProblemsOmitted > 0 {
			fmt.Fprintf(g.con.out, "%s: %d more problems not listed\n", path, rep.ProblemsOmitted)
		}
		if verr == nil || unsigned {
			fmt.Fprintf(g.con.out, "%s: %s\n", path, rep.Summary())
		}
	}
	switch {
	case unsigned:
		return &exitError{code: exitUnsigned, err: fmt.Errorf("%s: %w", path, verr)}
	case verr != nil:
		return fmt.Errorf("%s FAILED verification: %w", path, verr)
	}
	return nil
}

// auditKeys returns the audit public key to verify files with: keyFile's,
// else the signed-in server's, announced on standard error. It also
// returns where the key came from.
func (g *globals) auditKeys(ctx context.Context, keyFile string) (auditfile.Keys, string, error) {
	if keyFile != "" {
		keys, err := auditfile.ReadKeysFile(keyFile)
		if err != nil {
			return nil, "", fmt.Errorf("--key: %w", err)
		}
		return keys, keyFile, nil
	}
	server, caFile, sess, err := g.target()
	if err == nil && sess == nil {
		err = errNotSignedIn
	}
	if errors.Is(err, errNotSignedIn) {
		return nil, "", errors.New("--key KEY.json: required when not signed in (the audit public key, from ferryctl audit key)")
	}
	if err != nil {
		return nil, "", err
	}
	c, err := g.newClient(server, caFile, sess.Token)
	if err != nil {
		return nil, "", err
	}
	defer c.Close()
	b, err := c.AuditKey(ctx)
	if err != nil {
		return nil, "", fmt.Errorf("fetching the audit key from %s (or give --key KEY.json): %w", server, explain(err))
	}
	keys, err := auditfile.ParseKeys(b)
	if err != nil {
		return nil, "", fmt.Errorf("the audit key from %s: %w", server, err)
	}
	for id := range keys {
		fmt.Fprintf(g.con.err, "verifying with audit key %s fetched from %s (give --key KEY.json to use a copy kept apart)\n", id, server)
	}
	return keys, server, nil
}
