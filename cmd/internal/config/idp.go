package config

import (
	"net/url"
	"strings"

	"github.com/ferryvpn/ferry/authn/scim"
	"github.com/ferryvpn/ferry/authn/signals"
)

// SCIM configures provisioning by the identity provider (SCIM 2.0, served
// at api.public_url + /scim/v2). The bearer token is not configured here:
// `ferryctl scim rotate-token` mints it and the cluster keeps it sealed
// under the master key; until then every SCIM request is refused.
type SCIM struct {
	// Enabled serves /scim/v2. It needs oidc.issuer: a provisioned user's
	// externalId is read as a subject of that issuer, so SCIM and sign-in
	// reach the same user.
	Enabled bool `yaml:"enabled"`
	// GroupName is the group attribute that becomes the user's group name:
	// displayName (default) or externalId. Use what the ID token's groups
	// claim carries (Okta: names; Entra ID: object IDs, so externalId with
	// Entra's default mapping of objectId to externalId).
	GroupName string `yaml:"group_name,omitempty"`
}

// SSF configures the Shared Signals receiver (push delivery, RFC 8935, at
// api.public_url + /ssf/events). Without an issuer it is off.
type SSF struct {
	// Issuer is the transmitter's iss.
	Issuer string `yaml:"issuer,omitempty"`
	// JWKSURI is where the transmitter publishes its signing keys
	// (jwks_uri of its /.well-known/ssf-configuration). Required with
	// issuer.
	JWKSURI string `yaml:"jwks_uri,omitempty"`
	// Audience is the aud SETs must carry, as registered in the stream;
	// default api.public_url.
	Audience string `yaml:"audience,omitempty"`
	// SubjectIssuer is the issuer of opaque subjects; default oidc.issuer.
	SubjectIssuer string `yaml:"subject_issuer,omitempty"`
}

// MaxTokenAge is the oldest back-channel logout token or SET accepted.
const MaxTokenAge = signals.DefaultMaxAge

func (c *Config) validateIdP() error {
	if s := c.SCIM; s.Enabled {
		if c.OIDC.Issuer == "" {
			return fieldErr("scim.enabled", "needs oidc.issuer (externalIds are subjects of that issuer)")
		}
		switch s.GroupName {
		case "", scim.GroupNameDisplayName, scim.GroupNameExternalID:
		default:
			return fieldErr("scim.group_name", "%q: want %s or %s", s.GroupName, scim.GroupNameDisplayName, scim.GroupNameExternalID)
		}
	}
	if c.OIDC.BackChannelLogout && c.OIDC.Issuer == "" {
		return fieldErr("oidc.backchannel_logout", "needs oidc.issuer")
	}
	if s := c.SSF; s.Issuer != "" {
		if u, err := url.Parse(s.JWKSURI); err != nil || (u.Scheme != "https" && u.Scheme != "http") || u.Host == "" {
			return fieldErr("ssf.jwks_uri", "%.200q: want the transmitter's jwks_uri (https)", s.JWKSURI)
		}
		if s.Audience == "" {
			return fieldErr("ssf.audience", "required with ssf.issuer (or set api.public_url)")
		}
		if s.SubjectIssuer == "" {
			return fieldErr("ssf.subject_issuer", "required with ssf.issuer (or set oidc.issuer)")
		}
	} else if s.JWKSURI != "" {
		return fieldErr("ssf.issuer", "required with ssf.jwks_uri")
	}
	return nil
}

func (c *Config) setIdPDefaults() {
	if c.SSF.Issuer != "" && c.SSF.Audience == "" {
		c.SSF.Audience = strings.TrimSuffix(c.API.PublicURL, "/")
	}
	if c.SSF.Issuer != "" && c.SSF.SubjectIssuer == "" {
		c.SSF.SubjectIssuer = c.OIDC.Issuer
	}
}

// SCIMConfig returns the SCIM service settings (store, key, users and
// recorder are the caller's).
func (c *Config) SCIMConfig() scim.Config {
	cfg := scim.Config{Issuer: c.OIDC.Issuer, GroupName: c.SCIM.GroupName}
	if c.API.PublicURL != "" {
		cfg.BaseURL = strings.TrimSuffix(c.API.PublicURL, "/") + scim.PathPrefix
	}
	return cfg
}

// SignalsConfig returns the receiver's settings, or ok false when neither
// back-channel logout nor a transmitter is configured.
func (c *Config) SignalsConfig() (cfg signals.Config, ok bool) {
	if c.OIDC.BackChannelLogout {
		cfg.Logout = &signals.Logout{Issuer: c.OIDC.Issuer, ClientID: c.OIDC.ClientID}
	}
	if s := c.SSF; s.Issuer != "" {
		cfg.Transmitter = &signals.Transmitter{Issuer: s.Issuer, JWKSURL: s.JWKSURI, Audience: s.Audience, SubjectIssuer: s.SubjectIssuer}
	}
	return cfg, cfg.Logout != nil || cfg.Transmitter != nil
}
