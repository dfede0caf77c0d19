// Command ferryd is the ferry VPN server: one node of a replicated cluster.
//
// Subcommands create a cluster (init), admit nodes (token, join), remove a
// node (leave), run a node (run), run a throwaway single node for
// development (dev) and print the version. See "ferryd --help".
package main

import (
	"context"
	"fmt"
	"io"
	"os"
	"os/signal"
	"path/filepath"
	"runtime"
	"runtime/debug"
	"syscall"
	"time"

	"github.com/ferryvpn/ferry/cluster/admit"
	"github.com/ferryvpn/ferry/cmd/internal/config"
	"github.com/spf13/cobra"
)

// version is set at build time with -ldflags "-X main.version=...".
var version string

func main() {
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	err := run(ctx, os.Args[1:], os.Stdout, os.Stderr)
	stop()
	if err != nil {
		fmt.Fprintln(os.Stderr, "ferryd:", err)
		os.Exit(1)
	}
}

// run executes the command line args until ctx ends.
func run(ctx context.Context, args []string, stdout, stderr io.Writer) error {
	root := &cobra.Command{
		Use:   "ferryd",
		Short: "ferryd is the ferry zero-trust VPN server",
		Long: `ferryd runs one node of a ferry cluster. Nodes replicate their state with Raft
and serve the HTTPS API behind a load balancer.

Start with "ferryd dev" for a throwaway single node, or "ferryd init" to
create a real cluster.`,
		SilenceUsage:  true,
		SilenceErrors: true,
	}
	root.CompletionOptions.DisableDefaultCmd = true
	root.SetArgs(args)
	root.SetOut(stdout)
	root.SetErr(stderr)
	root.SetFlagErrorFunc(func(cmd *cobra.Command, err error) error {
		return fmt.Errorf("%w (see %s --help)", err, cmd.CommandPath())
	})
	root.AddCommand(
		newInitCmd(stdout),
		newTokenCmd(stdout, stderr),
		newJoinCmd(stdout, stderr),
		newLeaveCmd(stdout, stderr),
		newRunCmd(stderr),
		newDevCmd(stdout, stderr),
		newAuditCmd(stdout),
		newVersionCmd(stdout),
	)
	return root.ExecuteContext(ctx)
}

func newRunCmd(stderr io.Writer) *cobra.Command {
	var (
		path string
		o    config.Overrides
	)
	cmd := &cobra.Command{
		Use:   "run --config FILE",
		Short: "Run a node from its config file",
		Long: `run starts a node: the cluster node (Raft and the replicated store), the HTTPS
API and the metrics listener. It logs to standard error and stops cleanly on
SIGINT or SIGTERM. Flags override values of the config file.`,
		Example: `  ferryd run --config /etc/ferry/ferryd.yaml
  ferryd run --config ferryd.yaml --log-level debug --log-format text`,
		Args: cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			if o.DataDir != "" {
				abs, err := filepath.Abs(o.DataDir)
				if err != nil {
					return err
				}
				o.DataDir = abs
			}
			cfg, err := config.Load(path, o)
			if err != nil {
				return err
			}
			return serve(cmd.Context(), cfg, stderr, serveOptions{})
		},
	}
	f := cmd.Flags()
	f.StringVar(&path, "config", "", "config file (see deploy/ferryd.example.yaml)")
	f.StringVar(&o.NodeID, "node-id", "", "override node_id")
	f.StringVar(&o.DataDir, "data-dir", "", "override data_dir")
	f.StringVar(&o.APIAddr, "api-addr", "", "override api.listen_addr")
	f.StringVar(&o.MetricsAddr, "metrics-addr", "", "override metrics.listen_addr")
	f.StringVar(&o.LogLevel, "log-level", "", "override log.level: debug, info, warn or error")
	f.StringVar(&o.LogFormat, "log-format", "", "override log.format: json or text")
	cmd.MarkFlagRequired("config")
	return cmd
}

func newTokenCmd(stdout, stderr io.Writer) *cobra.Command {
	var (
		path   string
		ttl    time.Duration
		nodeID string
	)
	cmd := &cobra.Command{
		Use:   "token --config FILE [--ttl 1h] [--node-id ID]",
		Short: "Print a join token that admits one new node",
		Long: `token prints a join token on standard output. The token admits one node: the
cluster consumes it when the node joins, and refuses it after that or once it
expires. With --node-id it admits only that node. Pass it over a secure
channel, in a file only you can read (ferryd join --token-file).

token needs the config's master key and CA certificate files; it does not
contact the cluster. The token carries a pin of the CA certificate, with which
the joining node authenticates the cluster. The cluster's audit log records
its use (by the token's ID, printed on standard error); "ferryctl cluster
join" mints one through the API, which also records who minted it.`,
		Example: `  (umask 077; ferryd token --config /etc/ferry/ferryd.yaml --node-id n2 >n2.token)
  TOKEN=$(ferryd token --config ferryd.yaml --ttl 15m)`,
		Args: cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			if err := admit.CheckTokenTTL(ttl); err != nil {
				return fmt.Errorf("--ttl %s: want a duration above 0 and at most %s", ttl, admit.MaxTokenTTL)
			}
			cfg, err := config.Load(path, config.Overrides{})
			if err != nil {
				return err
			}
			master, err := cfg.MasterKey()
			if err != nil {
				return err
			}
			caCert, err := cfg.LoadCACert()
			if err != nil {
				return err
			}
			tok, err := admit.MintToken(master, caCert, ttl, nodeID, time.Now())
			if err != nil {
				return fmt.Errorf("--node-id: %w", err)
			}
			fmt.Fprintln(stdout, tok.Text)
			who := "one node"
			if nodeID != "" {
				who = "node " + nodeID
			}
			fmt.Fprintf(stderr, "The token (ID %s) admits %s, once, until %s.\n", tok.ID, who, tok.Expires.Format(time.RFC3339))
			return nil
		},
	}
	cmd.Flags().StringVar(&path, "config", "", "config file of any node of the cluster")
	cmd.Flags().DurationVar(&ttl, "ttl", admit.DefaultTokenTTL, fmt.Sprintf("how long the token is valid (at most %s)", admit.MaxTokenTTL))
	cmd.Flags().StringVar(&nodeID, "node-id", "", "admit only the node with this ID")
	cmd.MarkFlagRequired("config")
	return cmd
}

func newVersionCmd(stdout io.Writer) *cobra.Command {
	return &cobra.Command{
		Use:   "version",
		Short: "Print the version",
		Args:  cobra.NoArgs,
		RunE: func(*cobra.Command, []string) error {
			fmt.Fprintf(stdout, "ferryd %s (%s, %s/%s)\n", versionString(), runtime.Version(), runtime.GOOS, runtime.GOARCH)
			return nil
		},
	}
}

// versionString returns the version set at build time, else the module
// version, else "dev".
func versionString() string {
	if version != "" {
		return version
	}
	if bi, ok := debug.ReadBuildInfo(); ok && bi.Main.Version != "" && bi.Main.Version != "(devel)" {
		return bi.Main.Version
	}
	return "dev"
}
