// Command benchreport runs the benchmarks several times and prints the
// median of each figure, for `make bench`.
//
// It runs each job of jobs.go (`go test -run '^$' -bench ... -count N`),
// parses the standard benchmark output, including metrics reported with
// b.ReportMetric, and prints the figures each issue names with their goals,
// then one row per benchmark and unit, then the benchmarks' own reports.
package main

import (
	"bytes"
	"context"
	"errors"
	"flag"
	"fmt"
	"io"
	"os"
	"os/exec"
	"os/signal"
	"strings"
	"syscall"
)

func main() {
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	err := run(ctx, os.Args[1:], os.Stdout, os.Stderr)
	stop()
	if err != nil {
		fmt.Fprintln(os.Stderr, "benchreport:", err)
		os.Exit(1)
	}
}

func run(ctx context.Context, args []string, stdout, stderr io.Writer) error {
	fs := flag.NewFlagSet("benchreport", flag.ContinueOnError)
	fs.SetOutput(stderr)
	only := fs.String("only", "", "run only the jobs whose package contains this text (e.g. cluster)")
	countScale := fs.Int("count", 0, "override every job's run count (0: each job's own)")
	verbose := fs.Bool("v", false, "stream go test's output to standard error")
	fs.Usage = func() {
		fmt.Fprintln(stderr, "usage: benchreport [-only PKG] [-count N] [-v]\n\nRuns the benchmarks each issue names and prints medians against the goals.")
		fs.PrintDefaults()
	}
	if err := fs.Parse(args); err != nil {
		return err
	}
	if *countScale < 0 {
		return errors.New("-count: want 0 or more")
	}
	var results []Result
	var details bytes.Buffer
	var failed []string
	for _, j := range jobs {
		if *only != "" && !strings.Contains(j.Pkg, *only) {
			continue
		}
		if j.Root && !isRoot() {
			fmt.Fprintf(&details, "%s %s: skipped, needs root (network namespaces)\n", j.Pkg, j.Bench)
			continue
		}
		count := j.Count
		if *countScale > 0 {
			count = *countScale
		}
		goArgs := []string{"test", "-run", "^$", "-bench", j.Bench, "-benchtime", j.Benchtime,
			"-count", fmt.Sprint(count), "-timeout", "60m", j.Pkg}
		fmt.Fprintf(stderr, "running go %s\n", strings.Join(goArgs, " "))
		var out bytes.Buffer
		cmd := exec.CommandContext(ctx, "go", goArgs...)
		cmd.Stdout = &out
		cmd.Stderr = &out
		if *verbose {
			cmd.Stdout = io.MultiWriter(&out, stderr)
			cmd.Stderr = cmd.Stdout
		}
		if err := cmd.Run(); err != nil {
			// Report what the other jobs measured; fail at the end.
			if !*verbose {
				stderr.Write(out.Bytes())
			}
			failed = append(failed, j.Pkg+" "+j.Bench)
			fmt.Fprintf(&details, "%s %s: FAILED: %v\n", j.Pkg, j.Bench, err)
		}
		rs, err := Parse(bytes.NewReader(out.Bytes()))
		if err != nil {
			return err
		}
		results = append(results, rs...)
		keepDetails(&details, out.Bytes())
	}
	if len(results) == 0 {
		fmt.Fprintln(stdout, "no benchmarks ran")
	} else if err := Print(stdout, Summarize(results), figures); err != nil {
		return err
	}
	if details.Len() > 0 {
		fmt.Fprintf(stdout, "\nDETAILS\n%s", details.String())
	}
	if len(failed) > 0 {
		return fmt.Errorf("benchmarks failed: %s", strings.Join(failed, "; "))
	}
	return nil
}

// keepDetails copies the free-text reports some benchmarks print (the data
// plane's throughput matrix), dropping go test's own lines.
func keepDetails(w io.Writer, out []byte) {
	for _, line := range strings.Split(string(out), "\n") {
		t := strings.TrimSpace(line)
		switch {
		case t == "", t == "PASS", strings.HasPrefix(t, "ok "), strings.HasPrefix(t, "goos:"), strings.HasPrefix(t, "goarch:"),
			strings.HasPrefix(t, "pkg:"), strings.HasPrefix(t, "cpu:"), strings.HasPrefix(t, "Benchmark"), strings.HasPrefix(t, "---"),
			strings.HasPrefix(t, "bench_test.go"), strings.HasPrefix(t, "time="):
			continue
		}
		fmt.Fprintln(w, line)
	}
}
