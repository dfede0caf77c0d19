// Command benchreport runs the benchmarks several times and prints the
// median of each figure, for `make bench`.
//
// It runs `go test -run '^$' -bench ... -count N` over the packages, parses
// the standard benchmark output, including metrics reported with
// b.ReportMetric, and prints one row per benchmark and unit. The figures
// variable (report.go) selects the numbers summarised at the top.
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
	bench := fs.String("bench", ".", "regular expression of the benchmarks to run")
	benchtime := fs.String("benchtime", "1s", "time or iterations per run, as go test -benchtime")
	count := fs.Int("count", 5, "runs of each benchmark; the report prints their median")
	verbose := fs.Bool("v", false, "stream go test's output to standard error")
	fs.Usage = func() {
		fmt.Fprintln(stderr, "usage: benchreport [flags] [packages]   (default packages ./...)")
		fs.PrintDefaults()
	}
	if err := fs.Parse(args); err != nil {
		return err
	}
	if *count < 1 {
		return errors.New("-count: want at least 1")
	}
	pkgs := fs.Args()
	if len(pkgs) == 0 {
		pkgs = []string{"./..."}
	}

	goArgs := append([]string{"test", "-run", "^$", "-bench", *bench, "-benchtime", *benchtime,
		"-count", fmt.Sprint(*count), "-benchmem"}, pkgs...)
	fmt.Fprintf(stderr, "running go %v\n", goArgs)
	var out bytes.Buffer
	cmd := exec.CommandContext(ctx, "go", goArgs...)
	cmd.Stdout = &out
	cmd.Stderr = &out
	if *verbose {
		cmd.Stdout = io.MultiWriter(&out, stderr)
		cmd.Stderr = cmd.Stdout
	}
	if err := cmd.Run(); err != nil {
		if !*verbose {
			stderr.Write(out.Bytes())
		}
		return fmt.Errorf("go test: %w", err)
	}
	results, err := Parse(&out)
	if err != nil {
		return err
	}
	if len(results) == 0 {
		fmt.Fprintln(stdout, "no benchmarks matched")
		return nil
	}
	return Print(stdout, Summarize(results), figures)
}
