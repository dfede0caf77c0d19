package main

import (
	"context"
	"crypto/tls"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"log/slog"
	"net"
	"net/http"
	"runtime"
	"time"

	"github.com/ferryvpn/ferry/cluster"
	"github.com/ferryvpn/ferry/cluster/seal"
	"github.com/ferryvpn/ferry/cmd/internal/api"
	"github.com/ferryvpn/ferry/cmd/internal/clusterca"
	"github.com/ferryvpn/ferry/cmd/internal/config"
	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/collectors"
)

// Bounds of the start-up and shutdown of a node.
const (
	publishTimeout  = 30 * time.Second // first start: wait for leadership, store the CA
	shutdownTimeout = 10 * time.Second // in-flight requests finish within it
)

// running is a started node, handed to serveOptions.started.
type running struct {
	cfg         *config.Config
	log         *slog.Logger
	node        *cluster.Node
	apiAddr     net.Addr
	metricsAddr net.Addr
	svc         *services
}

// serveOptions adjust serve for the commands that wrap it.
type serveOptions struct {
	// noSync disables fsync of the Raft log (ferryd dev only).
	noSync bool
	// member, when set, runs once the cluster node listens and before the
	// services start (they need a leader): joining adds the node here. If
	// it fails the node shuts down and serve returns its error. Only cfg,
	// log and node of r are set.
	member func(ctx context.Context, r *running) error
	// started, when set, runs once every listener serves; if it fails the
	// node shuts down and serve returns its error.
	started func(ctx context.Context, r *running) error
}

// serve runs a node as configured until ctx ends: the cluster node, the
// HTTPS API and the metrics listener, started in that order and stopped in
// the reverse order. Logs go to stderr.
func serve(ctx context.Context, cfg *config.Config, stderr io.Writer, opts serveOptions) error {
	log := cfg.Log.NewLogger(stderr)

	// 1. Secrets and identity files; fail before anything listens.
	master, err := cfg.MasterKey()
	if err != nil {
		return err
	}
	apiCert, err := cfg.APICertificate()
	if err != nil {
		return err
	}

	// 2. The metrics registry every component registers with.
	reg := prometheus.NewRegistry()
	reg.MustRegister(
		collectors.NewGoCollector(),
		collectors.NewProcessCollector(collectors.ProcessCollectorOpts{}),
		buildInfo(),
	)

	// 3. The cluster node.
	ccfg, err := cfg.ClusterConfig(log, reg)
	if err != nil {
		return err
	}
	ccfg.NoSync = opts.noSync
	// Refusals and forwarded membership changes on the cluster port go to
	// the audit log once it runs; forwarded changes need an
	// administrator's session (api.ClusterAuthorizer).
	peers := newPeerAudit(log)
	refs := &late{}
	ccfg.OnPeerEvent = peers.observe
	ccfg.Authorize = api.ClusterAuthorizer(refs.node.Load, master, refs.sessions.Load)
	node, err := cluster.New(ccfg)
	if err != nil {
		return fmt.Errorf("starting cluster node: %w", err)
	}
	defer func() {
		if err := node.Close(); err != nil {
			log.Error("closing cluster node", "err", err)
		}
		log.Info("stopped")
	}()
	refs.node.Store(node)

	// 4. The cluster CA in the store, on the first start of the first node.
	if err := publishCA(ctx, cfg, node, master, log); err != nil {
		return err
	}

	if opts.member != nil {
		if err := opts.member(ctx, &running{cfg: cfg, log: log, node: node}); err != nil {
			return err
		}
	}

	// 5. The domain services: audit, sign-in, profiles.
	svc, err := startServices(ctx, cfg, node, master, log, reg)
	if err != nil {
		return err
	}
	defer svc.close(log)
	refs.sessions.Store(svc.sessions)
	pctx, stopPeers := context.WithCancel(context.Background())
	peers.start(pctx, svc.audit)
	defer peers.wait()
	defer stopPeers()

	// 6. The HTTPS API and the metrics listener.
	handler, err := api.New(api.Config{Node: node, MasterKey: master, Logger: log, Users: svc.apiUsers(cfg.NodeID), Audit: &api.Audit{Signer: svc.signer, Recorder: svc.audit}, IdP: svc.apiIdP(cfg)})
	if err != nil {
		return err
	}
	apiLn, err := net.Listen("tcp", cfg.API.ListenAddr)
	if err != nil {
		return fmt.Errorf("api.listen_addr: %w", err)
	}
	metricsLn, err := net.Listen("tcp", cfg.Metrics.ListenAddr)
	if err != nil {
		apiLn.Close()
		return fmt.Errorf("metrics.listen_addr: %w", err)
	}
	errLog := slog.NewLogLogger(log.Handler(), slog.LevelDebug) // TLS probes by load balancers are noise
	apiSrv := &http.Server{
		Handler:           handler,
		TLSConfig:         &tls.Config{MinVersion: tls.VersionTLS12, Certificates: []tls.Certificate{apiCert}},
		ReadHeaderTimeout: 10 * time.Second,
		ReadTimeout:       30 * time.Second,
		WriteTimeout:      60 * time.Second,
		IdleTimeout:       2 * time.Minute,
		MaxHeaderBytes:    64 << 10,
		ErrorLog:          errLog,
	}
	metricsSrv := &http.Server{
		Handler:           api.MetricsHandler(reg, log),
		ReadHeaderTimeout: 10 * time.Second,
		ErrorLog:          errLog,
	}
	errc := make(chan error, 2)
	go func() { errc <- fmt.Errorf("api server: %w", apiSrv.ServeTLS(apiLn, "", "")) }()
	go func() { errc <- fmt.Errorf("metrics server: %w", metricsSrv.Serve(metricsLn)) }()
	log.Info("serving", "node_id", cfg.NodeID, "cluster_addr", node.Addr(),
		"api_addr", apiLn.Addr().String(), "metrics_addr", metricsLn.Addr().String())

	// 7. Whatever the command does once the node serves; then wait.
	var runErr error
	if opts.started != nil {
		runErr = opts.started(ctx, &running{cfg: cfg, log: log, node: node, apiAddr: apiLn.Addr(), metricsAddr: metricsLn.Addr(), svc: svc})
	}
	if runErr == nil {
		select {
		case <-ctx.Done():
			log.Info("shutting down", "reason", context.Cause(ctx))
		case runErr = <-errc:
		}
	}

	// 8. Shut down in reverse: stop taking requests, then leave the cluster
	// node to the deferred Close.
	sctx, cancel := context.WithTimeout(context.Background(), shutdownTimeout)
	defer cancel()
	if err := apiSrv.Shutdown(sctx); err != nil {
		log.Warn("api server shutdown", "err", err)
	}
	if err := metricsSrv.Shutdown(sctx); err != nil {
		log.Warn("metrics server shutdown", "err", err)
	}
	return runErr
}

// publishCA stores the cluster CA, its key sealed, when this node has the CA
// key file and the store holds no CA yet.
func publishCA(ctx context.Context, cfg *config.Config, node *cluster.Node, master seal.Key, log *slog.Logger) error {
	if cfg.TLS.CAKeyFile == "" {
		return nil
	}
	// A restarted node finds the CA in its local state: no quorum needed.
	_, err := clusterca.Cert(ctx, node, cluster.Local)
	if err == nil {
		return nil
	}
	if !errors.Is(err, clusterca.ErrNotFound) {
		return err
	}
	ca, err := cfg.LoadCA()
	if errors.Is(err, fs.ErrNotExist) {
		return fmt.Errorf("%w; the cluster store holds no CA yet, so no node could join", err)
	}
	if err != nil {
		return err
	}
	ctx, cancel := context.WithTimeout(ctx, publishTimeout)
	defer cancel()
	if err := node.WaitLeader(ctx); err != nil {
		return fmt.Errorf("storing the cluster CA: %w", err)
	}
	stored, err := clusterca.Publish(ctx, node, master, ca)
	if err != nil {
		return fmt.Errorf("storing the cluster CA: %w", err)
	}
	if stored {
		log.Info("stored the cluster CA, its key sealed; the CA key file is no longer needed", "file", cfg.TLS.CAKeyFile)
	}
	return nil
}

// buildInfo reports ferry's version as a metric.
func buildInfo() prometheus.Collector {
	g := prometheus.NewGauge(prometheus.GaugeOpts{
		Name:        "ferry_build_info",
		Help:        "Always 1; the labels say which ferryd runs.",
		ConstLabels: prometheus.Labels{"version": versionString(), "goversion": runtime.Version()},
	})
	g.Set(1)
	return g
}
