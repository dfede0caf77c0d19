package main

import (
	"context"
	"fmt"
	"io"
	"net"
	"os"
	"path/filepath"
	"slices"
	"time"

	"github.com/ferryvpn/ferry/cmd/internal/config"
	"github.com/ferryvpn/ferry/tunnel"
	"github.com/spf13/cobra"
)

// devReadyTimeout bounds how long dev waits for its node to become ready
// before it reports where it serves.
const devReadyTimeout = 30 * time.Second

func newDevCmd(stdout, stderr io.Writer) *cobra.Command {
	var (
		addr        string
		metricsAddr string
		keep        bool
	)
	cmd := &cobra.Command{
		Use:   "dev [--addr 127.0.0.1:8443]",
		Short: "Run a throwaway single-node cluster for development",
		Long: `dev creates a new cluster in a temporary directory (CA, master key,
certificates, config), runs its single node with the Raft log unsynced, and
prints what it serves and where. The directory is removed on exit unless
--keep is given. Nothing dev makes is fit for production.`,
		Example: `  ferryd dev
  ferryd dev --addr 127.0.0.1:9443 --metrics-addr 127.0.0.1:9091 --keep`,
		Args: cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) (err error) {
			dir, err := os.MkdirTemp("", "ferry-dev-")
			if err != nil {
				return err
			}
			defer func() {
				if keep {
					fmt.Fprintf(stdout, "Kept %s\n", dir)
				} else if rmErr := os.RemoveAll(dir); rmErr != nil && err == nil {
					err = rmErr
				}
			}()
			addr, err = devAddr(addr)
			if err != nil {
				return err
			}
			o := initOptions{
				dir: dir, dataDir: dirData, nodeID: "dev", clusterAddr: "127.0.0.1:0", apiAddr: addr,
				apiNames: devAPINames(addr), metricsAddr: metricsAddr, logFormat: "text",
			}
			if _, _, err := createCluster(o, time.Now()); err != nil {
				return err
			}
			cfg, err := config.Load(filepath.Join(dir, fileConfig), config.Overrides{})
			if err != nil {
				return err
			}
			if err := tunnel.Available(); err != nil {
				fmt.Fprintf(stdout, "Data plane skipped: %v\n(run ferryd dev as root on Linux to bring up WireGuard and nftables)\n\n", err)
			} else {
				cfg.WireGuard.Enabled = true
				cfg.WireGuard.Interface = "ferrydev0"
			}
			idp, err := startDevIdP(cfg, dir, cfg.API.ListenAddr, cfg.Log.NewLogger(stderr))
			if err != nil {
				return err
			}
			defer idp.close()
			return serve(cmd.Context(), cfg, stderr, serveOptions{
				noSync: true,
				started: func(ctx context.Context, r *running) error {
					if err := waitReady(ctx, r); err != nil {
						return err
					}
					if err := ensureDevProfile(ctx, r.svc.Profiles); err != nil {
						return fmt.Errorf("creating the demo profile: %w", err)
					}
					printDev(stdout, dir, r, keep)
					printDevSignIn(stdout, "https://"+r.apiAddr.String(), filepath.Join(dir, fileCACert), idp.issuer)
					return nil
				},
			})
		},
	}
	f := cmd.Flags()
	f.StringVar(&addr, "addr", "127.0.0.1:8443", "host:port of the HTTPS API")
	f.StringVar(&metricsAddr, "metrics-addr", "127.0.0.1:9090", "host:port of the metrics listener")
	f.BoolVar(&keep, "keep", false, "keep the temporary directory on exit")
	return cmd
}

// devAddr fixes a port 0 in addr to a free port: the identity provider
// needs the API's exact callback URL before the API listens.
func devAddr(addr string) (string, error) {
	host, port, err := net.SplitHostPort(addr)
	if err != nil {
		return "", fmt.Errorf("--addr %q: %w", addr, err)
	}
	if port != "0" {
		return addr, nil
	}
	ln, err := net.Listen("tcp", net.JoinHostPort(host, "0"))
	if err != nil {
		return "", fmt.Errorf("--addr %q: %w", addr, err)
	}
	defer ln.Close()
	return ln.Addr().String(), nil
}

// devAPINames returns the names of the dev API certificate: loopback, and
// the host of addr if it is a specific other address.
func devAPINames(addr string) []string {
	names := []string{"localhost", "127.0.0.1", "::1"}
	if host, _, err := net.SplitHostPort(addr); err == nil && host != "" && !slices.Contains(names, host) {
		if ip := net.ParseIP(host); ip == nil || !ip.IsUnspecified() {
			names = append(names, host)
		}
	}
	return names
}

// waitReady waits until the node is ready, ctx ends or devReadyTimeout
// passes.
func waitReady(ctx context.Context, r *running) error {
	ctx, cancel := context.WithTimeout(ctx, devReadyTimeout)
	defer cancel()
	tick := time.NewTicker(50 * time.Millisecond)
	defer tick.Stop()
	for {
		err := r.node.Ready()
		if err == nil {
			return nil
		}
		select {
		case <-ctx.Done():
			return fmt.Errorf("node not ready: %w", err)
		case <-tick.C:
		}
	}
}

func printDev(w io.Writer, dir string, r *running, keep bool) {
	apiURL := "https://" + r.apiAddr.String()
	caFile := filepath.Join(dir, fileCACert)
	cfgFile := filepath.Join(dir, fileConfig)
	fate := "is removed on exit (--keep keeps it)"
	if keep {
		fate = "is kept on exit"
	}
	fmt.Fprintf(w, `ferryd dev: a single-node cluster with throwaway state; not for production.

  API        %s  (GET /healthz, /readyz)
  trust CA   %s
             curl --cacert %s %s/readyz
  metrics    http://%s/metrics
  data dir   %s
  config     %s
  join token ferryd token --config %s

%s %s. Stop with Ctrl-C.
`, apiURL, caFile, caFile, apiURL, r.metricsAddr, r.cfg.DataDir, cfgFile, cfgFile, dir, fate)
}
