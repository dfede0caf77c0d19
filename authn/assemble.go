package authn

import (
	"errors"
	"log/slog"
	"time"

	"github.com/ferryvpn/ferry/audit"
	"github.com/ferryvpn/ferry/cluster"
	"github.com/ferryvpn/ferry/cluster/seal"
)

// StackConfig configures NewStack: the sign-in services of one node.
type StackConfig struct {
	// Store is the node's cluster store; Key the cluster master key (it
	// seals TOTP secrets and refresh tokens); Recorder the audit log.
	// Required.
	Store    *cluster.Node
	Key      seal.Key
	Recorder audit.Recorder
	// Logger defaults to slog.Default(); Now to time.Now.
	Logger *slog.Logger
	Now    func() time.Time
	// Session is the sessions' policy (lifetime, idle timeout, admin and
	// required groups); its Store, Recorder, Logger and Now are the
	// stack's.
	Session SessionConfig
	// OIDC, when set, adds the browser and desktop sign-in flow with this
	// identity provider; without it sign-in is off.
	OIDC *OIDCConfig
	// Revalidate adds a Revalidator (refresh tokens kept and redeemed
	// every RevalidateInterval, access suspended past RevalidateGrace);
	// it needs OIDC.
	Revalidate                          bool
	RevalidateInterval, RevalidateGrace time.Duration
	// Organization names the company on the sign-in pages (FlowConfig).
	Organization string
	// MFAIssuer is the name authenticator apps show (MFAConfig.Issuer).
	MFAIssuer string
	// Home is where a browser goes once signed in (FlowConfig.Home).
	Home string
}

// Stack is a node's sign-in services, built and wired together in one
// place: ferryd and the test harnesses (cmd/internal/apitest,
// authn/flowtest) all assemble them through NewStack, so that a test runs
// what production runs.
type Stack struct {
	Users    *Users
	MFA      *MFA
	Sessions *Sessions
	// Revalidator and Flow are nil without OIDC (and without Revalidate).
	Revalidator *Revalidator
	Flow        *Flow
}

// NewStack builds the sign-in services in dependency order: users, MFA,
// sessions, then with an identity provider the revalidator and the flow.
func NewStack(cfg StackConfig) (*Stack, error) {
	if cfg.Store == nil || cfg.Recorder == nil {
		return nil, errors.New("authn stack: store and recorder are required")
	}
	if cfg.Revalidate && cfg.OIDC == nil {
		return nil, errors.New("authn stack: revalidation needs an identity provider (OIDC)")
	}
	now := cfg.Now
	if now == nil {
		now = time.Now
	}
	s := &Stack{Users: NewUsers(cfg.Store, now, cfg.Recorder)}
	var err error
	if s.MFA, err = NewMFA(MFAConfig{Store: cfg.Store, Key: cfg.Key, Recorder: cfg.Recorder, Logger: cfg.Logger, Now: cfg.Now, Issuer: cfg.MFAIssuer}); err != nil {
		return nil, err
	}
	scfg := cfg.Session
	scfg.Store, scfg.Recorder, scfg.Logger, scfg.Now = cfg.Store, cfg.Recorder, cfg.Logger, cfg.Now
	if s.Sessions, err = NewSessions(scfg); err != nil {
		return nil, err
	}
	if cfg.OIDC == nil {
		return s, nil
	}
	if cfg.Revalidate {
		if s.Revalidator, err = NewRevalidator(RevalidatorConfig{
			OIDC: *cfg.OIDC, Store: cfg.Store, Users: s.Users, Recorder: cfg.Recorder, Key: cfg.Key, Logger: cfg.Logger, Now: cfg.Now,
			Interval: cfg.RevalidateInterval, Grace: cfg.RevalidateGrace,
		}); err != nil {
			return nil, err
		}
	}
	if s.Flow, err = NewFlow(FlowConfig{
		OIDC: *cfg.OIDC, Store: cfg.Store, MFA: s.MFA, Sessions: s.Sessions, Users: s.Users,
		Recorder: cfg.Recorder, Logger: cfg.Logger, Now: cfg.Now, Revalidator: s.Revalidator, Organization: cfg.Organization,
		Home: cfg.Home,
	}); err != nil {
		return nil, err
	}
	return s, nil
}
