package main

import (
	"context"
	"fmt"
	"log/slog"
	"net"
	"net/url"
	"os"
	"strconv"
	"strings"

	"github.com/prometheus/client_golang/prometheus"

	"github.com/ferryvpn/ferry/audit"
	"github.com/ferryvpn/ferry/authn"
	"github.com/ferryvpn/ferry/cluster"
	"github.com/ferryvpn/ferry/cluster/seal"
	"github.com/ferryvpn/ferry/cmd/internal/api"
	"github.com/ferryvpn/ferry/cmd/internal/assembly"
	"github.com/ferryvpn/ferry/cmd/internal/config"
	"github.com/ferryvpn/ferry/tunnel"
	"github.com/ferryvpn/ferry/tunnel/capture"
)

// startServices builds the node's services through the one assembly
// (cmd/internal/assembly) the test harnesses use too, from the
// configuration file.
func startServices(ctx context.Context, cfg *config.Config, node *cluster.Node, master seal.Key, log *slog.Logger, reg prometheus.Registerer) (*assembly.Services, error) {
	ac, err := assemblyConfig(cfg, node, master, log, reg)
	if err != nil {
		return nil, err
	}
	return assembly.Start(ctx, ac)
}

// assemblyConfig translates the configuration file into the assembly's
// Config.
func assemblyConfig(cfg *config.Config, node *cluster.Node, master seal.Key, log *slog.Logger, reg prometheus.Registerer) (assembly.Config, error) {
	// Sinks: file sinks run on every node from its own journal; network
	// sinks are cluster configuration (the configuration file's are
	// imported once) and run wherever the leader is.
	fileSinks, netSpecs, sinkOpts, err := buildSinks(cfg.Audit)
	if err != nil {
		return assembly.Config{}, err
	}
	ac := assembly.Config{
		Node: node, NodeID: cfg.NodeID, MasterKey: master, DataDir: cfg.DataDir, Logger: log, Registerer: reg,
		Audit: assembly.Audit{
			CheckpointEvery: uint64(cfg.Audit.CheckpointEvery), CheckpointInterval: cfg.Audit.CheckpointInterval.D(),
			Retention: cfg.Audit.Retention.D(), FlowRetention: cfg.Audit.FlowRetention.D(), FileSinks: fileSinks, NetSinks: netSpecs, SinkOptions: sinkOpts,
		},
		// Authenticator apps name the organisation and server; a browser
		// sign-in ends on the portal, where it starts.
		SignIn: assembly.SignIn{Session: cfg.SessionConfig(), Organization: cfg.Organization, MFAIssuer: mfaIssuer(cfg), Home: api.PathPortal,
			StepUpWindow: cfg.Sessions.StepUpWindow.D()},
		Profiles: assembly.Profiles{
			Pool: cfg.PoolPrefix(), Pool6: cfg.Pool6Prefix(), AssignByVerifiedEmail: cfg.Profiles.AssignByVerifiedEmail,
			Endpoint: wireguardEndpoint(cfg), MTU: cfg.WireGuard.MTU,
		},
		IdP: assembly.IdP{Issuer: cfg.OIDC.Issuer, SSFIssuer: cfg.SSF.Issuer, PublicURL: cfg.API.PublicURL},
		Capture: capture.Caps{
			MaxDuration: cfg.Capture.MaxDuration.D(), MaxBytes: cfg.Capture.MaxBytes, HeaderSnaplen: cfg.Capture.HeaderSnaplen,
			AllowPayload: cfg.Capture.AllowPayload, MaxConcurrent: cfg.Capture.MaxConcurrent,
		},
	}
	// Sign-in with an identity provider, revalidated with the refresh
	// token of each sign-in.
	if cfg.OIDC.Issuer != "" {
		ocfg, err := cfg.OIDCConfig()
		if err != nil {
			return assembly.Config{}, err
		}
		ac.SignIn.OIDC = &ocfg
		ac.SignIn.RevalidateInterval, ac.SignIn.RevalidateGrace = cfg.OIDC.RevalidateInterval.D(), cfg.OIDC.RevalidateGrace.D()
	} else {
		log.Warn("no oidc.issuer configured: sign-in is off")
	}
	// What the identity provider pushes: SCIM, back-channel logout,
	// Shared Signals.
	if cfg.SCIM.Enabled {
		sc := cfg.SCIMConfig()
		ac.IdP.SCIM = &sc
	}
	if sg, ok := cfg.SignalsConfig(); ok {
		ac.IdP.Signals = &sg
	}
	// The data plane, when enabled.
	if cfg.WireGuard.Enabled {
		upstreams, err := cfg.WireGuard.DNS.DNSUpstreams()
		if err != nil {
			return assembly.Config{}, err
		}
		ac.DataPlane = &tunnel.Config{
			Interface: cfg.WireGuard.Interface, ListenPort: cfg.WireGuard.ListenPort, MTU: cfg.WireGuard.MTU,
			FlowInterval: cfg.WireGuard.FlowInterval.D(), FlowActiveTimeout: cfg.WireGuard.FlowActiveTimeout.D(),
			FlowMaxRecords: cfg.WireGuard.FlowMaxRecords,
			DNS: tunnel.DNSConfig{Enabled: cfg.WireGuard.DNS.Enabled, Upstreams: upstreams, Grace: cfg.WireGuard.DNS.Grace.D(),
				MaxTTL: cfg.WireGuard.DNS.MaxTTL.D(), RefuseOthers: cfg.WireGuard.DNS.RefuseOthers},
		}
	}
	return ac, nil
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
