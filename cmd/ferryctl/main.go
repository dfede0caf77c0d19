// Command ferryctl is the administrator's command line for a ferry cluster:
// access profiles (created one by one or applied from a YAML file), users,
// WireGuard peers and sessions.
//
// It speaks to ferryd over its HTTPS API with an administrator's session
// token from "ferryctl login", and links neither the cluster store nor the
// data plane. See "ferryctl --help".
package main

import (
	"context"
	"errors"
	"fmt"
	"github.com/ferryvpn/ferry/cmd/internal/cli"
	"io"
	"os"
	"os/signal"
	"syscall"
	"time"

	"github.com/ferryvpn/ferry/cmd/internal/loginflow"
	"github.com/spf13/cobra"
)

// version is set at build time with -ldflags "-X main.version=...".
var version string

func main() {
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	err := run(ctx, os.Args[1:], os.Stdout, os.Stderr)
	stop()
	if err != nil {
		fmt.Fprintln(os.Stderr, "ferryctl:", err)
		var ee *exitError
		if errors.As(err, &ee) {
			os.Exit(ee.code)
		}
		os.Exit(1)
	}
}

// run executes the command line args until ctx ends.
func run(ctx context.Context, args []string, stdout, stderr io.Writer) error {
	return runWith(ctx, args, console{
		in: os.Stdin, out: stdout, err: stderr,
		interactive: isTerminal(os.Stdin),
		openBrowser: loginflow.OpenBrowser,
	})
}

// console is how ferryctl talks to the person or script that runs it.
type console struct {
	in  io.Reader
	out io.Writer
	err io.Writer
	// interactive reports whether in is a terminal a person answers
	// questions on; a script must pass --yes instead.
	interactive bool
	// openBrowser opens the sign-in page.
	openBrowser func(url string) error
}

// runWith is run with its console made explicit, for tests.
func runWith(ctx context.Context, args []string, con console) error {
	g := &globals{con: con}
	root := &cobra.Command{
		Use:   "ferryctl",
		Short: "ferryctl administers a ferry VPN cluster",
		Long: `ferryctl administers a ferry cluster through its HTTPS API: access profiles,
users, WireGuard peers and sessions. Sign in first with an administrator
account:

  ferryctl login https://vpn.example.com --ca ca.pem

Every command prints a table for people, or JSON for scripts with -o json.`,
		Example: `  ferryctl login https://vpn.example.com
  ferryctl profile apply -f profiles.yaml --dry-run
  ferryctl peer list --user alice@example.com -o json`,
		SilenceUsage:  true,
		SilenceErrors: true,
		PersistentPreRunE: func(cmd *cobra.Command, _ []string) error {
			return g.check(cmd)
		},
	}
	root.SetArgs(args)
	root.SetIn(con.in)
	root.SetOut(con.out)
	root.SetErr(con.err)
	root.SetFlagErrorFunc(func(cmd *cobra.Command, err error) error {
		return fmt.Errorf("%w (see %s --help)", err, cmd.CommandPath())
	})
	pf := root.PersistentFlags()
	pf.StringVar(&g.server, "server", "", "server URL, https://host[:port] (default: the server of the last login)")
	pf.StringVar(&g.caFile, "ca", "", "PEM file of the CA to trust for the server (default: the one given at login, else the system roots)")
	pf.StringVarP(&g.output, "output", "o", "table", "output format: table or json")
	pf.DurationVar(&g.timeout, "timeout", 30*time.Second, "time limit of each API request")
	root.AddCommand(
		newLoginCmd(g),
		newLogoutCmd(g),
		newProfileCmd(g),
		newUserCmd(g),
		newPeerCmd(g),
		newSessionCmd(g),
		newAuditCmd(g),
		newReportCmd(g),
		newClusterCmd(g),
		newCaptureCmd(g),
		newSCIMCmd(g),
		newVersionCmd(g),
	)
	return explain(root.ExecuteContext(ctx))
}

// Messages for the two answers every command can get.
const (
	msgUnauthorized = "not signed in or session expired: run ferryctl login"
	msgForbidden    = "your session lacks the admin role"
)

// errNotAdmin is returned when the session works but is not an
// administrator's.
var errNotAdmin = errors.New(msgForbidden)

// explain turns API errors into what the administrator should do. The
// server's messages for bad input (the line and field of a bad profile
// file, say) are kept as they are.
func explain(err error) error {
	if err == nil {
		return nil
	}
	switch {
	case errors.Is(err, errNotSignedIn):
		return errors.New(msgUnauthorized)
	case errors.Is(err, loginflow.ErrDenied):
		return fmt.Errorf("the server refused an administrator session for this account: ferryctl needs the admin role")
	}
	return cli.Explain(err, cli.Explanations{Unauthorized: msgUnauthorized, Forbidden: errNotAdmin})
}

func newVersionCmd(g *globals) *cobra.Command {
	return &cobra.Command{
		Use:   "version",
		Short: "Print the version",
		Args:  cobra.NoArgs,
		RunE: func(*cobra.Command, []string) error {
			fmt.Fprintln(g.con.out, cli.VersionLine("ferryctl", version))
			return nil
		},
	}
}
