package main

import (
	"context"
	"crypto/rand"
	"encoding/base64"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net"
	"net/http"
	"net/netip"
	"os"
	"path/filepath"
	"time"

	"github.com/ferryvpn/ferry/audit"
	"github.com/ferryvpn/ferry/authn/devop"
	"github.com/ferryvpn/ferry/cmd/internal/config"
	"github.com/ferryvpn/ferry/profiles"
)

// devAdminGroup is the demo identity provider's group of administrators.
const devAdminGroup = "ferry-admins"

// devIdP is ferryd dev's built-in OpenID Provider (zitadel/oidc's op
// package) with the demo users.
type devIdP struct {
	issuer string
	srv    *http.Server
	done   chan error
}

// startDevIdP serves the development OpenID Provider on a free loopback
// port and configures cfg to sign in through it.
func startDevIdP(cfg *config.Config, dir, apiAddr string, log *slog.Logger) (*devIdP, error) {
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		return nil, fmt.Errorf("dev identity provider: %w", err)
	}
	var secret [24]byte
	if _, err := rand.Read(secret[:]); err != nil {
		ln.Close()
		return nil, err
	}
	secretText := base64.RawURLEncoding.EncodeToString(secret[:])
	secretFile := filepath.Join(dir, "oidc-client-secret")
	if err := os.WriteFile(secretFile, []byte(secretText+"\n"), 0o600); err != nil {
		ln.Close()
		return nil, err
	}
	issuer := "http://" + ln.Addr().String()
	redirect := "https://" + apiAddr + "/callback"
	op, err := devop.New(devop.Config{
		Issuer: issuer, ClientID: "ferry-dev", ClientSecret: secretText,
		RedirectURIs: []string{redirect}, Users: devop.DemoUsers(), Logger: log,
	})
	if err != nil {
		ln.Close()
		return nil, fmt.Errorf("dev identity provider: %w", err)
	}
	cfg.OIDC = config.OIDC{Issuer: issuer, ClientID: "ferry-dev", ClientSecretFile: secretFile, RedirectURL: redirect, OfflineAccess: true}
	cfg.Sessions.AdminGroups = []string{devAdminGroup}
	// SCIM too, so ferryctl scim rotate-token and a SCIM client can be
	// tried against the development provider's subjects (devop-NAME).
	cfg.SCIM.Enabled = true
	d := &devIdP{issuer: issuer, done: make(chan error, 1),
		srv: &http.Server{Handler: op.Handler(), ReadHeaderTimeout: 10 * time.Second}}
	go func() { d.done <- d.srv.Serve(ln) }()
	return d, nil
}

func (d *devIdP) close() {
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	d.srv.Shutdown(ctx)
	<-d.done
}

// devProfile is the demo profile ferryd dev creates: the "engineering"
// group may reach a pretend VPC.
func devProfile() profiles.Profile {
	return profiles.Profile{
		Name:        "demo",
		Description: "Demo profile of ferryd dev: engineers reach 10.77.0.0/16",
		Rules: []profiles.Rule{
			{CIDR: netip.MustParsePrefix("10.77.0.0/16"), Protocol: profiles.ProtoTCP, Ports: []profiles.PortRange{{From: 22, To: 22}, {From: 80, To: 80}, {From: 443, To: 443}}},
			{CIDR: netip.MustParsePrefix("10.77.0.0/16"), Protocol: profiles.ProtoICMP},
		},
		Groups: []string{"engineering"},
	}
}

// ensureDevProfile creates the demo profile unless it exists.
func ensureDevProfile(ctx context.Context, s *profiles.Store) error {
	if _, err := s.Get(ctx, "demo"); err == nil {
		return nil
	} else if !errors.Is(err, profiles.ErrNotFound) {
		return err
	}
	absent := uint64(0)
	_, err := s.Put(ctx, devProfile(), &absent, audit.Actor{UserID: "ferryd-dev", Role: "system"})
	if errors.Is(err, profiles.ErrConflict) {
		return nil
	}
	return err
}

func printDevSignIn(w io.Writer, apiURL, caFile, issuer string) {
	fmt.Fprintf(w, `
Sign in (built-in identity provider at %s):
  users      demo / demo (groups engineering, ferry-admins: admin)
             alice / alice (group engineering)
  browser    %s/login   (trust the CA above, or accept the warning)
  desktop    ferry login %s --ca %s
  admin      ferryctl login %s --ca %s
  profile    "demo": tcp 22, 80, 443 and icmp to 10.77.0.0/16 for group engineering
The first sign-in enrolls TOTP: scan the QR code with an authenticator app.
`, issuer, apiURL, apiURL, caFile, apiURL, caFile)
}
