package assembly

import "github.com/ferryvpn/ferry/cmd/internal/api"

// API returns base with the services' parts of the HTTP API filled in:
// users (sign-in, sessions, MFA, profiles, issuance), audit, the identity
// provider's endpoints and packet capture. The rest of base (node, master
// key, admission, join settings, logger) is the caller's.
func (s *Services) API(base api.Config) api.Config {
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
	return base
}
