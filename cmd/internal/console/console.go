package console

import (
	"context"
	"errors"
	"log/slog"
	"net/http"
	"time"

	"github.com/ferryvpn/ferry/audit"
	"github.com/ferryvpn/ferry/authn"
	"github.com/ferryvpn/ferry/cluster"
	"github.com/ferryvpn/ferry/cluster/admit"
	"github.com/ferryvpn/ferry/profiles"
	"github.com/ferryvpn/ferry/report"
)

// DefaultStepUpWindow is how long a TOTP code counts as fresh for an
// action that changes access: a session left open on a shared screen
// cannot change access without the administrator's authenticator.
const DefaultStepUpWindow = 10 * time.Minute

// StepUpKeyPurpose is the purpose under which ferryd derives StepUpKey
// from the cluster master key (seal.DeriveKey): every node derives the
// same key, so a step-up on one node holds on the others.
const StepUpKeyPurpose = "console-step-up"

// minStepUpKey is the least length of Config.StepUpKey (256 bits).
const minStepUpKey = 32

// Config configures the console.
type Config struct {
	// Node is this node of the cluster. Required.
	Node *cluster.Node
	// Sessions, Users, MFA and Profiles are the node's sign-in and access
	// services. Required.
	Sessions *authn.Sessions
	Users    *authn.Users
	MFA      *authn.MFA
	Profiles *profiles.Store
	// Admit, when set, gives the nodes' certificate expiry.
	Admit *admit.Admitter
	// Sinks, when set, lists the network audit sinks; SinkStates, when
	// set, this node's exporter's view of them.
	Sinks      *audit.SinkStore
	SinkStates func() []audit.SinkState
	// Reports, when set, is this node's rollup of its journal: the
	// traffic and report pages and the profile preview's replay.
	Reports *report.Rollup
	// PeerCounters, when set, returns every node's live WireGuard
	// counters, by peer public key, asked for the administrator whose
	// session token it gets (the cluster checks it on every node).
	PeerCounters func(ctx context.Context, sessionToken string) map[string][]PeerCounter
	// StepUpKey signs the step-up cookie; the same on every node (ferryd
	// derives it from the master key). At least 32 bytes. Required.
	StepUpKey []byte
	// StepUpWindow is how long a TOTP code stays fresh for actions that
	// change access; default DefaultStepUpWindow.
	StepUpWindow time.Duration
	// Organization is the name shown on every page; default "ferry".
	Organization string
	// Now is the clock; default time.Now.
	Now func() time.Time
	// Logger; default slog.Default().
	Logger *slog.Logger
}

// PeerCounter is one peer's live counters on one node's WireGuard device.
type PeerCounter struct {
	Node, Endpoint string
	// LastHandshake is zero when there was none.
	LastHandshake    time.Time
	RxBytes, TxBytes int64
}

// Validate checks the configuration, naming the first bad field.
func (c *Config) Validate() error {
	switch {
	case c.Node == nil:
		return errors.New("console config: node: required")
	case c.Sessions == nil || c.Users == nil || c.MFA == nil || c.Profiles == nil:
		return errors.New("console config: sessions, users, mfa and profiles: required")
	case len(c.StepUpKey) < minStepUpKey:
		return errors.New("console config: step_up_key: at least 32 bytes required")
	case c.StepUpWindow < 0:
		return errors.New("console config: step_up_window: must not be negative")
	}
	return nil
}

// Console serves /admin. It holds no mutable state and is safe for
// concurrent use.
type Console struct {
	cfg Config
	mux *http.ServeMux
}

// Paths of the console.
const (
	PathRoot     = "/admin"
	pathStatic   = "/admin/static/"
	pathPeople   = "/admin/people"
	pathPerson   = "/admin/people/{id}"
	pathAction   = "/admin/people/{id}/{action}"
	pathDevice   = "/admin/devices/{id}/revoke"
	pathSessions = "/admin/sessions"
	pathKill     = "/admin/sessions/{id}/kill"
	pathProfiles = "/admin/profiles"
	pathEdit     = "/admin/profiles/edit"
	pathApply    = "/admin/profiles/apply"
	pathTraffic  = "/admin/traffic"
	pathReports  = "/admin/reports"
	pathAudit    = "/admin/audit"
)

// New returns the console.
func New(cfg Config) (*Console, error) {
	if err := cfg.Validate(); err != nil {
		return nil, err
	}
	if cfg.StepUpWindow == 0 {
		cfg.StepUpWindow = DefaultStepUpWindow
	}
	if cfg.Now == nil {
		cfg.Now = time.Now
	}
	if cfg.Logger == nil {
		cfg.Logger = slog.Default()
	}
	c := &Console{cfg: cfg, mux: http.NewServeMux()}
	c.routes()
	return c, nil
}

func (c *Console) routes() {
	m := c.mux
	m.HandleFunc("GET "+pathStatic+"{name}", c.static)
	m.HandleFunc("GET "+PathRoot, c.admin(c.overview))
	m.HandleFunc("GET "+PathRoot+"/{$}", c.admin(c.overview))
	m.HandleFunc("GET "+pathPeople, c.admin(c.people))
	m.HandleFunc("GET "+pathPerson, c.admin(c.person))
	m.HandleFunc("GET "+pathAction, c.admin(c.confirm(c.userAction)))
	m.HandleFunc("POST "+pathAction, c.admin(c.change(c.userAction)))
	m.HandleFunc("GET "+pathDevice, c.admin(c.confirm(c.deviceAction)))
	m.HandleFunc("POST "+pathDevice, c.admin(c.change(c.deviceAction)))
	m.HandleFunc("GET "+pathSessions, c.admin(c.sessions))
	m.HandleFunc("GET "+pathKill, c.admin(c.confirm(c.killAction)))
	m.HandleFunc("POST "+pathKill, c.admin(c.change(c.killAction)))
	c.routesMore(m)
	// Anything else under /admin: a page in the console's style, still
	// behind the administrator check, so the console's shape is not
	// revealed to others.
	m.HandleFunc(PathRoot+"/", c.admin(c.notFound))
}

// ServeHTTP serves the console's paths.
func (c *Console) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	c.mux.ServeHTTP(w, r)
}
