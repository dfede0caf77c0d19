package main

import (
	"encoding/csv"
	"fmt"
	"io"
	"net/netip"
	"strconv"
	"strings"
	"time"

	"github.com/spf13/cobra"

	"github.com/ferryvpn/ferry/cmd/internal/client"
	"github.com/ferryvpn/ferry/cmd/internal/wire"
)

// reportFormats are the output formats of report commands: -o takes csv
// and html there besides table and json.
var reportFormats = []string{"table", "json", "csv", "html"}

func newReportCmd(g *globals) *cobra.Command {
	cmd := &cobra.Command{
		Use:   "report",
		Short: "Reports for auditors: who accessed what",
		Long: `Reports are computed by the node that answers from its own copy of the audit
journal, and name the journal range and the signed checkpoint they come from:
check them with "ferryctl audit verify --live" on the same node, or verify an
export of the same range.

Besides -o table and -o json, reports print -o csv, and -o html: one
self-contained HTML file for auditors.`,
	}
	cmd.AddCommand(newReportAccessCmd(g), newReportEntitlementsCmd(g, false), newReportEntitlementsCmd(g, true))
	return cmd
}

func newReportAccessCmd(g *globals) *cobra.Command {
	var f client.AccessFilter
	var dst, since, until string
	cmd := &cobra.Command{
		Use:   "access",
		Short: "Who accessed what: flows, bytes and denied attempts by user, profile and destination",
		Example: `  ferryctl report access --dst 10.0.4.17:5432 --since 90d
  ferryctl report access --user alice@example.com --since 2026-10-01T00:00:00Z -o csv
  ferryctl report access --profile eng --since 7d -o html > access.html
  ferryctl report access --dst 10.0.4.17:5432 --since 30d --by day`,
		Args: cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			now := time.Now()
			var err error
			if f.Dst, f.Port, err = parseDstPort(dst, f.Port); err != nil {
				return err
			}
			if f.Since, err = parseWhen("--since", since, now); err != nil {
				return err
			}
			if f.Until, err = parseWhen("--until", until, now); err != nil {
				return err
			}
			c, err := g.connect()
			if err != nil {
				return err
			}
			defer c.Close()
			rep, err := c.ReportAccess(cmd.Context(), f)
			if err != nil {
				return err
			}
			switch g.output {
			case "json":
				return writeJSON(g.con.out, rep)
			case "csv":
				return writeAccessCSV(g.con.out, rep)
			case "html":
				return writeAccessHTML(g.con.out, rep)
			}
			return writeAccessTable(g.con.out, rep)
		},
	}
	fl := cmd.Flags()
	fl.StringVar(&f.User, "user", "", "a user's ID or email")
	fl.StringVar(&f.Profile, "profile", "", "a profile's name")
	fl.StringVar(&dst, "dst", "", "destination: an address or CIDR, optionally with :port (10.0.4.17:5432, 10.0.4.0/24)")
	fl.IntVar(&f.Port, "port", 0, "destination port")
	fl.StringVar(&f.Protocol, "protocol", "", "tcp, udp or icmp")
	fl.StringVar(&since, "since", "", "start: a time (RFC 3339) or an age such as 24h, 7d, 90d (whole hours)")
	fl.StringVar(&until, "until", "", "end: a time (RFC 3339) or an age (default now)")
	fl.StringVar(&f.By, "by", "", "one row per hour or day (UTC): bytes, packets, flows and denials over time")
	return cmd
}

// parseDstPort splits "CIDR[:port]" or "address[:port]".
func parseDstPort(s string, port int) (string, int, error) {
	if s == "" {
		return "", port, nil
	}
	bad := fmt.Errorf("--dst %q: want an address or CIDR, optionally with :port, such as 10.0.4.17:5432 or 10.0.4.0/24", s)
	if ap, err := netip.ParseAddrPort(s); err == nil {
		return ap.Addr().String(), int(ap.Port()), nil
	}
	if _, err := netip.ParsePrefix(s); err == nil {
		return s, port, nil
	}
	if _, err := netip.ParseAddr(s); err == nil {
		return s, port, nil
	}
	i := strings.LastIndexByte(s, ':')
	if i < 0 {
		return "", 0, bad
	}
	p, err := strconv.ParseUint(s[i+1:], 10, 16)
	host := strings.TrimSuffix(strings.TrimPrefix(s[:i], "["), "]")
	if _, perr := netip.ParsePrefix(host); err != nil || perr != nil || p == 0 {
		return "", 0, bad
	}
	return host, int(p), nil
}

// parseWhen reads a time: RFC 3339, or an age before now ("90d", "36h").
func parseWhen(flag, s string, now time.Time) (time.Time, error) {
	if s == "" {
		return time.Time{}, nil
	}
	if t, err := time.Parse(time.RFC3339, s); err == nil {
		return t, nil
	}
	if d, ok := strings.CutSuffix(s, "d"); ok {
		if n, err := strconv.Atoi(d); err == nil && n > 0 {
			return now.Add(-time.Duration(n) * 24 * time.Hour), nil
		}
	}
	if d, err := time.ParseDuration(s); err == nil && d > 0 {
		return now.Add(-d), nil
	}
	return time.Time{}, fmt.Errorf("%s %q: want a time such as 2026-10-01T00:00:00Z or an age such as 24h or 90d", flag, s)
}

// accessColumns are the access report's columns, in every format.
var accessColumns = []string{"PERIOD", "USER", "DEVICES", "PROFILE", "VERSIONS", "DESTINATION", "PROTOCOL", "PORT", "HOST", "FIRST", "LAST", "FLOWS", "BYTES OUT", "BYTES IN", "DENIED"}

// accessCells renders a row's cells; times in RFC 3339 UTC so that every
// format shows the same text.
func accessCells(r wire.AccessRow) []string {
	user := r.User
	if r.Email != "" {
		user = r.Email
	}
	dst := r.Dst
	if dst == "" {
		dst = "(folded)"
	}
	port := ""
	if r.Port != 0 {
		port = strconv.Itoa(int(r.Port))
	}
	vers := make([]string, len(r.Versions))
	for i, v := range r.Versions {
		vers[i] = strconv.FormatUint(v, 10)
	}
	u := func(v uint64) string { return strconv.FormatUint(v, 10) }
	period := ""
	if !r.Period.IsZero() {
		period = r.Period.UTC().Format(time.RFC3339)
	}
	return []string{period, user, strings.Join(r.Devices, ","), r.Profile, strings.Join(vers, ","), dst, r.Protocol, port, r.Host,
		r.First.UTC().Format(time.RFC3339), r.Last.UTC().Format(time.RFC3339), u(r.Flows), u(r.BytesOut), u(r.BytesIn), u(r.Denied)}
}

// sourceLine says where a report comes from.
func sourceLine(s wire.ReportSource) string {
	line := fmt.Sprintf("computed on node %s from journal records %d-%d", s.Node, s.FromSeq, s.ToSeq)
	if c := s.Checkpoint; c != nil {
		line += fmt.Sprintf("; last signed checkpoint at record %d (%s, key %s, hash %s)", c.Seq, c.Time.UTC().Format(time.RFC3339), c.KeyID, c.Hash)
	} else {
		line += "; no signed checkpoint yet"
	}
	if s.Unsigned > 0 {
		line += fmt.Sprintf("; %d records after it not yet signed", s.Unsigned)
	}
	return line
}

func writeAccessTable(w io.Writer, rep wire.AccessReport) error {
	rows := make([][]string, 0, len(rep.Rows))
	cols := accessColumns
	for _, r := range rep.Rows {
		rows = append(rows, accessCells(r))
	}
	if rep.Query["by"] == "" { // no periods: leave the column out
		cols = cols[1:]
		for i := range rows {
			rows[i] = rows[i][1:]
		}
	}
	if err := writeTable(w, cols, rows); err != nil {
		return err
	}
	_, err := fmt.Fprintln(w, "\n"+sourceLine(rep.Source))
	return err
}

func writeAccessCSV(w io.Writer, rep wire.AccessReport) error {
	cw := csv.NewWriter(w)
	header := make([]string, len(accessColumns))
	for i, c := range accessColumns {
		header[i] = strings.ToLower(strings.ReplaceAll(c, " ", "_"))
	}
	cw.Write(header)
	for _, r := range rep.Rows {
		cw.Write(accessCells(r))
	}
	cw.Flush()
	return cw.Error()
}

// writeReplay prints what a proposed profile file would have decided
// differently over recorded traffic.
func writeReplay(w io.Writer, since string, rep wire.ReplayResponse) error {
	fmt.Fprintf(w, "\nReplay of the recorded traffic of the last %s against the proposed profiles:\n", since)
	if len(rep.Profiles) == 0 {
		fmt.Fprintln(w, "no profile with recorded traffic changes.")
	}
	for _, p := range rep.Profiles {
		if len(p.WouldDeny) == 0 && len(p.WouldAllow) == 0 {
			fmt.Fprintf(w, "\nprofile %s: no recorded flow changes its verdict.\n", p.Profile)
			continue
		}
		for _, part := range []struct {
			title string
			rows  []wire.ReplayRow
			count func(wire.ReplayRow) uint64
			unit  string
		}{
			{"would be denied (recorded as allowed)", p.WouldDeny, func(r wire.ReplayRow) uint64 { return r.Flows }, "FLOWS"},
			{"would be allowed (recorded as denied)", p.WouldAllow, func(r wire.ReplayRow) uint64 { return r.Denied }, "ATTEMPTS"},
		} {
			if len(part.rows) == 0 {
				continue
			}
			fmt.Fprintf(w, "\nprofile %s: %d user/destination pairs %s:\n", p.Profile, len(part.rows), part.title)
			rows := make([][]string, 0, len(part.rows))
			for _, r := range part.rows {
				user := r.User
				if r.Email != "" {
					user = r.Email
				}
				port := ""
				if r.Port != 0 {
					port = strconv.Itoa(int(r.Port))
				}
				rows = append(rows, []string{user, r.Dst, r.Protocol, port, strconv.FormatUint(part.count(r), 10), r.Last.UTC().Format(time.RFC3339)})
			}
			if err := writeTable(w, []string{"USER", "DESTINATION", "PROTOCOL", "PORT", part.unit, "LAST"}, rows); err != nil {
				return err
			}
		}
		if p.Folded > 0 {
			fmt.Fprintf(w, "(%d flows folded under load could not be replayed)\n", p.Folded)
		}
	}
	_, err := fmt.Fprintln(w, "\n"+sourceLine(rep.Source))
	return err
}

// writeRows prints a report's rows in the chosen format.
func writeRows(g *globals, title string, columns []string, rows [][]string, source string) error {
	switch g.output {
	case "csv":
		cw := csv.NewWriter(g.con.out)
		header := make([]string, len(columns))
		for i, c := range columns {
			header[i] = strings.ToLower(strings.ReplaceAll(c, " ", "_"))
		}
		cw.Write(header)
		for _, r := range rows {
			cw.Write(r)
		}
		cw.Flush()
		return cw.Error()
	case "html":
		return writeHTML(g.con.out, strings.ToLower(title), title, nil, source, columns, rows)
	}
	if err := writeTable(g.con.out, columns, rows); err != nil {
		return err
	}
	_, err := fmt.Fprintln(g.con.out, "\n"+source)
	return err
}

// viaUnknown is the VIA of a user whose groups the journal does not say
// at the --at time.
const viaUnknown = "(unknown: the journal does not say this user's groups then)"

var entitlementColumns = []string{"USER", "VIA", "PROFILE", "VERSION", "RULE", "FLOWS", "LAST USED"}

func entitlementCells(e wire.EntitlementRow) []string {
	user := e.User
	if e.Email != "" {
		user = e.Email
	}
	last := ""
	if !e.Last.IsZero() {
		last = e.Last.UTC().Format(time.RFC3339)
	}
	return []string{user, e.Via, e.Profile, strconv.FormatUint(e.Version, 10), strconv.Itoa(e.Rule) + ": " + e.RuleText,
		strconv.FormatUint(e.Flows, 10), last}
}

func newReportEntitlementsCmd(g *globals, unused bool) *cobra.Command {
	var since, until, at string
	use, short := "entitlements", "Who can reach what now or --at a past time (user, how, profile, rule), with each rule's use since --since"
	if unused {
		use, short = "unused", "Entitlements not exercised since --since: least-privilege suggestions per user and per profile"
	}
	cmd := &cobra.Command{
		Use:   use,
		Short: short,
		Example: `  ferryctl report entitlements --since 90d -o csv
  ferryctl report entitlements --at 2026-10-01T00:00:00Z
  ferryctl report unused --since 90d`,
		Args: cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			now := time.Now()
			s, err := parseWhen("--since", since, now)
			if err != nil {
				return err
			}
			if unused && s.IsZero() {
				return fmt.Errorf("--since: required: the window in which access counts as used, such as 90d")
			}
			u, err := parseWhen("--until", until, now)
			if err != nil {
				return err
			}
			a, err := parseWhen("--at", at, now)
			if err != nil {
				return err
			}
			c, err := g.connect()
			if err != nil {
				return err
			}
			defer c.Close()
			rep, err := c.ReportEntitlementsAt(cmd.Context(), a, s, u, unused)
			if err != nil {
				return err
			}
			if len(rep.UnknownProfiles) > 0 {
				fmt.Fprintf(g.con.err, "warning: the journal does not say the rules of %s at %s (changed before profile events carried them)\n",
					strings.Join(rep.UnknownProfiles, ", "), a.UTC().Format(time.RFC3339))
			}
			if len(rep.UnknownUsers) > 0 {
				fmt.Fprintf(g.con.err, "warning: entitlements unknown for %s at %s: the journal shows them to exist but does not say their groups by then\n",
					strings.Join(rep.UnknownUsers, ", "), a.UTC().Format(time.RFC3339))
			}
			if g.json() {
				return writeJSON(g.con.out, rep)
			}
			rows := make([][]string, 0, len(rep.Rows))
			for _, e := range rep.Rows {
				rows = append(rows, entitlementCells(e))
			}
			title := "Entitlements"
			if unused {
				title = "Unused entitlements"
				for _, e := range rep.UnusedRules {
					rows = append(rows, entitlementCells(wire.EntitlementRow{User: "(every holder)", Profile: e.Profile, Version: e.Version, Rule: e.Rule, RuleText: e.RuleText}))
				}
			}
			// Users whose entitlements the journal does not say get a row
			// that says so, in the table, CSV and HTML alike.
			for _, id := range rep.UnknownUsers {
				rows = append(rows, []string{id, viaUnknown, "", "", "", "", ""})
			}
			return writeRows(g, title, entitlementColumns, rows, sourceLine(rep.Source))
		},
	}
	cmd.Flags().StringVar(&since, "since", "", "usage window start: a time (RFC 3339) or an age such as 90d")
	cmd.Flags().StringVar(&until, "until", "", "usage window end (default now)")
	cmd.Flags().StringVar(&at, "at", "", "as of this past time (RFC 3339, or an age such as 30d): users and profiles from the journal's history")
	return cmd
}
