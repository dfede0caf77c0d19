package config

import (
	"errors"
	"strings"
	"testing"
)

const oidcSection = `  public_url: https://vpn.example.com
oidc:
  issuer: https://idp.example.com
  client_id: ferry
  client_secret_file: oidc.secret
`

func TestIdPSections(t *testing.T) {
	withOIDC := base + oidcSection
	for _, tc := range []struct {
		name, yaml, field string
		check             func(t *testing.T, c *Config)
	}{
		{name: "all off by default", yaml: withOIDC, check: func(t *testing.T, c *Config) {
			if c.SCIM.Enabled || c.OIDC.BackChannelLogout || c.SSF.Issuer != "" {
				t.Errorf("IdP endpoints on by default: %+v %+v", c.SCIM, c.SSF)
			}
			if _, ok := c.SignalsConfig(); ok {
				t.Error("signals receiver configured by default")
			}
		}},
		{name: "scim, logout and ssf", yaml: withOIDC + "  backchannel_logout: true\nscim:\n  enabled: true\n  group_name: externalId\nssf:\n  issuer: https://ssf.example.com\n  jwks_uri: https://ssf.example.com/jwks\n",
			check: func(t *testing.T, c *Config) {
				sc := c.SCIMConfig()
				if sc.Issuer != "https://idp.example.com" || sc.GroupName != "externalId" || sc.BaseURL != "https://vpn.example.com/scim/v2" {
					t.Errorf("SCIMConfig %+v", sc)
				}
				sg, ok := c.SignalsConfig()
				if !ok || sg.Logout == nil || sg.Logout.ClientID != "ferry" || sg.Transmitter == nil ||
					sg.Transmitter.Audience != "https://vpn.example.com" || sg.Transmitter.SubjectIssuer != "https://idp.example.com" {
					t.Errorf("SignalsConfig %+v %+v", sg.Logout, sg.Transmitter)
				}
			}},
		{name: "scim without oidc", yaml: base + "scim:\n  enabled: true\n", field: "scim.enabled"},
		{name: "scim bad group_name", yaml: withOIDC + "scim:\n  enabled: true\n  group_name: id\n", field: "scim.group_name"},
		{name: "logout without oidc", yaml: base + "oidc:\n  backchannel_logout: true\n", field: "oidc.backchannel_logout"},
		{name: "ssf without jwks", yaml: withOIDC + "ssf:\n  issuer: https://ssf.example.com\n", field: "ssf.jwks_uri"},
		{name: "ssf jwks without issuer", yaml: withOIDC + "ssf:\n  jwks_uri: https://ssf.example.com/jwks\n", field: "ssf.issuer"},
		{name: "ssf without audience", yaml: strings.Replace(withOIDC, "  public_url: https://vpn.example.com\n", "", 1) +
			"ssf:\n  issuer: https://ssf.example.com\n  jwks_uri: https://ssf.example.com/jwks\n", field: "ssf.audience"},
		{name: "ssf unknown field", yaml: withOIDC + "ssf:\n  token: inline-secret\n", field: "token"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			c, err := Parse([]byte(tc.yaml), t.TempDir(), Overrides{})
			if tc.field == "" {
				if err != nil {
					t.Fatal(err)
				}
				tc.check(t, c)
				return
			}
			if !errors.Is(err, ErrInvalid) || !strings.Contains(err.Error(), tc.field) {
				t.Fatalf("err = %v, want one naming %s", err, tc.field)
			}
		})
	}
}
