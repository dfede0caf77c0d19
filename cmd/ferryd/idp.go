package main

import (
	"log/slog"

	"github.com/ferryvpn/ferry/authn/scim"
	"github.com/ferryvpn/ferry/authn/signals"
	"github.com/ferryvpn/ferry/cluster"
	"github.com/ferryvpn/ferry/cluster/seal"
	"github.com/ferryvpn/ferry/cmd/internal/api"
	"github.com/ferryvpn/ferry/cmd/internal/config"
)

// startIdP builds the SCIM service and the signals receiver when
// configured. Both disable and revoke through profiles.Store, the one
// domain path for taking access away.
func (s *services) startIdP(cfg *config.Config, node *cluster.Node, master seal.Key, log *slog.Logger) error {
	var err error
	if cfg.SCIM.Enabled {
		sc := cfg.SCIMConfig()
		sc.Store, sc.Key, sc.Users, sc.Disabler, sc.Recorder, sc.Logger = node, master, s.users, s.profiles, s.audit, log
		if s.scim, err = scim.New(sc); err != nil {
			return err
		}
	}
	if sg, ok := cfg.SignalsConfig(); ok {
		sg.Store, sg.Users, sg.Sessions, sg.Revoker, sg.Recorder, sg.Logger = node, s.users, s.sessions, s.profiles, s.audit, log
		if s.signals, err = signals.New(sg); err != nil {
			return err
		}
	}
	return nil
}

// apiIdP is what the HTTP API serves for the identity provider; nil when
// nothing is configured.
func (s *services) apiIdP(cfg *config.Config) *api.IdP {
	if s.scim == nil && s.signals == nil && cfg.OIDC.Issuer == "" {
		return nil
	}
	return &api.IdP{
		SCIM: s.scim, SCIMGroupName: cfg.SCIMConfig().GroupName, Signals: s.signals,
		Issuer: cfg.OIDC.Issuer, SSFIssuer: cfg.SSF.Issuer, PublicURL: cfg.API.PublicURL,
	}
}
