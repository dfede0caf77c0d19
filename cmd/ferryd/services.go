package main

import (
	"context"
	"fmt"
	"log/slog"
	"net"
	"net/netip"
	"net/url"
	"os"
	"path/filepath"
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
	"github.com/ferryvpn/ferry/report"
	"github.com/ferryvpn/ferry/tunnel"
	"github.com/ferryvpn/ferry/tunnel/capture"
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
	trimmer  *audit.Trimmer
	// sinkStore holds the network sinks (cluster configuration);
	// netSpecs are the configuration file's, imported once.
	sinkStore *audit.SinkStore
	sinkOpts  audit.SinkOptions
	netSpecs  []audit.SinkSpec
	sessions  *authn.Sessions
	users     *authn.Users
	mfa       *authn.MFA
	flow      *authn.Flow        // nil without oidc.issuer
	reval     *authn.Revalidator // nil without oidc.issuer
	profiles  *profiles.Store
	scim      *scim.Service     // nil unless scim.enabled
	signals   *signals.Receiver // nil without back-channel logout or ssf
	wgKey     wgtypes.Key
	server    profiles.Server
	gateway   *tunnel.Gateway // nil while the data plane is off
	reports   *report.Rollup
	capture   *capture.Service

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
	// Sinks: file sinks run on every node from its own journal; network
	// sinks are cluster configuration (the configuration file's are
	// imported once, below) and run wherever the leader is.
	fileSinks, netSpecs, sinkOpts, err := buildSinks(cfg.Audit)
	if err != nil {
		return nil, err
	}
	s.sinkStore, s.sinkOpts = &audit.SinkStore{Node: node, Key: master}, sinkOpts
	if s.exporter, err = audit.NewExporter(audit.ExporterConfig{Store: node, Sinks: fileSinks, Stored: s.sinkStore, SinkOptions: sinkOpts,
		Logger: log, Registerer: reg}); err != nil {
		return nil, err
	}
	s.netSpecs = netSpecs
	// Retention: the leader trims what every network sink has confirmed
	// (file sinks are node-local, with cursors outside the cluster).
	if s.trimmer, err = audit.NewTrimmer(audit.TrimmerConfig{
		Store: node, Recorder: s.audit, Logger: log, Registerer: reg,
		Policy: audit.RetentionPolicy{Retention: cfg.Audit.Retention.D(), StoredSinks: true},
	}); err != nil {
		return nil, err
	}

	// 3. Sign-in: users, MFA, sessions and, with an identity provider, the flow.
	// One assembly (authn.NewStack), as the test harnesses build it; with
	// an identity provider, revalidation with the refresh token of each
	// sign-in, which the leader redeems (step 6).
	stack := authn.StackConfig{Store: node, Key: master, Recorder: s.audit, Logger: log, Session: cfg.SessionConfig(), Organization: cfg.Organization,
		// Authenticator apps name the organisation and server; a browser
		// sign-in ends on the portal, where it starts.
		MFAIssuer: mfaIssuer(cfg), Home: api.PathPortal}
	if cfg.OIDC.Issuer != "" {
		ocfg, err := cfg.OIDCConfig()
		if err != nil {
			return nil, err
		}
		stack.OIDC, stack.Revalidate = &ocfg, true
		stack.RevalidateInterval, stack.RevalidateGrace = cfg.OIDC.RevalidateInterval.D(), cfg.OIDC.RevalidateGrace.D()
	} else {
		log.Warn("no oidc.issuer configured: sign-in is off")
	}
	st, err := authn.NewStack(stack)
	if err != nil {
		return nil, err
	}
	s.users, s.mfa, s.sessions, s.reval, s.flow = st.Users, st.MFA, st.Sessions, st.Revalidator, st.Flow

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
	// Every node runs the same configuration: with the DNS forwarder on,
	// issued profiles resolve through it.
	s.server.DNS = cfg.WireGuard.Enabled && cfg.WireGuard.DNS.Enabled

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
		upstreams, err := cfg.WireGuard.DNS.DNSUpstreams()
		if err != nil {
			return nil, err
		}
		if s.gateway, err = tunnel.New(tunnel.Config{
			Cluster: node, PrivateKey: s.wgKey, Address: netip.PrefixFrom(s.profiles.ServerAddr(), pool.Bits()),
			Pool: pool, Pool6: s.profiles.Pool6(), Recorder: s.audit, Logger: log, Registerer: reg,
			Interface: cfg.WireGuard.Interface, ListenPort: cfg.WireGuard.ListenPort, MTU: cfg.WireGuard.MTU,
			FlowInterval: cfg.WireGuard.FlowInterval.D(), FlowActiveTimeout: cfg.WireGuard.FlowActiveTimeout.D(),
			FlowMaxRecords: cfg.WireGuard.FlowMaxRecords,
			DNS: tunnel.DNSConfig{Enabled: cfg.WireGuard.DNS.Enabled, Upstreams: upstreams, Grace: cfg.WireGuard.DNS.Grace.D(),
				MaxTTL: cfg.WireGuard.DNS.MaxTTL.D(), RefuseOthers: cfg.WireGuard.DNS.RefuseOthers},
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

	// 5b. Packet capture: this node's part of every capture (none without
	// a data plane) and the cluster-wide captures it runs.
	var plane capture.Local
	if s.gateway != nil {
		plane = s.gateway
	}
	mfa := s.mfa
	if s.capture, err = capture.New(capture.Config{
		Node: node, Local: plane, Peers: s.profiles, Recorder: s.audit, Logger: log,
		StepUp: func(ctx context.Context, a audit.Actor, src audit.Source, code string) error {
			return mfa.Verify(ctx, authn.Identity{UserID: a.UserID, Email: a.Email, Groups: a.Groups}, code,
				authn.Source{Addr: src.Addr, Port: src.Port, UserAgent: src.UserAgent})
		},
		Caps: capture.Caps{
			MaxDuration: cfg.Capture.MaxDuration.D(), MaxBytes: cfg.Capture.MaxBytes, HeaderSnaplen: cfg.Capture.HeaderSnaplen,
			AllowPayload: cfg.Capture.AllowPayload, MaxConcurrent: cfg.Capture.MaxConcurrent,
		},
	}); err != nil {
		return nil, fmt.Errorf("starting packet capture: %w", err)
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
	// 8. The configuration file's network sinks, imported once into the
	// cluster by the first leader that sees them.
	if len(s.netSpecs) > 0 {
		s.wg.Add(1)
		go func() {
			defer s.wg.Done()
			s.importSinks(bg, node, log)
		}()
	}

	// 9. The reports' rollup: node-local, derived from this node's journal.
	if s.reports, err = report.Open(report.Config{Path: filepath.Join(cfg.DataDir, "reports.db"), Journal: node, Logger: log}); err != nil {
		return nil, err
	}
	s.wg.Add(1)
	go func() {
		defer s.wg.Done()
		s.reports.Run(bg)
	}()
	return s, nil
}

// importSinks stores the configuration file's network sinks in the
// cluster once, on the leader; afterwards the cluster is the truth.
func (s *services) importSinks(ctx context.Context, node *cluster.Node, log *slog.Logger) {
	t := time.NewTicker(time.Second)
	defer t.Stop()
	for {
		if node.IsLeader() {
			ictx, cancel := context.WithTimeout(ctx, 30*time.Second)
			n, err := s.sinkStore.ImportOnce(ictx, s.netSpecs)
			cancel()
			if err == nil {
				if n > 0 {
					log.Info("imported the configuration file's network audit sinks into the cluster", "count", n)
				}
				return
			}
			log.Warn("importing network audit sinks failed; retrying", "err", err)
		}
		select {
		case <-ctx.Done():
			return
		case <-t.C:
		}
	}
}

// apiAudit is what the HTTP API's audit endpoints need.
func (s *services) apiAudit() *api.Audit {
	return &api.Audit{Signer: s.signer, Recorder: s.audit, Reports: s.reports,
		Sinks: &api.AuditSinks{Store: s.sinkStore, Options: s.sinkOpts, States: s.exporter.Sinks}}
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
	if s.capture != nil {
		s.capture.Close()
	}
	if s.gateway != nil {
		if err := s.gateway.Close(); err != nil {
			log.Warn("closing data plane", "err", err)
		}
	}
	s.wg.Wait()
	if s.reports != nil {
		if err := s.reports.Close(); err != nil {
			log.Warn("closing report rollup", "err", err)
		}
	}
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

// buildSinks turns the configured audit sinks into the node-local file
// sinks and the specs of the network sinks, and returns the options
// network sinks are built with (host name, SD-ID).
func buildSinks(ac config.Audit) ([]audit.Sink, []audit.SinkSpec, audit.SinkOptions, error) {
	var files []audit.Sink
	var specs []audit.SinkSpec
	opts := audit.SinkOptions{Hostname: ac.Hostname}
	if opts.Hostname == "" {
		opts.Hostname = fqdn()
	}
	if ac.EnterpriseNumber > 0 {
		opts.SDID = "ferry@" + strconv.Itoa(ac.EnterpriseNumber)
	}
	for i, c := range ac.Sinks {
		f, ok := audit.FormatByName(c.Format)
		if !ok {
			return nil, nil, opts, fmt.Errorf("audit.sinks[%d].format: unknown format %q", i, c.Format)
		}
		if c.Type == "file" {
			sink, err := audit.NewFileSink(audit.FileSinkConfig{Name: c.Name, Path: c.Path, Format: f, MaxBytes: c.MaxBytes, MaxFiles: c.MaxFiles})
			if err != nil {
				return nil, nil, opts, fmt.Errorf("audit.sinks[%d]: %w", i, err)
			}
			files = append(files, sink)
			continue
		}
		spec := audit.SinkSpec{Name: c.Name, Type: c.Type, Format: c.Format, Addr: c.Addr, URL: c.URL, Ack: c.Ack, Index: c.Index,
			ServerName: c.ServerName, ResendRecords: c.ResendRecords, ResendAge: c.ResendAge.D()}
		for _, p := range []struct {
			dst   *string
			path  string
			field string
		}{{&spec.CA, c.CAFile, "ca_file"}, {&spec.ClientCert, c.CertFile, "cert_file"}, {&spec.ClientKey, c.KeyFile, "key_file"}, {&spec.Token, c.TokenFile, "token_file"}} {
			if p.path == "" {
				continue
			}
			b, err := os.ReadFile(p.path)
			if err != nil {
				return nil, nil, opts, fmt.Errorf("audit.sinks[%d].%s: %w", i, p.field, err)
			}
			*p.dst = string(b)
		}
		spec.Token = strings.TrimSpace(spec.Token)
		if err := spec.Validate(); err != nil {
			return nil, nil, opts, fmt.Errorf("audit.sinks[%d]: %w", i, err)
		}
		specs = append(specs, spec)
	}
	return files, specs, opts, nil
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

// mfaIssuer is the name authenticator apps show for ferry's codes: the
// organisation and the server, as "Acme (vpn.example.com)", so a person
// with several can tell them apart. Colons, which the otpauth label
// reserves, become spaces.
func mfaIssuer(cfg *config.Config) string {
	name := cfg.Organization
	if name == "" {
		name = authn.DefaultIssuer
	}
	if u, err := url.Parse(cfg.API.PublicURL); err == nil && u.Hostname() != "" {
		name += " (" + u.Hostname() + ")"
	}
	return strings.ReplaceAll(name, ":", " ")
}
