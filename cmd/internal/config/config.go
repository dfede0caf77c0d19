// Package config reads ferryd's configuration file.
//
// The file is YAML. Unknown fields are refused with their line, durations
// are strings such as "1s" or "500ms", and relative paths are resolved
// against the directory of the file. Secrets are never inline: the file
// names the files that hold them. Flags override values of the file (see
// Overrides), and every error names the field it is about, such as
// "cluster.bind_addr: ...".
//
// The package turns a Config into the Config structs of the packages ferryd
// builds (see Config.ClusterConfig); it does not start anything.
package config

import (
	"errors"
	"fmt"
	"net/url"
	"time"
)

// Defaults of optional fields.
const (
	DefaultMetricsAddr = "127.0.0.1:9090"
	DefaultLogLevel    = "info"
	DefaultLogFormat   = "json"
)

// ErrInvalid is returned, wrapped, when a configuration file is malformed or
// fails validation. A validation error is a *FieldError.
var ErrInvalid = errors.New("invalid configuration")

// FieldError is a validation error about one field.
type FieldError struct {
	// Path names the field as written in the file, such as "cluster.bind_addr".
	Path string
	// Msg says what is wrong.
	Msg string
}

func (e *FieldError) Error() string { return e.Path + ": " + e.Msg }

// Unwrap returns ErrInvalid.
func (e *FieldError) Unwrap() error { return ErrInvalid }

// invalidError is a malformed file; it wraps ErrInvalid without repeating
// its text.
type invalidError struct{ msg string }

func (e *invalidError) Error() string { return e.msg }
func (e *invalidError) Unwrap() error { return ErrInvalid }

func invalid(msg string) error { return &invalidError{msg: msg} }

func fieldErr(path, format string, args ...any) error {
	return &FieldError{Path: path, Msg: fmt.Sprintf(format, args...)}
}

// Config is the whole configuration file of ferryd.
type Config struct {
	// NodeID names this node for good: 1-63 lowercase letters, digits and
	// dashes. It is the common name of the node's certificate. Required.
	NodeID string `yaml:"node_id"`
	// DataDir holds the node's replicated state. Required.
	DataDir string `yaml:"data_dir"`
	// MasterKeyFile holds the cluster master key (mode 0600), the same on
	// every node. Required.
	MasterKeyFile string `yaml:"master_key_file"`
	// Organization is the organisation's name shown on the sign-in pages,
	// the portal and in authenticator apps; default "ferry".
	Organization string `yaml:"organization,omitempty"`

	Cluster Cluster `yaml:"cluster"`
	TLS     TLS     `yaml:"tls"`
	API     API     `yaml:"api"`
	Metrics Metrics `yaml:"metrics"`
	Log     Log     `yaml:"log"`

	OIDC      OIDC      `yaml:"oidc,omitempty"`
	Sessions  Sessions  `yaml:"sessions,omitempty"`
	Profiles  Profiles  `yaml:"profiles,omitempty"`
	WireGuard WireGuard `yaml:"wireguard,omitempty"`
	Audit     Audit     `yaml:"audit,omitempty"`
	SCIM      SCIM      `yaml:"scim,omitempty"`
	SSF       SSF       `yaml:"ssf,omitempty"`
	Capture   Capture   `yaml:"capture,omitempty"`
}

// Cluster configures the node-to-node listener and Raft.
type Cluster struct {
	// BindAddr is the host:port of the cluster listener (Raft and write
	// forwarding, mutual TLS). Required.
	BindAddr string `yaml:"bind_addr"`
	// AdvertiseAddr is the host:port other nodes dial. Default: the bound
	// address; required when BindAddr's host is unspecified (0.0.0.0, ::).
	AdvertiseAddr string `yaml:"advertise_addr,omitempty"`
	// Bootstrap makes the node form a new cluster if it has no state yet:
	// true only on the first node of a new cluster.
	Bootstrap bool `yaml:"bootstrap"`
	// Raft timings; zero takes the cluster package's defaults (1s, 1s,
	// 500ms, 5s).
	HeartbeatTimeout   Duration `yaml:"heartbeat_timeout,omitempty"`
	ElectionTimeout    Duration `yaml:"election_timeout,omitempty"`
	LeaderLeaseTimeout Duration `yaml:"leader_lease_timeout,omitempty"`
	WriteTimeout       Duration `yaml:"write_timeout,omitempty"`
}

// TLS names the node's identity files, issued by the cluster CA.
type TLS struct {
	// CAFile is the cluster CA certificate (PEM). Required.
	CAFile string `yaml:"ca_file"`
	// CertFile and KeyFile are the node certificate and its key. Required.
	CertFile string `yaml:"cert_file"`
	KeyFile  string `yaml:"key_file"`
	// CAKeyFile is the CA private key. Optional: when set, and the cluster
	// store holds no CA yet, the node uploads the key sealed under the
	// master key at start. Only the first node needs it, once.
	CAKeyFile string `yaml:"ca_key_file,omitempty"`
}

// API configures the HTTPS API listener.
type API struct {
	// ListenAddr is the host:port of the HTTPS listener. Required.
	ListenAddr string `yaml:"listen_addr"`
	// CertFile holds the server certificate followed by the cluster CA
	// certificate, KeyFile its key. Required.
	CertFile string `yaml:"cert_file"`
	KeyFile  string `yaml:"key_file"`
	// PublicURL is the https:// URL clients use, usually the load
	// balancer's. Optional for now.
	PublicURL string `yaml:"public_url,omitempty"`
	// Names are the DNS names and IP addresses API certificates of the
	// cluster may carry, besides the host of PublicURL: joining nodes get
	// API certificates for these only. Compared case-insensitively.
	Names []string `yaml:"names,omitempty"`
}

// APINames returns the names API certificates may carry: the host of
// api.public_url and api.names.
func (c *Config) APINames() []string {
	out := append([]string(nil), c.API.Names...)
	if u, err := url.Parse(c.API.PublicURL); err == nil && u.Hostname() != "" {
		out = append(out, u.Hostname())
	}
	return out
}

// Metrics configures the Prometheus listener.
type Metrics struct {
	// ListenAddr is the host:port of the plain-HTTP /metrics listener;
	// default DefaultMetricsAddr (loopback).
	ListenAddr string `yaml:"listen_addr,omitempty"`
}

// Log configures logging to standard error.
type Log struct {
	// Level is debug, info, warn or error; default info.
	Level string `yaml:"level,omitempty"`
	// Format is json or text; default json.
	Format string `yaml:"format,omitempty"`
}

// Overrides are values given on the command line; they replace the file's.
// Empty fields leave the file's value alone.
type Overrides struct {
	NodeID      string
	DataDir     string
	LogLevel    string
	LogFormat   string
	APIAddr     string
	MetricsAddr string
}

// apply copies the set overrides into c. Relative paths given on the
// command line were resolved by the caller against the working directory.
func (c *Config) apply(o Overrides) {
	set := func(dst *string, v string) {
		if v != "" {
			*dst = v
		}
	}
	set(&c.NodeID, o.NodeID)
	set(&c.DataDir, o.DataDir)
	set(&c.Log.Level, o.LogLevel)
	set(&c.Log.Format, o.LogFormat)
	set(&c.API.ListenAddr, o.APIAddr)
	set(&c.Metrics.ListenAddr, o.MetricsAddr)
}

// setDefaults fills in the documented defaults of optional fields.
func (c *Config) setDefaults() {
	if c.Metrics.ListenAddr == "" {
		c.Metrics.ListenAddr = DefaultMetricsAddr
	}
	if c.Log.Level == "" {
		c.Log.Level = DefaultLogLevel
	}
	if c.Log.Format == "" {
		c.Log.Format = DefaultLogFormat
	}
	c.setServiceDefaults()
}

// Duration is a time.Duration written as a string such as "1s".
type Duration time.Duration

// D returns d as a time.Duration.
func (d Duration) D() time.Duration { return time.Duration(d) }
