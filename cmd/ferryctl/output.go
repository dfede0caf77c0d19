package main

import (
	"encoding/json"
	"fmt"
	"io"
	"strings"
	"text/tabwriter"
	"time"
)

// writeJSON prints v as indented JSON: the wire types' field names, which
// scripts may rely on.
func writeJSON(w io.Writer, v any) error {
	enc := json.NewEncoder(w)
	enc.SetIndent("", "  ")
	return enc.Encode(v)
}

// writeTable prints rows under a header, in aligned columns. Empty cells
// show as "-".
func writeTable(w io.Writer, header []string, rows [][]string) error {
	tw := tabwriter.NewWriter(w, 0, 4, 2, ' ', 0)
	fmt.Fprintln(tw, strings.Join(header, "\t"))
	for _, r := range rows {
		cells := make([]string, len(r))
		for i, c := range r {
			cells[i] = cell(c)
		}
		fmt.Fprintln(tw, strings.Join(cells, "\t"))
	}
	return tw.Flush()
}

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

// cell makes a value fit one table cell.
func cell(s string) string {
	s = strings.Join(strings.Fields(s), " ")
	if s == "" {
		return "-"
	}
	return s
}

func list(s []string) string { return strings.Join(s, ",") }

func yesNo(b bool) string {
	if b {
		return "yes"
	}
	return "no"
}

// fmtTime shows a time to a person, in local time to the minute.
func fmtTime(t time.Time) string {
	if t.IsZero() {
		return "-"
	}
	return t.Local().Format("2006-01-02 15:04 MST")
}

// fmtExpiry shows an expiry with the time left.
func fmtExpiry(t, now time.Time) string {
	if t.IsZero() {
		return "-"
	}
	left := t.Sub(now)
	if left <= 0 {
		return fmtTime(t) + " (expired)"
	}
	return fmt.Sprintf("%s (in %s)", fmtTime(t), fmtDuration(left))
}

// fmtDuration rounds a duration for a person: "12h", "11h58m", "4m", "42s".
func fmtDuration(d time.Duration) string {
	if d < time.Minute {
		return d.Round(time.Second).String()
	}
	s := strings.TrimSuffix(d.Round(time.Minute).String(), "0s")
	if strings.HasSuffix(s, "h0m") {
		s = strings.TrimSuffix(s, "0m")
	}
	return s
}

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
