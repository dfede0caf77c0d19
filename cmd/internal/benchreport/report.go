package main

import (
	"fmt"
	"io"
	"slices"
	"strconv"
	"strings"
	"text/tabwriter"
)

// Figure selects one number for the summary at the top of the report.
type Figure struct {
	// Label is what the summary calls the figure.
	Label string
	// Pkg is a suffix of the package's import path, such as "/cluster".
	Pkg string
	// Bench is the benchmark's full name without the GOMAXPROCS suffix.
	Bench string
	// Unit is the unit of the value, such as "ns/op" or "commits/s".
	Unit string
	// Goal is the target the issue sets, as text ("< 25"); empty for
	// figures reported for context.
	Goal string
}

// Row is the summary of one metric of one benchmark over its runs.
type Row struct {
	Pkg, Bench, Unit string
	Median, Min, Max float64
	Runs             int
}

// Summarize groups results by package, benchmark and unit and takes the
// median of the runs, keeping the order in which benchmarks first appear.
func Summarize(results []Result) []Row {
	type key struct{ pkg, bench, unit string }
	var order []key
	runs := make(map[key][]float64)
	for _, r := range results {
		for _, u := range r.Units {
			k := key{r.Pkg, r.Name, u}
			if _, seen := runs[k]; !seen {
				order = append(order, k)
			}
			runs[k] = append(runs[k], r.Values[u])
		}
	}
	rows := make([]Row, 0, len(order))
	for _, k := range order {
		v := slices.Clone(runs[k])
		slices.Sort(v)
		rows = append(rows, Row{Pkg: k.pkg, Bench: k.bench, Unit: k.unit,
			Median: median(v), Min: v[0], Max: v[len(v)-1], Runs: len(v)})
	}
	return rows
}

// median returns the median of sorted values.
func median(v []float64) float64 {
	n := len(v)
	if n%2 == 1 {
		return v[n/2]
	}
	return (v[n/2-1] + v[n/2]) / 2
}

// find returns the row a figure selects.
func find(rows []Row, f Figure) (Row, bool) {
	for _, r := range rows {
		if strings.HasSuffix(r.Pkg, f.Pkg) && r.Bench == f.Bench && r.Unit == f.Unit {
			return r, true
		}
	}
	return Row{}, false
}

// Print writes the summary of figs, then every row, as aligned tables.
func Print(w io.Writer, rows []Row, figs []Figure) error {
	if len(figs) > 0 {
		tw := tabwriter.NewWriter(w, 0, 4, 2, ' ', 0)
		fmt.Fprintln(tw, "FIGURE\tMEDIAN\tUNIT\tGOAL\tRANGE\tRUNS")
		for _, f := range figs {
			r, ok := find(rows, f)
			if !ok {
				fmt.Fprintf(tw, "%s\t(not run)\t%s\t%s\t\t\n", f.Label, f.Unit, f.Goal)
				continue
			}
			fmt.Fprintf(tw, "%s\t%s\t%s\t%s\t%s\t%d\n", f.Label, num(r.Median), r.Unit, f.Goal, spread(r), r.Runs)
		}
		if err := tw.Flush(); err != nil {
			return err
		}
		fmt.Fprintln(w)
	}
	tw := tabwriter.NewWriter(w, 0, 4, 2, ' ', 0)
	fmt.Fprintln(tw, "PACKAGE\tBENCHMARK\tMEDIAN\tUNIT\tRANGE\tRUNS")
	for _, r := range rows {
		fmt.Fprintf(tw, "%s\t%s\t%s\t%s\t%s\t%d\n", shortPkg(r.Pkg), r.Bench, num(r.Median), r.Unit, spread(r), r.Runs)
	}
	return tw.Flush()
}

// spread shows the range of the runs around the median, in percent.
func spread(r Row) string {
	if r.Median == 0 || r.Runs < 2 {
		return ""
	}
	return fmt.Sprintf("-%.0f%% +%.0f%%", 100*(r.Median-r.Min)/r.Median, 100*(r.Max-r.Median)/r.Median)
}

// num prints a value as a whole number from 1000 up, else with four
// significant digits.
func num(v float64) string {
	if v >= 1000 || v <= -1000 {
		return strconv.FormatFloat(v, 'f', 0, 64)
	}
	return strconv.FormatFloat(v, 'g', 4, 64)
}

// shortPkg drops the module path, which every package shares.
func shortPkg(p string) string {
	if s, ok := strings.CutPrefix(p, "github.com/ferryvpn/ferry/"); ok {
		return s
	}
	return p
}
