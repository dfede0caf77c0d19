package main

import (
	"context"
	"errors"
	"fmt"
	"io"
	"net"
	"time"

	"github.com/ferryvpn/ferry/cluster"
	"github.com/ferryvpn/ferry/cmd/internal/config"
	"github.com/spf13/cobra"
)

// defaultLeaveWait bounds how long leave keeps trying while the cluster
// elects a leader.
const defaultLeaveWait = time.Minute

func newLeaveCmd(stdout, stderr io.Writer) *cobra.Command {
	var (
		path string
		peer string
		wait time.Duration
	)
	cmd := &cobra.Command{
		Use:   "leave --config FILE",
		Short: "Remove this node from the cluster (scale-in, replacing a machine)",
		Long: `leave asks the cluster to remove this node from its Raft configuration, waits
until the removal is committed, and exits. Run it on the node's machine while
"ferryd run" still runs there, then stop the node: an auto scaling group's
termination lifecycle hook is the place for it.

It authenticates with the node's own cluster certificate (tls.cert_file of
the config) over the cluster listener, mutual TLS: a node can remove only
itself, and no other certificate removes anyone. It sends the request to the
node's own cluster address (or to --peer, any member's cluster address). A
leader leaving hands leadership to another live voter first.

leave refuses, and changes nothing, when
  - the node is not a member of the cluster (never added, or already removed);
  - the voters that would remain would have no live majority, as the leader's
    heartbeats see them: with all of three nodes up one may leave, with one of
    three down none may (one live voter of two is no quorum); of two live
    nodes one may leave; the last voter never leaves.
Remove dead nodes first with "ferryctl cluster remove NODE-ID".

A node that left does not come back by restarting: wipe its data directory
and join it again as a new node ("ferryctl cluster join", "ferryd join").`,
		Example: `  ferryd leave --config /etc/ferry/ferryd.yaml && systemctl stop ferryd
  ferryd leave --config ferryd.yaml --peer 10.0.2.7:7946`,
		Args: cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			if wait <= 0 {
				return fmt.Errorf("--wait %s: want a duration above 0", wait)
			}
			cfg, err := config.Load(path, config.Overrides{})
			if err != nil {
				return err
			}
			// Loads the node certificate and checks it is node_id's and
			// the cluster CA's.
			ccfg, err := cfg.ClusterConfig(nil, nil)
			if err != nil {
				return err
			}
			addr := peer
			if addr == "" {
				addr = ownClusterAddr(cfg)
			}
			ctx, cancel := context.WithTimeout(cmd.Context(), wait)
			defer cancel()
			fmt.Fprintf(stderr, "ferryd: asking %s to remove node %s from the cluster\n", addr, cfg.NodeID)
			err = cluster.Leave(ctx, cluster.LeaveConfig{
				NodeID: cfg.NodeID, Addr: addr, Certificate: ccfg.Certificate, RootCAs: ccfg.RootCAs, ServerName: ccfg.ServerName,
			})
			if err != nil {
				return explainLeave(cfg.NodeID, addr, err)
			}
			fmt.Fprintf(stdout, "Node %s left the cluster. Stop it now; to bring the machine back, wipe %s and join it again as a new node.\n", cfg.NodeID, cfg.DataDir)
			return nil
		},
	}
	f := cmd.Flags()
	f.StringVar(&path, "config", "", "this node's config file")
	f.StringVar(&peer, "peer", "", "cluster address (host:port) of the member to ask; default this node's own")
	f.DurationVar(&wait, "wait", defaultLeaveWait, "how long to keep trying while the cluster has no leader")
	cmd.MarkFlagRequired("config")
	return cmd
}

// ownClusterAddr is where this node's cluster listener is reached from
// its own machine: the advertised address, else the bound one, with a
// wildcard host replaced by loopback.
func ownClusterAddr(cfg *config.Config) string {
	if cfg.Cluster.AdvertiseAddr != "" {
		return cfg.Cluster.AdvertiseAddr
	}
	host, port, err := net.SplitHostPort(cfg.Cluster.BindAddr)
	if err != nil {
		return cfg.Cluster.BindAddr
	}
	if ip := net.ParseIP(host); host == "" || (ip != nil && ip.IsUnspecified()) {
		host = "127.0.0.1"
	}
	return net.JoinHostPort(host, port)
}

// explainLeave says what a refused or failed leave means for the operator.
func explainLeave(id, addr string, err error) error {
	switch {
	case errors.Is(err, cluster.ErrNotMember), errors.Is(err, cluster.ErrPeerRefused):
		return fmt.Errorf("node %s is not a member of the cluster (never added, or already removed and its certificates revoked): %w", id, err)
	case errors.Is(err, cluster.ErrWouldLoseQuorum):
		return fmt.Errorf("refused, nothing changed: %w", err)
	case errors.Is(err, cluster.ErrForbidden):
		return fmt.Errorf("refused: %w", err)
	case errors.Is(err, context.DeadlineExceeded):
		return fmt.Errorf("%w; is ferryd running and reachable at %s? --peer asks another member", err, addr)
	}
	return fmt.Errorf("leaving via %s: %w", addr, err)
}
