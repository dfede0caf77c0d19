package cluster

import (
	"context"
	"crypto/tls"
	"crypto/x509"
	"errors"
	"fmt"
	"log/slog"
	"net"
	"regexp"
	"slices"
	"time"

	"github.com/prometheus/client_golang/prometheus"
)

// DefaultServerName is the DNS name every node certificate carries; nodes
// verify each other's certificates against it and the cluster CA, not
// against changing IP addresses.
const DefaultServerName = "ferry-cluster"

// Config configures a Node. Zero values take the documented defaults.
type Config struct {
	// NodeID names this node, stable across restarts: lowercase letters,
	// digits and dashes, as in its certificate's common name. Required.
	NodeID string
	// DataDir holds the Raft log, snapshots and the state file. Required.
	DataDir string
	// BindAddr is the host:port of the cluster listener (Raft and
	// forwarding). Required unless Listener is set.
	BindAddr string
	// AdvertiseAddr is the host:port other nodes dial; default BindAddr (or
	// the listener's address). It must not be an unspecified address.
	AdvertiseAddr string
	// Listener, when set, is used instead of listening on BindAddr.
	Listener net.Listener
	// Dial opens connections to other nodes; default net.Dialer.
	Dial func(ctx context.Context, network, addr string) (net.Conn, error)

	// Certificate is this node's certificate and key, issued by the cluster
	// CA with both server and client usages. Required.
	Certificate tls.Certificate
	// RootCAs holds the cluster CA. Required.
	RootCAs *x509.CertPool
	// ServerName is the name node certificates are verified against;
	// default DefaultServerName.
	ServerName string

	// Bootstrap makes this node form a new single-node cluster if it has
	// no Raft state yet. Joining nodes leave it false.
	Bootstrap bool

	// HeartbeatTimeout, ElectionTimeout and LeaderLeaseTimeout tune Raft;
	// defaults 1s, 1s and 500ms (hashicorp/raft's defaults).
	HeartbeatTimeout   time.Duration
	ElectionTimeout    time.Duration
	LeaderLeaseTimeout time.Duration
	// CommitTimeout is how long an idle leader waits before telling
	// followers the new commit index; default 5ms. Raft's own default
	// (50ms) makes every linearizable read on a follower right after a
	// write wait that long.
	CommitTimeout time.Duration
	// WriteTimeout bounds how long a write or linearizable read waits for a
	// leader with quorum before failing with ErrNoQuorum; default 5s.
	WriteTimeout time.Duration
	// SnapshotThreshold is the number of log entries after which a snapshot
	// is taken; default 8192. TrailingLogs entries stay in the log after a
	// snapshot for slow followers; default 10240.
	SnapshotThreshold uint64
	TrailingLogs      uint64
	// SnapshotInterval is how often Raft checks whether to snapshot;
	// default 2 minutes.
	SnapshotInterval time.Duration
	// ReadyLag is how many entries a follower may trail the leader's
	// applied index and still report ready; default DefaultReadyLag.
	ReadyLag uint64
	// NoSync disables fsync of the Raft log. Unsafe: only for throwaway
	// development nodes and benchmarks that measure its cost.
	NoSync bool

	// Logger receives structured logs; default slog.Default().
	Logger *slog.Logger
	// Registerer, when set, receives the node's Prometheus metrics.
	Registerer prometheus.Registerer

	// Now is the clock certificates are checked against; default
	// time.Now.
	Now func() time.Time
	// OnPeerEvent, when set, is told of every refused request on the
	// cluster port and of every forwarded membership change, restore,
	// promotion and renewal, for the audit trail. It is called on the
	// serving goroutine: it must return quickly and not call the Node.
	OnPeerEvent func(PeerEvent)
	// Authorize, when set, decides forwarded membership changes and
	// restores: it checks the proof the forwarding node attached
	// (WithProof) and returns who it names. Without it the leader takes
	// such requests only from its own callers, never forwarded.
	Authorize func(ctx context.Context, req AuthRequest) (actor string, err error)
	// Renew, when set, signs a member's renewed node certificate: it gets
	// the asking member's ID and its DER certificate request and returns
	// the certificate in PEM. Without it renewals are refused.
	Renew func(ctx context.Context, nodeID string, csrDER []byte) ([]byte, error)
	// OnRenewed, when set, keeps a renewed node certificate and its key
	// (PEM), as the node's files; the node uses the new certificate only
	// if it returns nil.
	OnRenewed func(certPEM, keyPEM []byte) error
	// NonvoterTimeout is how long the leader keeps a non-voter that has
	// not been promoted (a node admitted that never started) before
	// removing it and revoking its certificates; default 10 minutes.
	NonvoterTimeout time.Duration
}

var nodeIDPattern = regexp.MustCompile(`^[a-z0-9][a-z0-9-]{0,62}$`)

// Validate checks the configuration, naming the first bad field.
func (c *Config) Validate() error {
	switch {
	case !nodeIDPattern.MatchString(c.NodeID):
		return fmt.Errorf("cluster config: node_id %q: want 1-63 lowercase letters, digits or dashes", c.NodeID)
	case c.DataDir == "":
		return errors.New("cluster config: data_dir: required")
	case c.BindAddr == "" && c.Listener == nil:
		return errors.New("cluster config: bind_addr: required")
	case len(c.Certificate.Certificate) == 0 || c.Certificate.PrivateKey == nil:
		return errors.New("cluster config: certificate: a node certificate and key are required")
	case c.RootCAs == nil:
		return errors.New("cluster config: root CAs: the cluster CA is required")
	}
	if c.BindAddr != "" {
		if _, _, err := net.SplitHostPort(c.BindAddr); err != nil {
			return fmt.Errorf("cluster config: bind_addr %q: %v", c.BindAddr, err)
		}
	}
	if c.AdvertiseAddr != "" {
		host, _, err := net.SplitHostPort(c.AdvertiseAddr)
		if err != nil {
			return fmt.Errorf("cluster config: advertise_addr %q: %v", c.AdvertiseAddr, err)
		}
		if ip := net.ParseIP(host); ip != nil && ip.IsUnspecified() {
			return fmt.Errorf("cluster config: advertise_addr %q: must be an address other nodes can reach", c.AdvertiseAddr)
		}
	}
	for name, d := range map[string]time.Duration{
		"heartbeat_timeout": c.HeartbeatTimeout, "election_timeout": c.ElectionTimeout,
		"leader_lease_timeout": c.LeaderLeaseTimeout, "write_timeout": c.WriteTimeout,
		"snapshot_interval": c.SnapshotInterval, "commit_timeout": c.CommitTimeout,
		"nonvoter_timeout": c.NonvoterTimeout,
	} {
		if d < 0 {
			return fmt.Errorf("cluster config: %s: must not be negative", name)
		}
	}
	return nil
}

func (c *Config) setDefaults() {
	if c.ServerName == "" {
		c.ServerName = DefaultServerName
	}
	if c.HeartbeatTimeout == 0 {
		c.HeartbeatTimeout = time.Second
	}
	if c.ElectionTimeout == 0 {
		c.ElectionTimeout = time.Second
	}
	if c.LeaderLeaseTimeout == 0 {
		c.LeaderLeaseTimeout = 500 * time.Millisecond
	}
	if c.LeaderLeaseTimeout > c.HeartbeatTimeout {
		c.LeaderLeaseTimeout = c.HeartbeatTimeout
	}
	if c.WriteTimeout == 0 {
		c.WriteTimeout = 5 * time.Second
	}
	if c.CommitTimeout == 0 {
		c.CommitTimeout = 5 * time.Millisecond
	}
	if c.SnapshotThreshold == 0 {
		c.SnapshotThreshold = 8192
	}
	if c.TrailingLogs == 0 {
		c.TrailingLogs = 10240
	}
	if c.SnapshotInterval == 0 {
		c.SnapshotInterval = 2 * time.Minute
	}
	if c.ReadyLag == 0 {
		c.ReadyLag = DefaultReadyLag
	}
	if c.Logger == nil {
		c.Logger = slog.Default()
	}
	if c.Dial == nil {
		var d net.Dialer
		c.Dial = d.DialContext
	}
	if c.Now == nil {
		c.Now = time.Now
	}
	if c.NonvoterTimeout == 0 {
		c.NonvoterTimeout = 10 * time.Minute
	}
}

// tlsConfigs returns the TLS configurations of the cluster port. current,
// when set, returns the node's certificate at each handshake (it changes on
// renewal); otherwise c.Certificate is used.
func (c *Config) tlsConfigs(current func() *tls.Certificate) (server, client *tls.Config) {
	if current == nil {
		cert := c.Certificate
		current = func() *tls.Certificate { return &cert }
	}
	server = &tls.Config{
		MinVersion:     tls.VersionTLS13,
		GetCertificate: func(*tls.ClientHelloInfo) (*tls.Certificate, error) { return current(), nil },
		ClientAuth:     tls.RequireAndVerifyClientCert,
		ClientCAs:      c.RootCAs,
		Time:           c.Now,
	}
	client = &tls.Config{
		MinVersion:           tls.VersionTLS13,
		GetClientCertificate: func(*tls.CertificateRequestInfo) (*tls.Certificate, error) { return current(), nil },
		RootCAs:              c.RootCAs,
		ServerName:           c.ServerName,
		Time:                 c.Now,
		// The CA also issues HTTPS API certificates (server usage only);
		// only node certificates, which carry client usage too, may
		// answer as a node.
		VerifyConnection: func(cs tls.ConnectionState) error {
			if len(cs.PeerCertificates) == 0 || !slices.Contains(cs.PeerCertificates[0].ExtKeyUsage, x509.ExtKeyUsageClientAuth) {
				return errors.New("cluster: peer certificate is not a node certificate")
			}
			return nil
		},
	}
	return server, client
}
