package main

import (
	"bufio"
	"fmt"
	"io"
	"strconv"
	"strings"
)

// Result is one line of `go test -bench` output: one run of one benchmark.
type Result struct {
	// Pkg is the import path from the preceding "pkg:" line.
	Pkg string
	// Name is the benchmark's full name without the GOMAXPROCS suffix,
	// such as "BenchmarkCommit/writers=64".
	Name string
	// Iterations is b.N of the run.
	Iterations int64
	// Values maps each unit ("ns/op", "B/op", or one given to
	// b.ReportMetric such as "commits/s") to its value.
	Values map[string]float64
	// Units lists the units in the order the line gave them.
	Units []string
}

// Parse reads the output of `go test -bench` and returns every benchmark
// result line. Other lines (ok, PASS, logs) are skipped.
func Parse(r io.Reader) ([]Result, error) {
	var (
		out []Result
		pkg string
	)
	sc := bufio.NewScanner(r)
	sc.Buffer(make([]byte, 64<<10), 1<<20)
	for line := 1; sc.Scan(); line++ {
		text := sc.Text()
		if p, ok := strings.CutPrefix(text, "pkg: "); ok {
			pkg = strings.TrimSpace(p)
			continue
		}
		if !strings.HasPrefix(text, "Benchmark") {
			continue
		}
		res, ok, err := parseLine(text)
		if err != nil {
			return nil, fmt.Errorf("line %d: %w", line, err)
		}
		if ok {
			res.Pkg = pkg
			out = append(out, res)
		}
	}
	return out, sc.Err()
}

// parseLine parses "BenchmarkX-8  1000  1234 ns/op  5.5 commits/s". It
// reports false for lines that start like a benchmark but are not a result,
// such as the name a benchmark prints before it fails.
func parseLine(text string) (Result, bool, error) {
	f := strings.Fields(text)
	if len(f) < 4 || len(f)%2 != 0 {
		return Result{}, false, nil
	}
	n, err := strconv.ParseInt(f[1], 10, 64)
	if err != nil {
		return Result{}, false, nil
	}
	res := Result{Name: trimProcs(f[0]), Iterations: n, Values: make(map[string]float64)}
	for i := 2; i+1 < len(f); i += 2 {
		v, err := strconv.ParseFloat(f[i], 64)
		if err != nil {
			return Result{}, false, fmt.Errorf("value %q of %s is not a number", f[i], f[0])
		}
		unit := f[i+1]
		if _, dup := res.Values[unit]; !dup {
			res.Units = append(res.Units, unit)
		}
		res.Values[unit] = v
	}
	return res, true, nil
}

// trimProcs removes the "-8" GOMAXPROCS suffix from a benchmark name.
func trimProcs(name string) string {
	i := strings.LastIndexByte(name, '-')
	if i < 0 {
		return name
	}
	if _, err := strconv.Atoi(name[i+1:]); err != nil {
		return name
	}
	return name[:i]
}
