package main

import (
	"errors"
	"fmt"
	"os"
	"strconv"
	"strings"

	"github.com/spf13/cobra"

	"github.com/ferryvpn/ferry/cmd/internal/wire"
)

func newAuditSinkCmd(g *globals) *cobra.Command {
	cmd := &cobra.Command{
		Use:   "sink",
		Short: "Manage the network audit sinks (cluster configuration)",
		Long: `Network audit sinks (syslog over TLS, RELP, Splunk HEC) are cluster
configuration: stored in the replicated state, their secrets (HEC token,
client key) sealed under the master key, so whichever node leads exports to
the same sinks from the same cursors. File sinks stay in each node's
configuration file: they run on every node.

  add NAME   add a sink (--type syslog|relp|hec and its settings)
  list       every network sink, its cursor and any configuration error
  show NAME  one sink (secrets are never shown)
  test NAME  send a marked test record and show the receiver's answer
  remove NAME  remove a sink and its cursor`,
	}
	cmd.AddCommand(newAuditSinkAddCmd(g), newAuditSinkListCmd(g), newAuditSinkShowCmd(g), newAuditSinkTestCmd(g), newAuditSinkRemoveCmd(g))
	return cmd
}

// readPEM reads a file argument, or nothing for an empty path.
func readPEM(flag, path string) (string, error) {
	if path == "" {
		return "", nil
	}
	b, err := os.ReadFile(path)
	if err != nil {
		return "", fmt.Errorf("%s: %w", flag, err)
	}
	return string(b), nil
}

func newAuditSinkAddCmd(g *globals) *cobra.Command {
	var s wire.AuditSink
	var caFile, certFile, keyFile, tokenFile string
	cmd := &cobra.Command{
		Use:   "add NAME --type syslog|relp|hec",
		Short: "Add a network audit sink",
		Example: `  ferryctl audit sink add siem --type relp --addr siem.example.com:2514 \
      --ca-file siem-ca.pem --cert-file client.pem --key-file client.key
  ferryctl audit sink add splunk --type hec --url https://splunk:8088 --token-file hec-token --ack
  ferryctl audit sink add legacy --type syslog --addr siem:6514 --ca-file siem-ca.pem --resend-records 20000 --resend-age 5m`,
		Args: cobra.ExactArgs(1),
		RunE: func(cmd *cobra.Command, args []string) error {
			s.Name = args[0]
			var err error
			if s.CA, err = readPEM("--ca-file", caFile); err != nil {
				return err
			}
			if s.ClientCert, err = readPEM("--cert-file", certFile); err != nil {
				return err
			}
			if s.ClientKey, err = readPEM("--key-file", keyFile); err != nil {
				return err
			}
			if tokenFile != "" {
				tok, err := readPEM("--token-file", tokenFile)
				if err != nil {
					return err
				}
				s.Token = strings.TrimSpace(tok)
			}
			c, err := g.connect()
			if err != nil {
				return err
			}
			defer c.Close()
			out, err := c.AddAuditSink(cmd.Context(), s)
			if err != nil {
				return explain(err)
			}
			if g.json() {
				return writeJSON(g.con.out, out)
			}
			fmt.Fprintf(g.con.out, "audit sink %s added; every leader exports to it from now on (try: ferryctl audit sink test %s)\n", out.Name, out.Name)
			return nil
		},
	}
	fl := cmd.Flags()
	fl.StringVar(&s.Type, "type", "", "syslog (RFC 5425), relp (acknowledged) or hec (Splunk)")
	fl.StringVar(&s.Format, "format", "", "json (default), cef or ocsf")
	fl.StringVar(&s.Addr, "addr", "", "syslog, relp: the receiver's host:port")
	fl.StringVar(&s.URL, "url", "", "hec: the collector's URL")
	fl.StringVar(&tokenFile, "token-file", "", "hec: a file holding the token (stored sealed)")
	fl.BoolVar(&s.Ack, "ack", false, "hec: a batch counts only once the indexer acknowledges it")
	fl.StringVar(&s.Index, "index", "", "hec: the index")
	fl.StringVar(&caFile, "ca-file", "", "CA certificate (PEM) to verify the receiver; TLS for syslog and relp")
	fl.StringVar(&s.ServerName, "server-name", "", "the name to check on the receiver's certificate")
	fl.StringVar(&certFile, "cert-file", "", "client certificate (PEM)")
	fl.StringVar(&keyFile, "key-file", "", "client key (PEM; stored sealed)")
	fl.Uint64Var(&s.ResendRecords, "resend-records", 0, "syslog: records re-sent after a broken connection (default 10000)")
	fl.StringVar(&s.ResendAge, "resend-age", "", "syslog: age of records re-sent after a broken connection (default 2m)")
	return cmd
}

func newAuditSinkListCmd(g *globals) *cobra.Command {
	return &cobra.Command{
		Use:   "list",
		Short: "List the network audit sinks",
		Args:  cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			c, err := g.connect()
			if err != nil {
				return err
			}
			defer c.Close()
			l, err := c.AuditSinks(cmd.Context())
			if err != nil {
				return explain(err)
			}
			if g.json() {
				return writeJSON(g.con.out, l)
			}
			if l.NoNetworkSink {
				fmt.Fprintln(g.con.err, "no network audit sink: the audit journal leaves the cluster nowhere (add one with ferryctl audit sink add)")
			}
			rows := make([][]string, 0, len(l.Sinks))
			for _, s := range l.Sinks {
				dest := s.Addr
				if s.URL != "" {
					dest = s.URL
				}
				rows = append(rows, []string{s.Name, s.Type, dest, strconv.FormatUint(s.Cursor, 10), s.ConfigError})
			}
			return writeTable(g.con.out, []string{"NAME", "TYPE", "DESTINATION", "CURSOR", "CONFIG ERROR"}, rows)
		},
	}
}

func newAuditSinkShowCmd(g *globals) *cobra.Command {
	return &cobra.Command{
		Use:   "show NAME",
		Short: "Show a network audit sink (secrets are never shown)",
		Args:  cobra.ExactArgs(1),
		RunE: func(cmd *cobra.Command, args []string) error {
			c, err := g.connect()
			if err != nil {
				return err
			}
			defer c.Close()
			s, err := c.AuditSink(cmd.Context(), args[0])
			if err != nil {
				return explain(err)
			}
			if g.json() {
				return writeJSON(g.con.out, s)
			}
			tlsOn := "off"
			if s.CA != "" {
				tlsOn = "on (CA given)"
			}
			return writeFields(g.con.out, []field{
				{"Name", []string{s.Name}}, {"Type", []string{s.Type}}, {"Format", []string{s.Format}},
				{"Address", []string{s.Addr}}, {"URL", []string{s.URL}}, {"TLS", []string{tlsOn}},
				{"Client certificate", []string{yesNo(s.ClientCert != "")}}, {"Token", []string{s.Token}},
				{"Ack", []string{yesNo(s.Ack)}}, {"Cursor", []string{strconv.FormatUint(s.Cursor, 10)}},
				{"Configuration error", []string{s.ConfigError}},
			})
		},
	}
}

func newAuditSinkTestCmd(g *globals) *cobra.Command {
	return &cobra.Command{
		Use:   "test NAME",
		Short: "Send a marked test record through a sink and show the receiver's answer",
		Long: `Sends one record of type audit.sink_test (sequence number 0: no part of
the journal; verify counts such lines apart) from the node that answers,
and prints what the receiver answered. Exits 1 when delivery failed.`,
		Args: cobra.ExactArgs(1),
		RunE: func(cmd *cobra.Command, args []string) error {
			c, err := g.connect()
			if err != nil {
				return err
			}
			defer c.Close()
			res, err := c.TestAuditSink(cmd.Context(), args[0])
			if err != nil {
				return explain(err)
			}
			if g.json() {
				if err := writeJSON(g.con.out, res); err != nil {
					return err
				}
			} else {
				fmt.Fprintf(g.con.out, "test record %s: %s\n", res.ID, res.Answer)
			}
			if !res.OK {
				return errors.New("audit sink " + args[0] + ": the test record was not delivered")
			}
			return nil
		},
	}
}

func newAuditSinkRemoveCmd(g *globals) *cobra.Command {
	return &cobra.Command{
		Use:   "remove NAME",
		Short: "Remove a network audit sink and its cursor",
		Args:  cobra.ExactArgs(1),
		RunE: func(cmd *cobra.Command, args []string) error {
			c, err := g.connect()
			if err != nil {
				return err
			}
			defer c.Close()
			if err := c.RemoveAuditSink(cmd.Context(), args[0]); err != nil {
				return explain(err)
			}
			fmt.Fprintf(g.con.out, "audit sink %s removed\n", args[0])
			return nil
		},
	}
}
