// Command ferry is the desktop client of the ferry VPN: it signs in
// (browser, company IdP, TOTP), makes the device's WireGuard key pair
// locally, fetches the personal profile, and brings the tunnel up and down
// with wg-quick or an embedded wireguard-go.
//
// It speaks to ferryd over its HTTPS API only and links neither the
// cluster store nor the server's data plane. See "ferry --help".
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
		fmt.Fprintln(os.Stderr, "ferry:", err)
		os.Exit(1)
	}
}

// run executes the command line args until ctx ends.
func run(ctx context.Context, args []string, stdout, stderr io.Writer) error {
	return runWith(ctx, args, console{
		out: stdout, err: stderr,
		root:        os.Geteuid() == 0,
		runDir:      defaultRunDir,
		linkExists:  linkExists,
		openBrowser: loginflow.OpenBrowser,
	})
}

// console is how ferry meets the person running it and their machine.
type console struct {
	out io.Writer
	err io.Writer
	// root reports whether ferry runs with the privileges a tunnel
	// interface needs.
	root bool
	// runDir holds the embedded tunnel's pid and log files.
	runDir string
	// linkExists reports whether a network interface exists.
	linkExists func(name string) bool
	// openBrowser opens the sign-in page.
	openBrowser func(url string) error
}

// runWith is run with its console made explicit, for tests.
func runWith(ctx context.Context, args []string, con console) error {
	root := newRootCmd(&globals{con: con})
	root.SetArgs(args)
	return explain(root.ExecuteContext(ctx))
}

// newRootCmd builds the command tree around the shared flags g.
func newRootCmd(g *globals) *cobra.Command {
	con := g.con
	root := &cobra.Command{
		Use:   "ferry",
		Short: "ferry connects this computer to the company network",
		Long: `ferry signs you in to your company's ferry VPN and runs the WireGuard tunnel.

  ferry login https://vpn.example.com   sign in; fetch your personal profile
  sudo ferry up                         connect
  ferry status                          time left, traffic, server
  sudo ferry down                       disconnect
  ferry logout                          sign out; revoke this device

Your WireGuard private key is made on this computer and never leaves it. The
profile expires after a while (12 hours unless your company says otherwise):
sign in again with ferry login.`,
		SilenceUsage:  true,
		SilenceErrors: true,
		PersistentPreRunE: func(*cobra.Command, []string) error {
			return g.check()
		},
	}
	root.SetOut(con.out)
	root.SetErr(con.err)
	root.SetFlagErrorFunc(func(cmd *cobra.Command, err error) error {
		return fmt.Errorf("%w (see %s --help)", err, cmd.CommandPath())
	})
	pf := root.PersistentFlags()
	pf.StringVar(&g.dir, "config-dir", "", "where ferry keeps its token, key and profile (default: ferry in your config directory; under sudo, the invoking user's)")
	pf.StringVarP(&g.output, "output", "o", "table", "output format: table or json")
	pf.StringVar(&g.server, "server", "", "talk to this node of the cluster you signed in to (default: the server of the last login); the session goes only to servers the login's CA vouches for")
	pf.DurationVar(&g.timeout, "timeout", 30*time.Second, "time limit of each request to the server")
	root.AddCommand(
		newLoginCmd(g),
		newLogoutCmd(g),
		newUpCmd(g),
		newDownCmd(g),
		newStatusCmd(g),
		newProfilesCmd(g),
		newVersionCmd(g),
	)
	return root
}

// errNotSignedIn is returned when there is no saved sign-in.
var errNotSignedIn = errors.New("not signed in: run ferry login https://SERVER")

// explain turns API errors into what the person should do.
func explain(err error) error {
	if errors.Is(err, loginflow.ErrDenied) {
		return errors.New("the server refused to sign this account in: it may be disabled; ask your administrator")
	}
	return cli.Explain(err, cli.Explanations{Unauthorized: "not signed in or session expired: run ferry login"})
}

func newVersionCmd(g *globals) *cobra.Command {
	return &cobra.Command{
		Use:   "version",
		Short: "Print the version",
		Args:  cobra.NoArgs,
		RunE: func(*cobra.Command, []string) error {
			fmt.Fprintln(g.con.out, cli.VersionLine("ferry", version))
			return nil
		},
	}
}
