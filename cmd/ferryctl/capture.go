package main

import (
	"bufio"
	"errors"
	"fmt"
	"io"
	"net/http"
	"os"
	"strconv"
	"strings"
	"time"

	"github.com/spf13/cobra"

	"github.com/ferryvpn/ferry/cmd/internal/client"
	"github.com/ferryvpn/ferry/cmd/internal/wire"
)

func newCaptureCmd(g *globals) *cobra.Command {
	var (
		in       wire.CaptureRequest
		duration time.Duration
		maxBytes string
		file     string
		list     bool
	)
	cmd := &cobra.Command{
		Use:   "capture --user EMAIL|--peer ID|--profile NAME --reason TEXT -w FILE.pcapng",
		Short: "Capture a user's decrypted tunnel traffic on every node, into one pcapng file",
		Long: `capture records the decrypted tunnel traffic of one user (every active
device), one peer or one profile's clients on every node of the cluster at
once, so a flow that moves between nodes is kept whole, and writes one
pcapng file with one interface per node ("NODE/INTERFACE"), packets in time
order. Only the selected clients' packets are kept, filtered in the kernel
where the data plane is the kernel's.

It needs the admin role, a fresh code of your authenticator (--totp, or
asked for on a terminal) and a reason; the start, the stop, who, whom, the
reason, the filter, the nodes, the packet and byte counts and the SHA-256 of
the file are audit events. The cluster's configuration caps the duration,
the bytes and the snap length (headers only unless it allows payloads) and
how many captures run at once: see and change them with
"ferryctl capture limits".

The filter is a subset of tcpdump's: [src|dst] host ADDR, [src|dst] net
CIDR, [src|dst] port N, proto N|tcp|udp|icmp|icmp6|sctp, tcp, udp, icmp,
icmp6, sctp, ip, ip6, combined with and/&&, or/||, not/! and parentheses.
No host or service names.

-w - writes the file to standard output while the capture runs, for
wireshark -k -i - or tcpdump -r -; the summary then goes to standard error.`,
		Example: `  ferryctl capture --user alice@example.com --reason "INC-42 db timeouts" \
      --filter "tcp and port 5432" --duration 2m -w alice.pcapng
  ferryctl capture --peer p-7f3a --reason "handshake trouble" -w - | wireshark -k -i -
  ferryctl capture --list
  ferryctl capture limits set --max-duration 5m --allow-payload=false`,
		Args: cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			c, err := g.connect()
			if err != nil {
				return err
			}
			defer c.Close()
			if list {
				caps, err := c.Captures(cmd.Context())
				if err != nil {
					return err
				}
				if g.json() {
					return writeJSON(g.con.out, caps)
				}
				if len(caps) == 0 {
					fmt.Fprintln(g.con.out, "No capture runs in the cluster.")
				}
				for _, r := range caps {
					fmt.Fprintf(g.con.out, "%s  %s  on %s  by %s  clients %s  filter %q  reason %q\n", r.ID, r.Started.Format(time.RFC3339),
						r.Node, r.Actor, strings.Join(r.Clients, ","), r.Filter, r.Reason)
				}
				return nil
			}
			if file == "" {
				return errors.New("give -w FILE.pcapng (or -w - for standard output)")
			}
			if strings.TrimSpace(in.Reason) == "" {
				return errors.New("give --reason: every capture is on the record with why it was taken")
			}
			n := 0
			for _, v := range []string{in.User, in.Peer, in.Profile} {
				if v != "" {
					n++
				}
			}
			if n != 1 {
				return errors.New("name exactly one of --user, --peer or --profile")
			}
			if duration%time.Second != 0 || duration < 0 {
				return fmt.Errorf("--duration %s: want whole seconds", duration)
			}
			in.DurationSeconds = int64(duration / time.Second)
			if maxBytes != "" {
				if in.MaxBytes, err = parseSize(maxBytes); err != nil {
					return fmt.Errorf("--max-bytes: %w", err)
				}
			}
			if in.TOTP == "" {
				if in.TOTP, err = askTOTP(g); err != nil {
					return err
				}
			}
			var w io.Writer
			summary := g.con.out
			var f *os.File
			if file == "-" {
				w, summary = g.con.out, g.con.err
			} else {
				if f, err = os.OpenFile(file, os.O_CREATE|os.O_WRONLY|os.O_EXCL, 0o600); err != nil {
					return err
				}
				w = f
			}
			res, err := c.Capture(cmd.Context(), in, w)
			if f != nil {
				if cerr := f.Close(); err == nil {
					err = cerr
				}
				var ae *client.Error
				if errors.As(err, &ae) {
					os.Remove(file) // refused: nothing was captured
				}
			}
			if err != nil {
				var ae *client.Error
				if errors.As(err, &ae) && ae.Status == http.StatusForbidden && ae.Message != "" {
					return errors.New(ae.Message) // step-up and role refusals say which
				}
				return err
			}
			if g.json() {
				return writeJSON(summary, res)
			}
			fmt.Fprintf(summary, "Captured %d packets (%d bytes kept, %d dropped); stopped by %s.\nNodes: %s\nSHA-256: %s\n",
				res.Packets, res.Bytes, res.Dropped, res.Stopped, res.Nodes, res.SHA256)
			if res.Error != "" {
				return fmt.Errorf("the capture ended with an error: %s", res.Error)
			}
			return nil
		},
	}
	f := cmd.Flags()
	f.StringVar(&in.User, "user", "", "capture this user's devices (ID or email)")
	f.StringVar(&in.Peer, "peer", "", "capture this peer (device) by ID")
	f.StringVar(&in.Profile, "profile", "", "capture every client of this profile")
	f.StringVar(&in.Filter, "filter", "", "filter expression (a tcpdump subset, see above)")
	f.DurationVar(&duration, "duration", 60*time.Second, "how long to capture")
	f.StringVar(&maxBytes, "max-bytes", "50MB", "stop after this much packet data (e.g. 500KB, 50MB, 1GB)")
	f.IntVar(&in.Snaplen, "snaplen", 0, "bytes kept of each packet (default: headers only, the cluster's setting)")
	f.StringVar(&in.Reason, "reason", "", "why (recorded in the audit log); required")
	f.StringVar(&in.TOTP, "totp", "", "a current code of your authenticator (asked for on a terminal when not given)")
	f.StringVarP(&file, "write", "w", "", "write the pcapng file here (a new file), or - for standard output")
	f.BoolVar(&list, "list", false, "list the captures running in the cluster instead")
	cmd.AddCommand(newCaptureLimitsCmd(g))
	return cmd
}

// askTOTP reads the step-up code from a person at the terminal.
func askTOTP(g *globals) (string, error) {
	if !g.con.interactive {
		return "", errors.New("give --totp CODE: a capture needs a current code of your authenticator")
	}
	fmt.Fprint(g.con.err, "Authenticator code: ")
	line, err := bufio.NewReader(g.con.in).ReadString('\n')
	if err != nil && line == "" {
		return "", fmt.Errorf("reading the code: %w", err)
	}
	return strings.TrimSpace(line), nil
}

// parseSize reads 1500, 500KB, 50MB, 1GB (decimal) or KiB/MiB/GiB.
func parseSize(s string) (int64, error) {
	s = strings.TrimSpace(s)
	mult := int64(1)
	for _, u := range []struct {
		suffix string
		m      int64
	}{{"KiB", 1 << 10}, {"MiB", 1 << 20}, {"GiB", 1 << 30}, {"KB", 1e3}, {"MB", 1e6}, {"GB", 1e9}, {"B", 1}} {
		if strings.HasSuffix(strings.ToUpper(s), strings.ToUpper(u.suffix)) {
			s, mult = s[:len(s)-len(u.suffix)], u.m
			break
		}
	}
	n, err := strconv.ParseInt(strings.TrimSpace(s), 10, 64)
	if err != nil || n <= 0 {
		return 0, fmt.Errorf("%q is not a size", s)
	}
	return n * mult, nil
}
