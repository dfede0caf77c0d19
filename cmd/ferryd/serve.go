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
	"os"
	"runtime"
	"sync"
	"sync/atomic"
	"time"

	"github.com/ferryvpn/ferry/audit"
	"github.com/ferryvpn/ferry/cluster"
	"github.com/ferryvpn/ferry/cluster/admit"
	"github.com/ferryvpn/ferry/cluster/pki"
	"github.com/ferryvpn/ferry/cluster/seal"
	"github.com/ferryvpn/ferry/cmd/internal/api"
	"github.com/ferryvpn/ferry/cmd/internal/assembly"
	"github.com/ferryvpn/ferry/cmd/internal/config"
	"github.com/ferryvpn/ferry/cmd/internal/wire"
	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/collectors"
	"golang.org/x/net/netutil"
)

// Bounds of the start-up and shutdown of a node.
const (
	publishTimeout     = 30 * time.Second // first start: wait for leadership, store the CA
	shutdownTimeout    = 10 * time.Second // in-flight requests finish within it
	catchUpLogInterval = 5 * time.Second  // progress lines while a node catches up
)

// running is a started node, handed to serveOptions.started.
type running struct {
	cfg         *config.Config
	log         *slog.Logger
	node        *cluster.Node
	apiAddr     net.Addr
	metricsAddr net.Addr
	svc         *assembly.Services
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
	ccfg.Authorize = api.ClusterAuthorizer(refs.admit.Load, refs.sessions.Load)
	// Members renew their short-lived certificates over the cluster port;
	// the leader signs (admit), this node keeps its new files.
	ccfg.Renew = func(ctx context.Context, id string, csr []byte) ([]byte, error) {
		a := refs.admit.Load()
		if a == nil {
			return nil, errors.New("this node is starting")
		}
		return a.Renew(ctx, id, csr)
	}
	ccfg.OnRenewed = func(certPEM, keyPEM []byte) error { return keepNodeCert(cfg, certPEM, keyPEM) }
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
	admitter, err := admit.New(admit.Config{
		Node: node, MasterKey: master, APINames: cfg.APINames(), Logger: log,
		Record: api.AdmitRecorder(func() audit.Recorder {
			if l := refs.audit.Load(); l != nil {
				return l
			}
			return nil
		}),
	})
	if err != nil {
		return err
	}
	refs.admit.Store(admitter)

	// 4. The cluster CA in the store, on the first start of the first node.
	if err := publishCA(ctx, cfg, node, master, log); err != nil {
		return err
	}

	if opts.member != nil {
		if err := opts.member(ctx, &running{cfg: cfg, log: log, node: node}); err != nil {
			return err
		}
	}

	// 5. The HTTPS API and the metrics listener, serving at once: while the
	// node catches up and its services start, /healthz says it is alive,
	// /readyz says what it waits for, and other requests get 503.
	var handler atomic.Pointer[http.Handler]
	starting := api.Starting(node)
	handler.Store(&starting)
	apiLn, err := net.Listen("tcp", cfg.API.ListenAddr)
	if err != nil {
		return fmt.Errorf("api.listen_addr: %w", err)
	}
	// A cap on open API connections: beyond it, new ones wait in the
	// kernel's backlog instead of exhausting file descriptors.
	apiLn = netutil.LimitListener(apiLn, maxAPIConns)
	metricsLn, err := net.Listen("tcp", cfg.Metrics.ListenAddr)
	if err != nil {
		apiLn.Close()
		return fmt.Errorf("metrics.listen_addr: %w", err)
	}
	errLog := slog.NewLogLogger(log.Handler(), slog.LevelDebug) // TLS probes by load balancers are noise
	apiSrv := &http.Server{
		Handler:           http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) { (*handler.Load()).ServeHTTP(w, r) }),
		TLSConfig:         apiTLS(apiCert),
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
		ReadTimeout:       30 * time.Second,
		WriteTimeout:      30 * time.Second,
		IdleTimeout:       time.Minute,
		ErrorLog:          errLog,
	}
	errc := make(chan error, 2)
	go func() { errc <- fmt.Errorf("api server: %w", apiSrv.ServeTLS(apiLn, "", "")) }()
	go func() { errc <- fmt.Errorf("metrics server: %w", metricsSrv.Serve(metricsLn)) }()
	// Shut down in reverse: stop taking requests, then close the services,
	// then leave the cluster node to the deferred Close.
	var stopOnce sync.Once
	stopServing := func() {
		stopOnce.Do(func() {
			sctx, cancel := context.WithTimeout(context.Background(), shutdownTimeout)
			defer cancel()
			if err := apiSrv.Shutdown(sctx); err != nil {
				log.Warn("api server shutdown", "err", err)
			}
			if err := metricsSrv.Shutdown(sctx); err != nil {
				log.Warn("metrics server shutdown", "err", err)
			}
		})
	}
	defer stopServing()
	log.Info("listening", "node_id", cfg.NodeID, "cluster_addr", node.Addr(),
		"api_addr", apiLn.Addr().String(), "metrics_addr", metricsLn.Addr().String())

	// 6. Catch up with the cluster before reading its secrets: however
	// long the leader takes to reach this node (a restart after a crash
	// meets the leader in its back-off), the node waits and logs why,
	// and a signal still stops it.
	if err := node.CatchUp(ctx, catchUpLogInterval); err != nil {
		if ctx.Err() != nil {
			log.Info("shutting down before catching up", "reason", context.Cause(ctx))
			return nil
		}
		return err
	}

	// 7. The domain services: audit, sign-in, profiles; then the full API.
	svc, err := startServices(ctx, cfg, node, master, log, reg)
	if err != nil {
		return err
	}
	defer func() {
		stopServing()
		svc.Close()
	}()
	refs.sessions.Store(svc.Sessions)
	refs.audit.Store(svc.Audit)
	if leaf := ccfg.Certificate.Leaf; leaf != nil {
		if err := admitter.NoteCert(ctx, cfg.NodeID, leaf); err != nil {
			log.Warn("recording this node's certificate expiry failed", "err", err)
		}
	}
	pctx, stopPeers := context.WithCancel(context.Background())
	peers.start(pctx, svc.Audit)
	defer peers.wait()
	defer stopPeers()
	acfg, err := svc.API(api.Config{Node: node, MasterKey: master, Admit: admitter, Settings: joinSettings(cfg), Logger: log,
		Organization: cfg.Organization})
	if err != nil {
		return err
	}
	full, err := api.New(acfg)
	if err != nil {
		return err
	}
	handler.Store(&full)
	log.Info("serving", "node_id", cfg.NodeID, "cluster_addr", node.Addr(),
		"api_addr", apiLn.Addr().String(), "metrics_addr", metricsLn.Addr().String())

	// 8. Whatever the command does once the node serves; then wait.
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
	return runErr
}

// publishCA stores the cluster CA, its key sealed, when this node has the CA
// key file and the store holds no CA yet.
func publishCA(ctx context.Context, cfg *config.Config, node *cluster.Node, master seal.Key, log *slog.Logger) error {
	if cfg.TLS.CAKeyFile == "" {
		return nil
	}
	// A restarted node finds the CA in its local state: no quorum needed.
	_, err := admit.CACert(ctx, node, cluster.Local)
	if err == nil {
		return removeCAKey(cfg, log)
	}
	if !errors.Is(err, admit.ErrNoCA) {
		return err
	}
	ca, err := cfg.LoadCA()
	if errors.Is(err, fs.ErrNotExist) {
		// Deleted once sealed into the store: a restart that rebuilds
		// its state from the Raft log finds the CA there again.
		log.Warn("the CA key file is gone (it is deleted once sealed into the store); the CA comes from the replicated store", "file", cfg.TLS.CAKeyFile)
		return nil
	}
	if err != nil {
		return err
	}
	ctx, cancel := context.WithTimeout(ctx, publishTimeout)
	defer cancel()
	if err := node.WaitLeader(ctx); err != nil {
		return fmt.Errorf("storing the cluster CA: %w", err)
	}
	stored, err := admit.PublishCA(ctx, node, master, ca)
	if err != nil {
		return fmt.Errorf("storing the cluster CA: %w", err)
	}
	if stored {
		log.Info("stored the cluster CA, its key sealed", "file", cfg.TLS.CAKeyFile)
	}
	return removeCAKey(cfg, log)
}

// removeCAKey deletes the CA key file once the key is sealed in the store:
// a copy in clear on one machine's disk is one more thing to steal.
func removeCAKey(cfg *config.Config, log *slog.Logger) error {
	err := os.Remove(cfg.TLS.CAKeyFile)
	switch {
	case err == nil:
		log.Info("deleted the CA key file: the key is sealed in the cluster store", "file", cfg.TLS.CAKeyFile)
	case !errors.Is(err, fs.ErrNotExist):
		return fmt.Errorf("deleting the CA key file %s after sealing it into the store: %w", cfg.TLS.CAKeyFile, err)
	}
	return nil
}

// maxAPIConns caps the API listener's open connections.
const maxAPIConns = 4096

// apiTLS is the API's TLS configuration: TLS 1.2 offers AEAD suites with
// forward secrecy only (TLS 1.3's are all AEAD).
func apiTLS(cert tls.Certificate) *tls.Config {
	return &tls.Config{
		MinVersion:   tls.VersionTLS12,
		Certificates: []tls.Certificate{cert},
		CipherSuites: []uint16{
			tls.TLS_ECDHE_ECDSA_WITH_AES_128_GCM_SHA256, tls.TLS_ECDHE_ECDSA_WITH_AES_256_GCM_SHA384,
			tls.TLS_ECDHE_ECDSA_WITH_CHACHA20_POLY1305_SHA256,
			tls.TLS_ECDHE_RSA_WITH_AES_128_GCM_SHA256, tls.TLS_ECDHE_RSA_WITH_AES_256_GCM_SHA384,
			tls.TLS_ECDHE_RSA_WITH_CHACHA20_POLY1305_SHA256,
		},
	}
}

// keepNodeCert writes a renewed node certificate and key over the node's
// files, the key first, each replaced atomically.
func keepNodeCert(cfg *config.Config, certPEM, keyPEM []byte) error {
	if err := pki.WriteFile(cfg.TLS.KeyFile, keyPEM, 0o600); err != nil {
		return err
	}
	return pki.WriteFile(cfg.TLS.CertFile, certPEM, 0o644)
}

// joinSettings are what a joining node's config takes from this one.
func joinSettings(cfg *config.Config) wire.JoinSettings {
	return wire.JoinSettings{
		PublicURL: cfg.API.PublicURL, APINames: cfg.API.Names,
		OIDCIssuer: cfg.OIDC.Issuer, OIDCClientID: cfg.OIDC.ClientID, OIDCScopes: cfg.OIDC.Scopes,
		OIDCUserIDClaim: cfg.OIDC.UserIDClaim, OIDCEmailClaim: cfg.OIDC.EmailClaim, OIDCNameClaim: cfg.OIDC.NameClaim,
		OIDCGroupsClaim: cfg.OIDC.GroupsClaim, OIDCAllowedEmailDomains: cfg.OIDC.AllowedEmailDomains,
		OIDCRequiredGroups: cfg.OIDC.RequiredGroups, AdminGroups: cfg.Sessions.AdminGroups, ProfilesPool: cfg.Profiles.Pool, ProfilesPool6: cfg.Profiles.Pool6,
	}
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
