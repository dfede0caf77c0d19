package main

import (
	"context"
	"crypto/tls"
	"crypto/x509"
	"errors"
	"fmt"
	"log/slog"
	"net"
	"net/netip"
	"net/url"
	"os"
	"strconv"
	"strings"
	"sync"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"golang.zx2c4.com/wireguard/wgctrl/wgtypes"

	"github.com/ferryvpn/ferry/audit"
	"github.com/ferryvpn/ferry/authn"
	"github.com/ferryvpn/ferry/authn/scim"
	"github.com/ferryvpn/ferry/authn/signals"
	"github.com/ferryvpn/ferry/cluster"
	"github.com/ferryvpn/ferry/cluster/seal"
	"github.com/ferryvpn/ferry/cmd/internal/api"
	"github.com/ferryvpn/ferry/cmd/internal/config"
	"github.com/ferryvpn/ferry/cmd/internal/wgkey"
	"github.com/ferryvpn/ferry/profiles"
	"github.com/ferryvpn/ferry/tunnel"
)

// Bounds of the services' start-up and of their periodic housekeeping.
const (
	secretsTimeout   = 30 * time.Second // first start: create the audit and WireGuard keys
	janitorInterval  = time.Minute
	janitorTimeout   = 30 * time.Second
	dataPlaneTimeout = 30 * time.Second
)

// services are the domain components of a node, built on its cluster node.
type services struct {
	audit    *audit.Log
	signer   *audit.Signer
	checkpts *audit.Checkpointer
	exporter *audit.Exporter
	trimmer  *audit.Trimmer // nil without sinks: nothing would be trimmed
	sessions *authn.Sessions
	users    *authn.Users
	mfa      *authn.MFA
	flow     *authn.Flow        // nil without oidc.issuer
	reval    *authn.Revalidator // nil without oidc.issuer
	profiles *profiles.Store
	scim     *scim.Service     // nil unless scim.enabled
	signals  *signals.Receiver // nil without back-channel logout or ssf
	wgKey    wgtypes.Key
	server   profiles.Server
	gateway  *tunnel.Gateway // nil while the data plane is off

	cancel context.CancelFunc
	wg     sync.WaitGroup
}

// startServices builds the services in dependency order: audit first (the
// others record into it), then sign-in, then profiles.
func startServices(ctx context.Context, cfg *config.Config, node *cluster.Node, master seal.Key, log *slog.Logger, reg prometheus.Registerer) (_ *services, err error) {
	s := &services{}
	bg, cancel := context.WithCancel(context.Background())
	s.cancel = cancel
	defer func() {
		if err != nil {
			s.close(log)
		}
	}()

	// 1. Cluster secrets: the audit signing key and the WireGuard key.
	sctx, scancel := context.WithTimeout(ctx, secretsTimeout)
	defer scancel()
	if err := node.WaitLeader(sctx); err != nil {
		return nil, fmt.Errorf("waiting for a leader to load cluster secrets: %w", err)
	}
	if s.signer, err = audit.LoadSigner(sctx, node, master); err != nil {
		return nil, fmt.Errorf("loading the audit signing key: %w", err)
	}
	if s.wgKey, err = wgkey.Ensure(sctx, node, master); err != nil {
		return nil, fmt.Errorf("loading the wireguard key: %w", err)
	}

	// 2. The audit log, its checkpoints and its export.
	if s.audit, err = audit.New(audit.Config{Store: node, Node: cfg.NodeID, Logger: log, Registerer: reg}); err != nil {
		return nil, err
	}
	if s.checkpts, err = audit.NewCheckpointer(audit.CheckpointerConfig{
		Store: node, Signer: s.signer, Every: uint64(cfg.Audit.CheckpointEvery),
		Interval: cfg.Audit.CheckpointInterval.D(), Logger: log,
	}); err != nil {
		return nil, err
	}
	sinks, err := buildSinks(cfg.Audit)
	if err != nil {
		return nil, err
	}
	if len(sinks) > 0 {
		if s.exporter, err = audit.NewExporter(audit.ExporterConfig{Store: node, Sinks: sinks, Logger: log, Registerer: reg}); err != nil {
			return nil, err
		}
	}
	// Retention: the leader trims what every network sink has confirmed
	// (file sinks are node-local, with cursors outside the cluster).
	var names []string
	for _, sk := range sinks {
		if _, local := sk.(audit.NodeLocal); !local {
			names = append(names, sk.Name())
		}
	}
	if len(names) > 0 {
		if s.trimmer, err = audit.NewTrimmer(audit.TrimmerConfig{
			Store: node, Recorder: s.audit, Logger: log, Registerer: reg,
			Policy: audit.RetentionPolicy{Retention: cfg.Audit.Retention.D(), Sinks: names},
		}); err != nil {
			return nil, err
		}
	}

	// 3. Sign-in: users, MFA, sessions and, with an identity provider, the flow.
	s.users = authn.NewUsers(node, time.Now, s.audit)
	if s.mfa, err = authn.NewMFA(authn.MFAConfig{Store: node, Key: master, Recorder: s.audit, Logger: log}); err != nil {
		return nil, err
	}
	scfg := cfg.SessionConfig()
	scfg.Store, scfg.Recorder, scfg.Logger = node, s.audit, log
	if s.sessions, err = authn.NewSessions(scfg); err != nil {
		return nil, err
	}
	if cfg.OIDC.Issuer != "" {
		ocfg, err := cfg.OIDCConfig()
		if err != nil {
			return nil, err
		}
		// Revalidation with the refresh token of each sign-in; the leader
		// redeems them (step 6).
		if s.reval, err = authn.NewRevalidator(authn.RevalidatorConfig{
			OIDC: ocfg, Store: node, Users: s.users, Recorder: s.audit, Key: master, Logger: log,
			Interval: cfg.OIDC.RevalidateInterval.D(), Grace: cfg.OIDC.RevalidateGrace.D(),
		}); err != nil {
			return nil, err
		}
		if s.flow, err = authn.NewFlow(authn.FlowConfig{
			OIDC: ocfg, Store: node, MFA: s.mfa, Sessions: s.sessions, Users: s.users, Recorder: s.audit, Logger: log,
			Revalidator: s.reval,
		}); err != nil {
			return nil, err
		}
	} else {
		log.Warn("no oidc.issuer configured: sign-in is off")
	}

	// 4. Profiles and the configuration issued clients receive.
	if s.profiles, err = profiles.New(profiles.Config{
		Cluster: node, Pool: cfg.PoolPrefix(), Pool6: cfg.Pool6Prefix(), Recorder: s.audit, Logger: log,
		AssignByVerifiedEmail: cfg.Profiles.AssignByVerifiedEmail,
		Policy:                s.sessions.Policy(), Users: s.users,
	}); err != nil {
		return nil, err
	}
	s.server = profiles.Server{PublicKey: s.wgKey.PublicKey().String(), Endpoint: wireguardEndpoint(cfg), MTU: cfg.WireGuard.MTU,
		Addresses: []netip.Addr{s.profiles.ServerAddr()}}
	if a := s.profiles.ServerAddr6(); a.IsValid() {
		s.server.Addresses = append(s.server.Addresses, a)
	}

	// 4b. What the identity provider pushes: SCIM, back-channel logout,
	// Shared Signals. Each disables and revokes through profiles.
	if err := s.startIdP(cfg, node, master, log); err != nil {
		return nil, err
	}

	// 5. The data plane, when enabled.
	if cfg.WireGuard.Enabled {
		if err := tunnel.Available(); err != nil {
			return nil, fmt.Errorf("wireguard.enabled: the data plane cannot run here: %w", err)
		}
		pool := s.profiles.Pool()
		if s.gateway, err = tunnel.New(tunnel.Config{
			Cluster: node, PrivateKey: s.wgKey, Address: netip.PrefixFrom(s.profiles.ServerAddr(), pool.Bits()),
			Pool: pool, Pool6: s.profiles.Pool6(), Recorder: s.audit, Logger: log, Registerer: reg,
			Interface: cfg.WireGuard.Interface, ListenPort: cfg.WireGuard.ListenPort, MTU: cfg.WireGuard.MTU,
		}); err != nil {
			return nil, fmt.Errorf("starting the data plane: %w", err)
		}
		s.wg.Add(1)
		go func() {
			defer s.wg.Done()
			if err := s.gateway.Run(bg); err != nil {
				log.Error("data plane stopped", "err", err)
			}
		}()
		log.Info("data plane up", "interface", cfg.WireGuard.Interface, "listen_port", cfg.WireGuard.ListenPort, "kernel", s.gateway.Kernel())
	}

	// 6. The entitlement watcher: every change to users or profiles is
	// re-decided and enforced on live peers (the leader writes).
	s.wg.Add(1)
	go func() {
		defer s.wg.Done()
		if err := s.profiles.RunEntitlements(bg); err != nil {
			log.Error("entitlement watcher stopped", "err", err)
		}
	}()
	if s.reval != nil {
		s.wg.Add(1)
		go func() {
			defer s.wg.Done()
			s.reval.Run(bg)
		}()
	}

	// 7. Housekeeping on the leader: expired peers, sessions and sign-ins.
	s.wg.Add(1)
	go func() {
		defer s.wg.Done()
		s.janitor(bg, node, log)
	}()
	return s, nil
}

// apiUsers is what the HTTP API needs of the services.
func (s *services) apiUsers(nodeID string) *api.Users {
	u := &api.Users{Sessions: s.sessions, Users: s.users, MFA: s.mfa, Profiles: s.profiles, Server: s.server, NodeID: nodeID}
	if s.flow != nil {
		u.SignIn = s.flow.Handler()
	}
	return u
}

func (s *services) janitor(ctx context.Context, node *cluster.Node, log *slog.Logger) {
	t := time.NewTicker(janitorInterval)
	defer t.Stop()
	for {
		select {
		case <-ctx.Done():
			return
		case <-t.C:
		}
		if !node.IsLeader() {
			continue
		}
		jctx, cancel := context.WithTimeout(ctx, janitorTimeout)
		sweeps := map[string]func(context.Context) (int, error){"peers": s.profiles.Sweep, "sessions": s.sessions.Sweep}
		if s.signals != nil {
			sweeps["idp token claims"] = s.signals.Sweep
		}
		if s.flow != nil {
			sweeps["sign-ins"] = s.flow.Sweep
		}
		for what, sweep := range sweeps {
			if n, err := sweep(jctx); err != nil {
				log.Warn("janitor failed", "what", what, "err", err)
			} else if n > 0 {
				log.Info("janitor removed old records", "what", what, "count", n)
			}
		}
		cancel()
	}
}

// close stops the services in reverse order of their start.
func (s *services) close(log *slog.Logger) {
	s.cancel()
	if s.gateway != nil {
		if err := s.gateway.Close(); err != nil {
			log.Warn("closing data plane", "err", err)
		}
	}
	s.wg.Wait()
	if s.trimmer != nil {
		s.trimmer.Close()
	}
	if s.exporter != nil {
		if err := s.exporter.Close(); err != nil {
			log.Warn("closing audit exporter", "err", err)
		}
	}
	if s.checkpts != nil {
		s.checkpts.Close()
	}
	if s.audit != nil {
		if err := s.audit.Close(); err != nil {
			log.Warn("closing audit log", "err", err)
		}
	}
}

// wireguardEndpoint is what clients dial: wireguard.endpoint, else the
// public URL's host on the WireGuard port.
func wireguardEndpoint(cfg *config.Config) string {
	if cfg.WireGuard.Endpoint != "" {
		return cfg.WireGuard.Endpoint
	}
	host := "127.0.0.1"
	if u, err := url.Parse(cfg.API.PublicURL); err == nil && u.Hostname() != "" {
		host = u.Hostname()
	}
	return net.JoinHostPort(host, strconv.Itoa(cfg.WireGuard.ListenPort))
}

// buildSinks turns the configured audit sinks into audit.Sinks.
func buildSinks(ac config.Audit) ([]audit.Sink, error) {
	var out []audit.Sink
	host := ac.Hostname
	if host == "" {
		host = fqdn()
	}
	sdid := ""
	if ac.EnterpriseNumber > 0 {
		sdid = "ferry@" + strconv.Itoa(ac.EnterpriseNumber)
	}
	for i, c := range ac.Sinks {
		f, ok := audit.FormatByName(c.Format)
		if !ok {
			return nil, fmt.Errorf("audit.sinks[%d].format: unknown format %q", i, c.Format)
		}
		var sink audit.Sink
		var err error
		switch c.Type {
		case "file":
			sink, err = audit.NewFileSink(audit.FileSinkConfig{Name: c.Name, Path: c.Path, Format: f, MaxBytes: c.MaxBytes, MaxFiles: c.MaxFiles})
		case "syslog":
			var tc *tls.Config
			if c.CAFile != "" {
				if tc, err = sinkTLS(c); err != nil {
					return nil, fmt.Errorf("audit.sinks[%d]: %w", i, err)
				}
			}
			sink, err = audit.NewSyslogSink(audit.SyslogSinkConfig{Name: c.Name, Addr: c.Addr, TLS: tc, Format: &audit.Syslog{Inner: f, Hostname: host, SDID: sdid},
				ResendRecords: c.ResendRecords, ResendAge: c.ResendAge.D()})
		case "relp":
			var tc *tls.Config
			if c.CAFile != "" {
				if tc, err = sinkTLS(c); err != nil {
					return nil, fmt.Errorf("audit.sinks[%d]: %w", i, err)
				}
			}
			sink, err = audit.NewRELPSink(audit.RELPSinkConfig{Name: c.Name, Addr: c.Addr, TLS: tc, Format: &audit.Syslog{Inner: f, Hostname: host, SDID: sdid}})
		case "hec":
			var tc *tls.Config
			if c.CAFile != "" || c.CertFile != "" {
				if tc, err = sinkTLS(c); err != nil {
					return nil, fmt.Errorf("audit.sinks[%d]: %w", i, err)
				}
			}
			sink, err = audit.NewHECSink(audit.HECSinkConfig{Name: c.Name, URL: c.URL, TokenFile: c.TokenFile, Format: f, Ack: c.Ack, Index: c.Index, TLS: tc,
				SourceType: hecSourceType(f), Host: host})
		default:
			err = fmt.Errorf("unknown type %q", c.Type)
		}
		if err != nil {
			return nil, fmt.Errorf("audit.sinks[%d]: %w", i, err)
		}
		out = append(out, sink)
	}
	return out, nil
}

// fqdn returns this machine's fully qualified host name, or its short
// name when the resolver knows no longer one.
func fqdn() string {
	h, err := os.Hostname()
	if err != nil {
		return ""
	}
	if !strings.Contains(h, ".") {
		if cname, err := net.LookupCNAME(h); err == nil && strings.Contains(strings.TrimSuffix(cname, "."), ".") {
			return strings.TrimSuffix(cname, ".")
		}
	}
	return h
}

// hecSourceType names the HEC sourcetype per format, so a SIEM parses
// JSON lines and OCSF with different rules.
func hecSourceType(f audit.Format) string {
	return "ferry:audit:" + f.Name()
}

func sinkTLS(c config.Sink) (*tls.Config, error) {
	tc := &tls.Config{MinVersion: tls.VersionTLS12, ServerName: c.ServerName}
	if c.CAFile != "" {
		pem, err := os.ReadFile(c.CAFile)
		if err != nil {
			return nil, fmt.Errorf("ca_file: %w", err)
		}
		pool := x509.NewCertPool()
		if !pool.AppendCertsFromPEM(pem) {
			return nil, errors.New("ca_file: no PEM certificate in " + c.CAFile)
		}
		tc.RootCAs = pool
	}
	if c.CertFile != "" {
		cert, err := tls.LoadX509KeyPair(c.CertFile, c.KeyFile)
		if err != nil {
			return nil, fmt.Errorf("cert_file/key_file: %w", err)
		}
		tc.Certificates = []tls.Certificate{cert}
	}
	return tc, nil
}
