package main

import (
	"testing"

	"github.com/ferryvpn/ferry/cmd/internal/config"
)

// TestMFAIssuer: the authenticator entry was just "ferry", with no
// organisation or server (issue).
func TestMFAIssuer(t *testing.T) {
	for _, tc := range []struct {
		name, org, url, want string
	}{
		{"default", "", "", "ferry"},
		{"server", "", "https://vpn.example.com", "ferry (vpn.example.com)"},
		{"organisation and server", "Acme", "https://vpn.acme.com:8443/", "Acme (vpn.acme.com)"},
		{"colon", "Acme: EU", "https://[2001:db8::1]", "Acme  EU (2001 db8  1)"},
	} {
		cfg := &config.Config{Organization: tc.org}
		cfg.API.PublicURL = tc.url
		if got := mfaIssuer(cfg); got != tc.want {
			t.Errorf("%s: %q, want %q", tc.name, got, tc.want)
		}
	}
}
