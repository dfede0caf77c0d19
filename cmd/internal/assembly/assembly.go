package assembly

import (
	"context"
	"fmt"
	"net/netip"
	"path/filepath"
	"sync"

	"golang.zx2c4.com/wireguard/wgctrl/wgtypes"

	"github.com/ferryvpn/ferry/audit"
	"github.com/ferryvpn/ferry/authn"
	"github.com/ferryvpn/ferry/authn/scim"
	"github.com/ferryvpn/ferry/authn/signals"
	"github.com/ferryvpn/ferry/cmd/internal/wgkey"
	"github.com/ferryvpn/ferry/profiles"
	"github.com/ferryvpn/ferry/report"
	"github.com/ferryvpn/ferry/tunnel"
	"github.com/ferryvpn/ferry/tunnel/capture"
)

// Services are a node's domain services, built by Start. The handles are
// for the HTTP API, the commands that wrap a node and tests; they stay
// valid until Close.
type Services struct {
	cfg Config

	Audit       *audit.Log
	Signer      *audit.Signer
	Checkpoints *audit.Checkpointer
	Exporter    *audit.Exporter
	Trimmer     *audit.Trimmer
	// SinkStore holds the network audit sinks (cluster configuration).
	SinkStore *audit.SinkStore

	Users    *authn.Users
	MFA      *authn.MFA
	Sessions *authn.Sessions
	// Flow and Revalidator are nil without SignIn.OIDC.
	Flow        *authn.Flow
	Revalidator *authn.Revalidator

	Profiles *profiles.Store
	// Server is what issued configurations name: the cluster's WireGuard
	// public key, the endpoint, the MTU and the node's tunnel addresses.
	Server profiles.Server
	// WireGuardKey is the cluster's WireGuard interface key.
	WireGuardKey wgtypes.Key

	// SCIM is nil unless IdP.SCIM is set; Signals nil unless IdP.Signals.
	SCIM    *scim.Service
	Signals *signals.Receiver

	// Gateway is nil while the data plane is off.
	Gateway *tunnel.Gateway
	Capture *capture.Service
	// PeerCounters serves this node's live WireGuard counters to the
	// other members and collects theirs (no peers without a data plane).
	PeerCounters *tunnel.PeerStatsService
	Reports      *report.Rollup

	cancel context.CancelFunc
	wg     sync.WaitGroup
	once   sync.Once
}

// Start builds a node's services in dependency order: the cluster secrets,
// audit (the others record into it), sign-in, profiles, what the identity
// provider pushes, the data plane, capture, the watchers and housekeeping,
// and the reports' rollup. ctx bounds the start only; the services run
// until Close. On error everything started is stopped.
func Start(ctx context.Context, cfg Config) (_ *Services, err error) {
	if err := cfg.Validate(); err != nil {
		return nil, err
	}
	cfg.setDefaults()
	node, log := cfg.Node, cfg.Logger
	s := &Services{cfg: cfg}
	bg, cancel := context.WithCancel(context.Background())
	s.cancel = cancel
	defer func() {
		if err != nil {
			s.Close()
		}
	}()

	// 1. Cluster secrets: the audit signing key and the WireGuard key.
	sctx, scancel := context.WithTimeout(ctx, cfg.SecretsTimeout)
	defer scancel()
	if err := node.WaitLeader(sctx); err != nil {
		return nil, fmt.Errorf("waiting for a leader to load cluster secrets: %w", err)
	}
	if s.Signer, err = audit.LoadSigner(sctx, node, cfg.MasterKey); err != nil {
		return nil, fmt.Errorf("loading the audit signing key: %w", err)
	}
	if s.WireGuardKey, err = wgkey.Ensure(sctx, node, cfg.MasterKey); err != nil {
		return nil, fmt.Errorf("loading the wireguard key: %w", err)
	}

	// 2. The audit log, its checkpoints, its export and its retention.
	// File sinks run on every node from its own journal; network sinks are
	// cluster configuration and run wherever the leader is.
	if s.Audit, err = audit.New(audit.Config{Store: node, Node: cfg.NodeID, Logger: log, Registerer: cfg.Registerer, Now: cfg.Now}); err != nil {
		return nil, err
	}
	if s.Checkpoints, err = audit.NewCheckpointer(audit.CheckpointerConfig{
		Store: node, Signer: s.Signer, Every: cfg.Audit.CheckpointEvery, Interval: cfg.Audit.CheckpointInterval, Logger: log,
	}); err != nil {
		return nil, err
	}
	s.SinkStore = &audit.SinkStore{Node: node, Key: cfg.MasterKey, Recorder: s.Audit}
	if s.Exporter, err = audit.NewExporter(audit.ExporterConfig{Store: node, Sinks: cfg.Audit.FileSinks, Stored: s.SinkStore,
		SinkOptions: cfg.Audit.SinkOptions, Logger: log, Registerer: cfg.Registerer}); err != nil {
		return nil, err
	}
	// Retention: the leader trims what every network sink has confirmed
	// (file sinks are node-local, with cursors outside the cluster), and
	// prunes flow records past their window, recording their daily totals
	// for the reports' rollups first.
	if s.Trimmer, err = audit.NewTrimmer(audit.TrimmerConfig{
		Store: node, Recorder: s.Audit, Logger: log, Registerer: cfg.Registerer,
		Policy:        audit.RetentionPolicy{Retention: cfg.Audit.Retention, StoredSinks: true},
		FlowRetention: cfg.Audit.FlowRetention, Summarize: report.Summarize,
	}); err != nil {
		return nil, err
	}

	// 3. Sign-in: users, MFA, sessions and, with an identity provider, the
	// flow and revalidation with the refresh token of each sign-in.
	si := cfg.SignIn
	st, err := authn.NewStack(authn.StackConfig{Store: node, Key: cfg.MasterKey, Recorder: s.Audit, Logger: log, Now: cfg.Now,
		Session: si.Session, OIDC: si.OIDC, Revalidate: si.OIDC != nil,
		RevalidateInterval: si.RevalidateInterval, RevalidateGrace: si.RevalidateGrace,
		Organization: si.Organization, MFAIssuer: si.MFAIssuer, Home: si.Home})
	if err != nil {
		return nil, err
	}
	s.Users, s.MFA, s.Sessions, s.Revalidator, s.Flow = st.Users, st.MFA, st.Sessions, st.Revalidator, st.Flow

	// 4. Profiles and the configuration issued clients receive.
	if s.Profiles, err = profiles.New(profiles.Config{
		Cluster: node, Pool: cfg.Profiles.Pool, Pool6: cfg.Profiles.Pool6, Recorder: s.Audit, Logger: log, Now: cfg.Now,
		AssignByVerifiedEmail: cfg.Profiles.AssignByVerifiedEmail,
		Policy:                s.Sessions.Policy(), Users: s.Users,
	}); err != nil {
		return nil, err
	}
	s.Server = profiles.Server{PublicKey: s.WireGuardKey.PublicKey().String(), Endpoint: cfg.Profiles.Endpoint, MTU: cfg.Profiles.MTU,
		Addresses: []netip.Addr{s.Profiles.ServerAddr()}}
	if a := s.Profiles.ServerAddr6(); a.IsValid() {
		s.Server.Addresses = append(s.Server.Addresses, a)
	}
	// Every node runs the same configuration: with the data plane's DNS
	// forwarder on, issued profiles resolve through it.
	s.Server.DNS = cfg.DataPlane != nil && cfg.DataPlane.DNS.Enabled

	// 5. What the identity provider pushes: SCIM, back-channel logout,
	// Shared Signals. Each disables and revokes through profiles, the one
	// domain path for taking access away.
	if c := cfg.IdP.SCIM; c != nil {
		sc := *c
		sc.Store, sc.Key, sc.Users, sc.Disabler, sc.Recorder, sc.Logger = node, cfg.MasterKey, s.Users, s.Profiles, s.Audit, log
		if s.SCIM, err = scim.New(sc); err != nil {
			return nil, err
		}
	}
	if c := cfg.IdP.Signals; c != nil {
		sg := *c
		sg.Store, sg.Users, sg.Sessions, sg.Revoker, sg.Recorder, sg.Logger = node, s.Users, s.Sessions, s.Profiles, s.Audit, log
		if s.Signals, err = signals.New(sg); err != nil {
			return nil, err
		}
	}

	// 6. The data plane, when enabled.
	if dp := cfg.DataPlane; dp != nil {
		if err := tunnel.Available(); err != nil {
			return nil, fmt.Errorf("the data plane cannot run here: %w", err)
		}
		tc := *dp
		pool := s.Profiles.Pool()
		tc.Cluster, tc.PrivateKey, tc.Address = node, s.WireGuardKey, netip.PrefixFrom(s.Profiles.ServerAddr(), pool.Bits())
		tc.Pool, tc.Pool6, tc.Recorder, tc.Logger, tc.Registerer = pool, s.Profiles.Pool6(), s.Audit, log, cfg.Registerer
		if s.Gateway, err = tunnel.New(tc); err != nil {
			return nil, fmt.Errorf("starting the data plane: %w", err)
		}
		s.goRun(func() {
			if err := s.Gateway.Run(bg); err != nil {
				log.Error("data plane stopped", "err", err)
			}
		})
		log.Info("data plane up", "interface", tc.Interface, "listen_port", tc.ListenPort, "kernel", s.Gateway.Kernel())
	}

	// 7. Packet capture: this node's part of every capture (none without
	// a data plane) and the cluster-wide captures it runs, with step-up
	// against MFA.
	var plane capture.Local
	if s.Gateway != nil {
		plane = s.Gateway
	}
	mfa := s.MFA
	if s.Capture, err = capture.New(capture.Config{
		Node: node, Local: plane, Peers: s.Profiles, Recorder: s.Audit, Logger: log, Now: cfg.Now, Caps: cfg.Capture,
		StepUp: func(ctx context.Context, a audit.Actor, src audit.Source, code string) error {
			return mfa.Verify(ctx, authn.Identity{UserID: a.UserID, Email: a.Email, Groups: a.Groups}, code,
				authn.Source{Addr: src.Addr, Port: src.Port, UserAgent: src.UserAgent})
		},
	}); err != nil {
		return nil, fmt.Errorf("starting packet capture: %w", err)
	}

	// 7b. Live per-peer counters: this node's device (as of its last
	// poll) to the other members, and every member's on request.
	local := func() tunnel.NodePeerStats { return tunnel.NodePeerStats{Node: node.ID(), Peers: []tunnel.PeerStat{}} }
	if s.Gateway != nil {
		local = s.Gateway.PeerStats
	}
	if s.PeerCounters, err = tunnel.NewPeerStatsService(tunnel.PeerStatsConfig{Node: node, Local: local, Logger: log}); err != nil {
		return nil, fmt.Errorf("starting peer counters: %w", err)
	}

	// 8. The entitlement watcher: every change to users or profiles is
	// re-decided and enforced on live peers (the leader writes); and
	// revalidation with the identity provider.
	s.goRun(func() {
		if err := s.Profiles.RunEntitlements(bg); err != nil && bg.Err() == nil {
			log.Error("entitlement watcher stopped", "err", err)
		}
	})
	if s.Revalidator != nil {
		s.goRun(func() { s.Revalidator.Run(bg) })
	}

	// 9. Housekeeping on the leader: expired peers, sessions and sign-ins;
	// the configuration file's network sinks and capture caps, imported
	// once.
	s.goRun(func() { s.janitor(bg) })
	if len(cfg.Audit.NetSinks) > 0 {
		s.goRun(func() { s.importSinks(bg) })
	}
	s.goRun(func() { s.importCaps(bg) })

	// 10. The reports' rollup: node-local, derived from this node's journal.
	if s.Reports, err = report.Open(report.Config{Path: filepath.Join(cfg.DataDir, "reports.db"), Journal: node, Logger: log}); err != nil {
		return nil, err
	}
	s.goRun(func() { s.Reports.Run(bg) })
	return s, nil
}

// goRun runs f in a goroutine Close waits for.
func (s *Services) goRun(f func()) {
	s.wg.Add(1)
	go func() {
		defer s.wg.Done()
		f()
	}()
}

// Close stops the services in reverse order of their start and waits for
// their goroutines. It is idempotent.
func (s *Services) Close() {
	s.once.Do(s.close)
}

func (s *Services) close() {
	log := s.cfg.Logger
	s.cancel()
	if s.PeerCounters != nil {
		s.PeerCounters.Close()
	}
	if s.Capture != nil {
		s.Capture.Close()
	}
	if s.Gateway != nil {
		if err := s.Gateway.Close(); err != nil {
			log.Warn("closing data plane", "err", err)
		}
	}
	s.wg.Wait()
	if s.Reports != nil {
		if err := s.Reports.Close(); err != nil {
			log.Warn("closing report rollup", "err", err)
		}
	}
	if s.Trimmer != nil {
		s.Trimmer.Close()
	}
	if s.Exporter != nil {
		if err := s.Exporter.Close(); err != nil {
			log.Warn("closing audit exporter", "err", err)
		}
	}
	if s.Checkpoints != nil {
		s.Checkpoints.Close()
	}
	if s.Audit != nil {
		if err := s.Audit.Close(); err != nil {
			log.Warn("closing audit log", "err", err)
		}
	}
}
