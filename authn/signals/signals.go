package signals

import (
	"context"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net/http"
	"net/url"
	"time"

	"github.com/ferryvpn/ferry/audit"
	"github.com/ferryvpn/ferry/authn"
	"github.com/ferryvpn/ferry/cluster"
)

// Paths the receiver serves; the identity provider is given these URLs.
const (
	PathBackChannelLogout = "/oidc/backchannel-logout"
	PathSSFEvents         = "/ssf/events"
)

// Defaults.
const (
	// DefaultMaxAge is how old (by iat) a token may be when it arrives:
	// IdPs deliver within seconds, and retries within minutes. Older
	// tokens are refused, which bounds the replay guard.
	DefaultMaxAge = 10 * time.Minute
	// ClockSkew is how far in the future iat may be.
	ClockSkew = time.Minute
	// maxTokenBytes bounds a request body: logout tokens and SETs are a
	// few kilobytes.
	maxTokenBytes = 64 << 10
)

// Revoker ends what a user holds: profiles.Store does it (devices through
// the data plane on every node, sessions through authn).
type Revoker interface {
	// RevokeUser revokes every device of userID.
	RevokeUser(ctx context.Context, userID, reason string, actor audit.Actor) (int, error)
	// SetUserDisabled disables userID, ending sessions and devices.
	SetUserDisabled(ctx context.Context, userID string, disabled bool, actor audit.Actor, src authn.Source) (int, error)
}

// Logout configures back-channel logout: the sign-in provider.
type Logout struct {
	// Issuer is the OIDC issuer (oidc.issuer); logout tokens must be its.
	Issuer string
	// ClientID is ferry's client ID; logout tokens must name it in aud.
	ClientID string
}

// Transmitter configures the Shared Signals transmitter whose SETs are
// accepted.
type Transmitter struct {
	// Issuer is the transmitter's iss. Required.
	Issuer string
	// JWKSURL is where its signing keys are published. Required.
	JWKSURL string
	// Audience is what SETs must name in aud (ferry's receiver, usually
	// the public URL, as registered in the stream). Required.
	Audience string
	// SubjectIssuer is the issuer of opaque subject identifiers and of
	// iss_sub subjects with no iss; default Logout.Issuer.
	SubjectIssuer string
}

// Config configures the receiver.
type Config struct {
	// Store holds the replay guard. Required.
	Store *cluster.Node
	// Users and Sessions find and end what a subject holds. Required.
	Users    *authn.Users
	Sessions *authn.Sessions
	// Revoker revokes devices and disables users. Required.
	Revoker Revoker
	// Recorder receives an event for every token. Required.
	Recorder audit.Recorder
	// Logout enables back-channel logout when set.
	Logout *Logout
	// Transmitter enables the Shared Signals receiver when set.
	Transmitter *Transmitter
	// MaxAge is the oldest token accepted, by iat; default DefaultMaxAge.
	MaxAge time.Duration
	// HTTPClient fetches discovery documents and keys; default a client
	// with a 10 s timeout.
	HTTPClient *http.Client
	// Now is the clock; default time.Now.
	Now func() time.Time
	// Logger; default discards.
	Logger *slog.Logger
}

// Validate reports the first missing or malformed field.
func (c *Config) Validate() error {
	switch {
	case c.Store == nil:
		return errors.New("signals config: store: required")
	case c.Users == nil || c.Sessions == nil:
		return errors.New("signals config: users and sessions: required")
	case c.Revoker == nil:
		return errors.New("signals config: revoker: required")
	case c.Recorder == nil:
		return errors.New("signals config: recorder: required")
	case c.MaxAge < 0:
		return errors.New("signals config: max_age: must not be negative")
	case c.Logout == nil && c.Transmitter == nil:
		return errors.New("signals config: neither logout nor transmitter configured")
	}
	if l := c.Logout; l != nil {
		if err := checkURL("logout issuer", l.Issuer); err != nil {
			return err
		}
		if l.ClientID == "" {
			return errors.New("signals config: logout client_id: required")
		}
	}
	if t := c.Transmitter; t != nil {
		if t.Issuer == "" {
			return errors.New("signals config: transmitter issuer: required")
		}
		if err := checkURL("transmitter jwks_uri", t.JWKSURL); err != nil {
			return err
		}
		if t.Audience == "" {
			return errors.New("signals config: transmitter audience: required")
		}
		if t.SubjectIssuer == "" && c.Logout == nil {
			return errors.New("signals config: transmitter subject_issuer: required without logout's issuer")
		}
	}
	return nil
}

func checkURL(what, s string) error {
	u, err := url.Parse(s)
	if err != nil || (u.Scheme != "https" && u.Scheme != "http") || u.Host == "" {
		return fmt.Errorf("signals config: %s %q: want an absolute https URL", what, s)
	}
	return nil
}

// Receiver serves the back-channel logout and SET push endpoints. It is
// safe for concurrent use.
type Receiver struct {
	cfg    Config
	logout *verifier // nil: back-channel logout off
	set    *verifier // nil: Shared Signals off
	log    *slog.Logger
	// refusals bounds the records of refused tokens (anyone can send
	// one); both endpoints share it.
	refusals authn.RefusalBudget
}

// New returns a receiver for cfg. Keys are fetched on first use, so ferryd
// starts while the provider is down.
func New(cfg Config) (*Receiver, error) {
	if err := cfg.Validate(); err != nil {
		return nil, err
	}
	if cfg.MaxAge == 0 {
		cfg.MaxAge = DefaultMaxAge
	}
	if cfg.HTTPClient == nil {
		cfg.HTTPClient = &http.Client{Timeout: 10 * time.Second}
	}
	if cfg.Now == nil {
		cfg.Now = time.Now
	}
	if cfg.Logger == nil {
		cfg.Logger = slog.New(slog.NewTextHandler(io.Discard, nil))
	}
	if t := cfg.Transmitter; t != nil && t.SubjectIssuer == "" {
		t2 := *t
		t2.SubjectIssuer = cfg.Logout.Issuer
		cfg.Transmitter = &t2
	}
	r := &Receiver{cfg: cfg, log: cfg.Logger}
	if l := cfg.Logout; l != nil {
		r.logout = newDiscoveryVerifier(l.Issuer, l.ClientID, cfg.HTTPClient, cfg.Now)
	}
	if t := cfg.Transmitter; t != nil {
		r.set = newJWKSVerifier(t.Issuer, t.JWKSURL, t.Audience, cfg.HTTPClient, cfg.Now)
	}
	return r, nil
}

// Paths returns the paths the receiver serves with the configuration
// given.
func (r *Receiver) Paths() []string {
	var out []string
	if r.logout != nil {
		out = append(out, PathBackChannelLogout)
	}
	if r.set != nil {
		out = append(out, PathSSFEvents)
	}
	return out
}

// ServeHTTP serves the configured endpoints.
func (r *Receiver) ServeHTTP(w http.ResponseWriter, req *http.Request) {
	switch {
	case req.URL.Path == PathBackChannelLogout && r.logout != nil:
		r.serveLogout(w, req)
	case req.URL.Path == PathSSFEvents && r.set != nil:
		r.serveSET(w, req)
	default:
		http.NotFound(w, req)
	}
}

// Actor is who the receiver's actions are recorded as.
func actor(iss string) audit.Actor {
	return audit.Actor{UserID: "identity provider " + iss, Role: "idp"}
}
