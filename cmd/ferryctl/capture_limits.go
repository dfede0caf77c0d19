package main

import (
	"errors"
	"fmt"
	"net/http"
	"time"

	"github.com/spf13/cobra"

	"github.com/ferryvpn/ferry/cmd/internal/client"
	"github.com/ferryvpn/ferry/cmd/internal/wire"
)

// newCaptureLimitsCmd is `ferryctl capture limits [show|set]`.
func newCaptureLimitsCmd(g *globals) *cobra.Command {
	show := func(cmd *cobra.Command, _ []string) error {
		c, err := g.connect()
		if err != nil {
			return err
		}
		defer c.Close()
		l, err := c.CaptureLimits(cmd.Context())
		if err != nil {
			return err
		}
		return printCaptureLimits(g, l)
	}
	cmd := &cobra.Command{
		Use:   "limits [show|set]",
		Short: "Show or change the cluster's caps on captures",
		Long: `limits shows the cluster's caps on packet captures: the longest capture,
the most packet data, how many captures run at once in the whole cluster,
and whether captures may keep payloads (otherwise each packet is cut to
the headers-only snap length). They are cluster configuration, the same on
every node; a node's ferryd.yaml capture section only seeds them once,
when the cluster has none.

limits set changes the caps given and leaves the others. It needs the
admin role and a fresh code of your authenticator (--totp, or asked for on
a terminal), as a capture does: raising a cap widens access. Every change
and every refusal is an audit event (capture.limits) with the caps before
and after.`,
		Example: `  ferryctl capture limits
  ferryctl capture limits set --max-duration 5m --max-bytes 20MB --max-concurrent 1
  ferryctl capture limits set --allow-payload=true --totp 123456`,
		Args: cobra.NoArgs,
		RunE: show,
	}
	cmd.AddCommand(&cobra.Command{Use: "show", Short: "Show the cluster's caps on captures", Args: cobra.NoArgs, RunE: show})

	var (
		in       wire.CaptureLimitsChange
		duration time.Duration
		maxBytes string
		conc     int
		payload  bool
	)
	set := &cobra.Command{
		Use:   "set [--max-duration D] [--max-bytes N] [--max-concurrent N] [--allow-payload=BOOL]",
		Short: "Change the cluster's caps on captures (admin, with a fresh TOTP code)",
		Args:  cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			f := cmd.Flags()
			if f.Changed("max-duration") {
				if duration%time.Second != 0 || duration <= 0 {
					return fmt.Errorf("--max-duration %s: want whole seconds, at least 1s", duration)
				}
				s := int64(duration / time.Second)
				in.MaxDurationSeconds = &s
			}
			if f.Changed("max-bytes") {
				n, err := parseSize(maxBytes)
				if err != nil {
					return fmt.Errorf("--max-bytes: %w", err)
				}
				in.MaxBytes = &n
			}
			if f.Changed("max-concurrent") {
				in.MaxConcurrent = &conc
			}
			if f.Changed("allow-payload") {
				in.AllowPayload = &payload
			}
			if in.MaxDurationSeconds == nil && in.MaxBytes == nil && in.MaxConcurrent == nil && in.AllowPayload == nil {
				return errors.New("give at least one of --max-duration, --max-bytes, --max-concurrent, --allow-payload")
			}
			c, err := g.connect()
			if err != nil {
				return err
			}
			defer c.Close()
			if in.TOTP == "" {
				if in.TOTP, err = askTOTP(g); err != nil {
					return err
				}
			}
			l, err := c.SetCaptureLimits(cmd.Context(), in)
			if err != nil {
				var ae *client.Error
				if errors.As(err, &ae) && ae.Status == http.StatusForbidden && ae.Message != "" {
					return errors.New(ae.Message) // step-up and role refusals say which
				}
				return err
			}
			return printCaptureLimits(g, l)
		},
	}
	f := set.Flags()
	f.DurationVar(&duration, "max-duration", 0, "the longest capture (whole seconds, 1s to 24h)")
	f.StringVar(&maxBytes, "max-bytes", "", "the most packet data of one capture (e.g. 20MB, 1GiB)")
	f.IntVar(&conc, "max-concurrent", 0, "how many captures run at once in the whole cluster (1 to 64)")
	f.BoolVar(&payload, "allow-payload", false, "let captures keep payloads (snap lengths up to 65535)")
	f.StringVar(&in.TOTP, "totp", "", "a current code of your authenticator (asked for on a terminal when not given)")
	cmd.AddCommand(set)
	return cmd
}

func printCaptureLimits(g *globals, l wire.CaptureLimits) error {
	if g.json() {
		return writeJSON(g.con.out, l)
	}
	payload := fmt.Sprintf("no (headers only: %d bytes of each packet)", l.HeaderSnaplen)
	if l.AllowPayload {
		payload = "yes (snap lengths up to 65535)"
	}
	fmt.Fprintf(g.con.out, "Max duration:    %s\nMax bytes:       %d\nMax concurrent:  %d (in the whole cluster)\nPayloads:        %s\n",
		time.Duration(l.MaxDurationSeconds)*time.Second, l.MaxBytes, l.MaxConcurrent, payload)
	return nil
}
