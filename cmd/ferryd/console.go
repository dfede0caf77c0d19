package main

import (
	"log/slog"

	"github.com/ferryvpn/ferry/cluster"
	"github.com/ferryvpn/ferry/cluster/admit"
	"github.com/ferryvpn/ferry/cluster/seal"
	"github.com/ferryvpn/ferry/cmd/internal/config"
	"github.com/ferryvpn/ferry/cmd/internal/console"
)

// console is the admin console's configuration: the node's services, the
// step-up key every node derives alike from the master key, and the
// step-up window of the configuration file (sessions.step_up_window).
func (s *services) console(node *cluster.Node, admitter *admit.Admitter, master seal.Key, cfg *config.Config, log *slog.Logger) console.Config {
	return console.Config{
		Node: node, Sessions: s.sessions, Users: s.users, MFA: s.mfa, Profiles: s.profiles, Admit: admitter,
		Sinks: s.sinkStore, SinkStates: s.exporter.Sinks, Reports: s.reports,
		StepUpKey: seal.DeriveKey(master, console.StepUpKeyPurpose), StepUpWindow: cfg.Sessions.StepUpWindow.D(),
		Organization: cfg.Organization, Logger: log,
	}
}
