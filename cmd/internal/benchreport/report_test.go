package main

import (
	"bytes"
	"strings"
	"testing"
)

const sample = `goos: linux
goarch: amd64
pkg: github.com/ferryvpn/ferry/cluster
cpu: Some CPU
BenchmarkCommit/writers=1-2         	     300	   3000000 ns/op	       333.3 commits/s	         2.900 p50-ms	  5000 B/op	      40 allocs/op
BenchmarkCommit/writers=1-2         	     310	   3200000 ns/op	       312.5 commits/s	         3.100 p50-ms	  5100 B/op	      41 allocs/op
BenchmarkCommit/writers=1-2         	     290	   2800000 ns/op	       357.1 commits/s	         2.700 p50-ms	  4900 B/op	      39 allocs/op
BenchmarkFailover/default-2         	       1	2100000000 ns/op	         2.100 failover-s
BenchmarkFailover/default-2         	       1	1900000000 ns/op	         1.900 failover-s
    bench_test.go:12: a log line
BenchmarkBroken
--- FAIL: BenchmarkBroken
PASS
ok  	github.com/ferryvpn/ferry/cluster	42.1s
pkg: github.com/ferryvpn/ferry/cmd/internal/config
BenchmarkLoad-2   	   50000	     24000 ns/op
ok  	github.com/ferryvpn/ferry/cmd/internal/config	1.2s
`

func TestParseAndSummarize(t *testing.T) {
	results, err := Parse(strings.NewReader(sample))
	if err != nil {
		t.Fatal(err)
	}
	if len(results) != 6 {
		t.Fatalf("parsed %d results, want 6", len(results))
	}
	rows := Summarize(results)
	tests := []struct {
		name             string
		pkg, bench, unit string
		median, min, max float64
		runs             int
	}{
		{"odd runs take the middle", "github.com/ferryvpn/ferry/cluster", "BenchmarkCommit/writers=1", "commits/s", 333.3, 312.5, 357.1, 3},
		{"standard unit", "github.com/ferryvpn/ferry/cluster", "BenchmarkCommit/writers=1", "ns/op", 3000000, 2800000, 3200000, 3},
		{"even runs average the middle two", "github.com/ferryvpn/ferry/cluster", "BenchmarkFailover/default", "failover-s", 2.0, 1.9, 2.1, 2},
		{"second package", "github.com/ferryvpn/ferry/cmd/internal/config", "BenchmarkLoad", "ns/op", 24000, 24000, 24000, 1},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			r, ok := find(rows, Figure{Pkg: tt.pkg, Bench: tt.bench, Unit: tt.unit})
			if !ok {
				t.Fatalf("no row for %s %s", tt.bench, tt.unit)
			}
			if r.Median != tt.median || r.Min != tt.min || r.Max != tt.max || r.Runs != tt.runs {
				t.Errorf("row = %+v", r)
			}
		})
	}
	if rows[0].Unit != "ns/op" || rows[1].Unit != "commits/s" {
		t.Errorf("rows lost the order of the output: %+v", rows[:2])
	}
}

func TestParseRejectsBadValue(t *testing.T) {
	if _, err := Parse(strings.NewReader("BenchmarkX-2  10  abc ns/op\n")); err == nil || !strings.Contains(err.Error(), "line 1") {
		t.Errorf("Parse: %v, want an error naming line 1", err)
	}
}

func TestPrint(t *testing.T) {
	results, err := Parse(strings.NewReader(sample))
	if err != nil {
		t.Fatal(err)
	}
	var b bytes.Buffer
	figs := []Figure{
		{Label: "commits, 1 writer", Pkg: "/cluster", Bench: "BenchmarkCommit/writers=1", Unit: "commits/s"},
		{Label: "missing", Pkg: "/cluster", Bench: "BenchmarkNone", Unit: "ns/op"},
	}
	if err := Print(&b, Summarize(results), figs); err != nil {
		t.Fatal(err)
	}
	out := b.String()
	for _, want := range [][]string{
		{"commits,", "1", "writer", "333.3", "commits/s", "-6%", "+7%", "3"},
		{"missing", "(not", "run)", "ns/op"},
		{"cluster", "BenchmarkFailover/default", "2000000000", "ns/op", "-5%", "+5%", "2"},
		{"cluster", "BenchmarkFailover/default", "2", "failover-s", "-5%", "+5%", "2"},
	} {
		if !hasRow(out, want) {
			t.Errorf("report lacks a row %q:\n%s", want, out)
		}
	}
}

// hasRow reports whether a line of out consists of fields.
func hasRow(out string, fields []string) bool {
	for _, line := range strings.Split(out, "\n") {
		if strings.Join(strings.Fields(line), " ") == strings.Join(fields, " ") {
			return true
		}
	}
	return false
}
