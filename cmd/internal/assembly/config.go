package assembly

import (
	"errors"
	"fmt"
	"log/slog"
	"net/netip"
	"time"

	"github.com/prometheus/client_golang/prometheus"

	"github.com/ferryvpn/ferry/audit"
	"github.com/ferryvpn/ferry/authn"
	"github.com/ferryvpn/ferry/authn/scim"
	"github.com/ferryvpn/ferry/authn/signals"
	"github.com/ferryvpn/ferry/cluster"
	"github.com/ferryvpn/ferry/cluster/seal"
	"github.com/ferryvpn/ferry/tunnel"
	"github.com/ferryvpn/ferry/tunnel/capture"
)

// Defaults of Config.
const (
	// DefaultSecretsTimeout bounds the first start's wait for a leader and
	// the creation of the audit and WireGuard keys.
	DefaultSecretsTimeout = 30 * time.Second
	// DefaultJanitorInterval is how often the leader sweeps expired
	// peers, sessions and sign-ins.
	DefaultJanitorInterval = time.Minute
)

// ErrInvalidConfig is returned by Config.Validate and Start when a
// required field is missing or a field is out of range.
var ErrInvalidConfig = errors.New("assembly: invalid config")

// Config is what a node's services are built from. Fields the assembly
// fills in itself (stores, keys, recorders, loggers, clocks) are ignored
// in the nested domain configurations.
type Config struct {
	// Node is the node's cluster node, started and caught up. Required.
	Node *cluster.Node
	// NodeID names this node in audit records and API answers. Required.
	NodeID string
	// MasterKey seals the cluster secrets. Required.
	MasterKey seal.Key
	// DataDir holds the node-local reports' rollup (reports.db). Required.
	DataDir string
	// Logger defaults to a logger that discards; Registerer to none.
	Logger     *slog.Logger
	Registerer prometheus.Registerer
	// Now is the clock of sign-in, sessions, profiles, audit and capture;
	// default time.Now.
	Now func() time.Time

	Audit    Audit
	SignIn   SignIn
	Profiles Profiles
	IdP      IdP
	// DataPlane runs the WireGuard gateway when set; nil leaves the data
	// plane off. Its Cluster, PrivateKey, Address, Pool, Pool6, Recorder,
	// Logger and Registerer are the assembly's.
	DataPlane *tunnel.Config
	// Capture bounds packet captures (capture.Caps defaults apply).
	Capture capture.Caps

	// SecretsTimeout defaults to DefaultSecretsTimeout, JanitorInterval
	// to DefaultJanitorInterval.
	SecretsTimeout  time.Duration
	JanitorInterval time.Duration
}

// Audit configures the audit log, its checkpoints, export and retention.
type Audit struct {
	// CheckpointEvery and CheckpointInterval: see audit.CheckpointerConfig.
	CheckpointEvery    uint64
	CheckpointInterval time.Duration
	// Retention: see audit.RetentionPolicy.
	Retention time.Duration
	// FlowRetention: see audit.TrimmerConfig; 0 leaves flow records to
	// Retention.
	FlowRetention time.Duration
	// FileSinks run on every node from its own journal.
	FileSinks []audit.Sink
	// NetSinks are the configuration file's network sinks, imported once
	// into the cluster by the first leader that sees them; SinkOptions
	// are what network sinks are built with.
	NetSinks    []audit.SinkSpec
	SinkOptions audit.SinkOptions
}

// SignIn configures the sign-in stack (authn.StackConfig).
type SignIn struct {
	// Session is the sessions' policy.
	Session authn.SessionConfig
	// OIDC, when set, adds the sign-in flow and revalidation with the
	// refresh token of each sign-in; nil leaves sign-in off.
	OIDC                                *authn.OIDCConfig
	RevalidateInterval, RevalidateGrace time.Duration
	// Organization names the company on the sign-in pages and the admin
	// console; MFAIssuer is the name authenticator apps show; Home is
	// where a browser goes once signed in.
	Organization, MFAIssuer, Home string
	// StepUpWindow is how long a TOTP code stays fresh for the console's
	// actions that change access (console.Config).
	StepUpWindow time.Duration
}

// Profiles configures profiles and the configuration issued clients get.
type Profiles struct {
	// Pool is the clients' IPv4 pool (required); Pool6 makes it
	// dual-stack.
	Pool, Pool6 netip.Prefix
	// AssignByVerifiedEmail: see profiles.Config.
	AssignByVerifiedEmail bool
	// Endpoint is what clients dial (host:port); MTU goes into issued
	// configurations.
	Endpoint string
	MTU      int
}

// IdP configures what the identity provider pushes and the API shows of it.
type IdP struct {
	// Issuer is the identity provider's issuer; SSFIssuer the Shared
	// Signals transmitter's; PublicURL makes the endpoints shown to
	// administrators absolute.
	Issuer, SSFIssuer, PublicURL string
	// SCIM, when set, serves SCIM provisioning; its Store, Key, Users,
	// Disabler, Recorder and Logger are the assembly's.
	SCIM *scim.Config
	// Signals, when set, receives back-channel logout and Shared Signals;
	// its Store, Users, Sessions, Revoker, Recorder and Logger are the
	// assembly's.
	Signals *signals.Config
}

// Validate reports the first missing or invalid field.
func (c *Config) Validate() error {
	switch {
	case c.Node == nil:
		return fmt.Errorf("%w: node: required", ErrInvalidConfig)
	case c.NodeID == "":
		return fmt.Errorf("%w: node ID: required", ErrInvalidConfig)
	case c.DataDir == "":
		return fmt.Errorf("%w: data directory: required", ErrInvalidConfig)
	case !c.Profiles.Pool.IsValid():
		return fmt.Errorf("%w: profiles pool: required", ErrInvalidConfig)
	case c.SecretsTimeout < 0 || c.JanitorInterval < 0:
		return fmt.Errorf("%w: secrets timeout and janitor interval: must not be negative", ErrInvalidConfig)
	case c.MasterKey.IsZero():
		return fmt.Errorf("%w: master key: required", ErrInvalidConfig)
	}
	return nil
}

func (c *Config) setDefaults() {
	if c.Logger == nil {
		c.Logger = slog.New(slog.DiscardHandler)
	}
	if c.Now == nil {
		c.Now = time.Now
	}
	if c.SecretsTimeout == 0 {
		c.SecretsTimeout = DefaultSecretsTimeout
	}
	if c.JanitorInterval == 0 {
		c.JanitorInterval = DefaultJanitorInterval
	}
}
