package assembly

import (
	"context"

	"github.com/ferryvpn/ferry/cluster/admit"
	"github.com/ferryvpn/ferry/cluster/seal"
	"github.com/ferryvpn/ferry/cmd/internal/api"
	"github.com/ferryvpn/ferry/cmd/internal/console"
	"github.com/ferryvpn/ferry/cmd/internal/wire"
	"github.com/ferryvpn/ferry/tunnel"
)

// API returns base with the services' parts of the HTTP API filled in:
// users (sign-in, sessions, MFA, profiles, issuance), audit, the identity
// provider's endpoints, packet capture, live peer counters and the admin console (with
// base.Admit for the nodes' certificates). The rest of base (node, master
// key, admission, join settings, logger) is the caller's.
func (s *Services) API(base api.Config) (api.Config, error) {
	base.Users = &api.Users{Sessions: s.Sessions, Users: s.Users, MFA: s.MFA, Profiles: s.Profiles, Server: s.Server, NodeID: s.cfg.NodeID}
	if s.Flow != nil {
		base.Users.SignIn = s.Flow.Handler()
	}
	base.Audit = &api.Audit{Signer: s.Signer, Recorder: s.Audit, Reports: s.Reports, Retention: s.Trimmer,
		Sinks: &api.AuditSinks{Store: s.SinkStore, Options: s.cfg.Audit.SinkOptions, States: s.Exporter.Sinks}}
	idp := s.cfg.IdP
	if s.SCIM != nil || s.Signals != nil || idp.Issuer != "" {
		base.IdP = &api.IdP{SCIM: s.SCIM, Signals: s.Signals, Issuer: idp.Issuer, SSFIssuer: idp.SSFIssuer, PublicURL: idp.PublicURL}
		if idp.SCIM != nil {
			base.IdP.SCIMGroupName = idp.SCIM.GroupName
		}
	}
	base.Capture = s.Capture
	if s.PeerCounters != nil {
		base.PeerCounters = func(ctx context.Context) ([]wire.NodeCounters, map[string][]wire.PeerCounters) {
			nodes := s.PeerCounters.Collect(ctx)
			byKey := map[string][]wire.PeerCounters{}
			for k, cs := range tunnel.CountersByKey(nodes) {
				byKey[k] = peerCountersToWire(cs)
			}
			return nodeCountersToWire(nodes), byKey
		}
	}
	cons, err := console.New(s.ConsoleConfig(base.Admit))
	if err != nil {
		return base, err
	}
	base.Console = cons
	return base, nil
}

// ConsoleConfig is the admin console's configuration: the node's services,
// the step-up key every node derives alike from the master key, and
// SignIn's step-up window and organisation. admitter, when set, gives the
// nodes' certificate expiry.
func (s *Services) ConsoleConfig(admitter *admit.Admitter) console.Config {
	return console.Config{
		Node: s.cfg.Node, Sessions: s.Sessions, Users: s.Users, MFA: s.MFA, Profiles: s.Profiles, Admit: admitter,
		Sinks: s.SinkStore, SinkStates: s.Exporter.Sinks, Reports: s.Reports,
		StepUpKey: seal.DeriveKey(s.cfg.MasterKey, console.StepUpKeyPurpose), StepUpWindow: s.cfg.SignIn.StepUpWindow,
		Organization: s.cfg.SignIn.Organization, Logger: s.cfg.Logger, Now: s.cfg.Now,
		PeerCounters: s.consoleCounters(),
	}
}

// consoleCounters gives the console every node's live peer counters,
// asked with the administrator's session as the cluster's proof; nil
// without the counters service.
func (s *Services) consoleCounters() func(context.Context, string) map[string][]console.PeerCounter {
	if s.PeerCounters == nil {
		return nil
	}
	return func(ctx context.Context, tok string) map[string][]console.PeerCounter {
		out := map[string][]console.PeerCounter{}
		for k, cs := range tunnel.CountersByKey(s.PeerCounters.Collect(api.WithSessionProof(ctx, tok))) {
			for _, c := range cs {
				out[k] = append(out[k], console.PeerCounter{Node: c.Node, Endpoint: c.Endpoint, LastHandshake: c.LastHandshake, RxBytes: c.RxBytes, TxBytes: c.TxBytes})
			}
		}
		return out
	}
}

// peerCountersToWire converts one peer's counters on each node.
func peerCountersToWire(cs []tunnel.PeerCounters) []wire.PeerCounters {
	var out []wire.PeerCounters
	for _, c := range cs {
		w := wire.PeerCounters{Node: c.Node, Endpoint: c.Endpoint, RxBytes: c.RxBytes, TxBytes: c.TxBytes}
		if !c.LastHandshake.IsZero() {
			t := c.LastHandshake
			w.LastHandshake = &t
		}
		out = append(out, w)
	}
	return out
}

// nodeCountersToWire says which nodes answered for counters, and when.
func nodeCountersToWire(ns []tunnel.NodePeerStats) []wire.NodeCounters {
	out := make([]wire.NodeCounters, 0, len(ns))
	for _, n := range ns {
		w := wire.NodeCounters{Node: n.Node, Error: n.Err}
		if !n.At.IsZero() {
			t := n.At
			w.At = &t
		}
		out = append(out, w)
	}
	return out
}
