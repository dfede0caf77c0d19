package assembly_test

import (
	"context"
	"errors"
	"net/netip"
	"testing"
	"time"

	"github.com/ferryvpn/ferry/authn"
	"github.com/ferryvpn/ferry/authn/scim"
	"github.com/ferryvpn/ferry/cluster/clustertest"
	"github.com/ferryvpn/ferry/cluster/seal"
	"github.com/ferryvpn/ferry/cmd/internal/api"
	"github.com/ferryvpn/ferry/cmd/internal/assembly"
)

func TestValidate(t *testing.T) {
	c := clustertest.Start(t, 1, clustertest.Options{Fast: true})
	key, err := seal.GenerateKey()
	if err != nil {
		t.Fatal(err)
	}
	good := func() assembly.Config {
		return assembly.Config{Node: c.Node(0), NodeID: "n1", MasterKey: key, DataDir: t.TempDir(),
			Profiles: assembly.Profiles{Pool: netip.MustParsePrefix("100.64.0.0/16")}}
	}
	tests := []struct {
		name string
		edit func(*assembly.Config)
	}{
		{"no node", func(c *assembly.Config) { c.Node = nil }},
		{"no node ID", func(c *assembly.Config) { c.NodeID = "" }},
		{"no master key", func(c *assembly.Config) { c.MasterKey = seal.Key{} }},
		{"no data dir", func(c *assembly.Config) { c.DataDir = "" }},
		{"no pool", func(c *assembly.Config) { c.Profiles.Pool = netip.Prefix{} }},
		{"negative janitor interval", func(c *assembly.Config) { c.JanitorInterval = -time.Second }},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			cfg := good()
			tt.edit(&cfg)
			if err := cfg.Validate(); !errors.Is(err, assembly.ErrInvalidConfig) {
				t.Errorf("Validate: %v, want ErrInvalidConfig", err)
			}
			if _, err := assembly.Start(t.Context(), cfg); !errors.Is(err, assembly.ErrInvalidConfig) {
				t.Errorf("Start: %v, want ErrInvalidConfig", err)
			}
		})
	}
	cfg := good()
	if err := cfg.Validate(); err != nil {
		t.Errorf("a complete config: %v", err)
	}
}

// Every node of a cluster gets the same cluster secrets (the WireGuard
// key issued configurations name), the services the configuration asks
// for and the API built on them; Close is idempotent.
func TestStartBuildsTheNode(t *testing.T) {
	c := clustertest.Start(t, 3, clustertest.Options{Fast: true, WriteTimeout: 10 * time.Second})
	key, err := seal.GenerateKey()
	if err != nil {
		t.Fatal(err)
	}
	var keys []string
	for i := range 3 {
		ctx, cancel := context.WithTimeout(t.Context(), 30*time.Second)
		svc, err := assembly.Start(ctx, assembly.Config{
			Node: c.Node(i), NodeID: c.ID(i), MasterKey: key, DataDir: t.TempDir(),
			SignIn:   assembly.SignIn{Session: authn.SessionConfig{AdminGroups: []string{"admins"}}},
			Profiles: assembly.Profiles{Pool: netip.MustParsePrefix("100.64.0.0/16"), Endpoint: "vpn.example.com:51820", MTU: 1380},
			IdP:      assembly.IdP{Issuer: "https://idp.example.com", SCIM: &scim.Config{Issuer: "https://idp.example.com", GroupName: scim.GroupNameDisplayName}},
		})
		cancel()
		if err != nil {
			t.Fatalf("node %d: %v", i, err)
		}
		t.Cleanup(svc.Close)
		if svc.Flow != nil || svc.Revalidator != nil || svc.Gateway != nil || svc.Signals != nil {
			t.Errorf("node %d: sign-in, data plane or signals built without being configured", i)
		}
		if svc.SCIM == nil || svc.Capture == nil || svc.Reports == nil || svc.Exporter == nil {
			t.Errorf("node %d: a configured service is missing", i)
		}
		if svc.Server.Endpoint != "vpn.example.com:51820" || svc.Server.MTU != 1380 || svc.Server.PublicKey != svc.WireGuardKey.PublicKey().String() {
			t.Errorf("node %d: issued configurations name %+v", i, svc.Server)
		}
		keys = append(keys, svc.Server.PublicKey)
		cfg, err := svc.API(api.Config{Node: c.Node(i), MasterKey: key})
		if err != nil {
			t.Fatalf("node %d: %v", i, err)
		}
		if cfg.Console == nil || cfg.Users == nil || cfg.Users.NodeID != c.ID(i) || cfg.Audit == nil || cfg.Capture == nil ||
			cfg.IdP == nil || cfg.IdP.SCIM != svc.SCIM || cfg.IdP.SCIMGroupName != scim.GroupNameDisplayName {
			t.Errorf("node %d: API config %+v", i, cfg)
		}
		if _, err := api.New(cfg); err != nil {
			t.Errorf("node %d: api.New: %v", i, err)
		}
	}
	if keys[0] != keys[1] || keys[1] != keys[2] {
		t.Errorf("the nodes name different WireGuard keys: %v", keys)
	}
	svc, err := assembly.Start(t.Context(), assembly.Config{Node: c.Node(0), NodeID: c.ID(0), MasterKey: key, DataDir: t.TempDir(),
		Profiles: assembly.Profiles{Pool: netip.MustParsePrefix("100.64.0.0/16")}})
	if err != nil {
		t.Fatal(err)
	}
	svc.Close()
	svc.Close()
}
