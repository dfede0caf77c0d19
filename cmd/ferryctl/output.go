package main

import (
	"fmt"
	"github.com/ferryvpn/ferry/cmd/internal/cli"
	"io"
	"strings"
	"text/tabwriter"
	"time"
)

// The shared client vocabulary (cmd/internal/cli).
var (
	writeJSON  = cli.WriteJSON
	writeTable = cli.WriteTable
	cell       = cli.Cell
	fmtTime    = cli.Time
)

// field is one line of a detail view.
type field struct {
	name   string
	values []string
}

// writeFields prints a detail view: "Name:  value", with each further
// value of a list on its own line.
func writeFields(w io.Writer, fields []field) error {
	tw := tabwriter.NewWriter(w, 0, 4, 2, ' ', 0)
	for _, f := range fields {
		vals := f.values
		if len(vals) == 0 {
			vals = []string{""}
		}
		for i, v := range vals {
			name := f.name + ":"
			if i > 0 {
				name = ""
			}
			fmt.Fprintf(tw, "%s\t%s\n", name, cell(v))
		}
	}
	return tw.Flush()
}

func list(s []string) string { return strings.Join(s, ",") }

func yesNo(b bool) string {
	if b {
		return "yes"
	}
	return "no"
}

// fmtExpiry shows an expiry with the time left.
func fmtExpiry(t, now time.Time) string { return cli.Expiry(t, now, "") }

// fmtMaxSession shows a Go duration the way people write it: "12h0m0s"
// as "12h", "1h30m0s" as "1h30m".
func fmtMaxSession(s string) string {
	d, err := time.ParseDuration(s)
	if err != nil || d <= 0 {
		return s
	}
	out := d.String()
	if strings.HasSuffix(out, "m0s") {
		out = strings.TrimSuffix(out, "0s")
	}
	if strings.HasSuffix(out, "h0m") {
		out = strings.TrimSuffix(out, "0m")
	}
	return out
}
