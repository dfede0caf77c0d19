package assembly

import (
	"github.com/ferryvpn/ferry/cluster/admit"
	"github.com/ferryvpn/ferry/cluster/seal"
	"github.com/ferryvpn/ferry/cmd/internal/api"
	"github.com/ferryvpn/ferry/cmd/internal/console"
)

// API returns base with the services' parts of the HTTP API filled in:
// users (sign-in, sessions, MFA, profiles, issuance), audit, the identity
// provider's endpoints, packet capture and the admin console (with
// base.Admit for the nodes' certificates). The rest of base (node, master
// key, admission, join settings, logger) is the caller's.
func (s *Services) API(base api.Config) (api.Config, error) {
	base.Users = &api.Users{Sessions: s.Sessions, Users: s.Users, MFA: s.MFA, Profiles: s.Profiles, Server: s.Server, NodeID: s.cfg.NodeID}
	if s.Flow != nil {
		base.Users.SignIn = s.Flow.Handler()
	}
	base.Audit = &api.Audit{Signer: s.Signer, Recorder: s.Audit, Reports: s.Reports,
		Sinks: &api.AuditSinks{Store: s.SinkStore, Options: s.cfg.Audit.SinkOptions, States: s.Exporter.Sinks}}
	idp := s.cfg.IdP
	if s.SCIM != nil || s.Signals != nil || idp.Issuer != "" {
		base.IdP = &api.IdP{SCIM: s.SCIM, Signals: s.Signals, Issuer: idp.Issuer, SSFIssuer: idp.SSFIssuer, PublicURL: idp.PublicURL}
		if idp.SCIM != nil {
			base.IdP.SCIMGroupName = idp.SCIM.GroupName
		}
	}
	base.Capture = s.Capture
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
	}
}
