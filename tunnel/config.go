package tunnel

import (
	"errors"
	"fmt"
	"log/slog"
	"net/netip"
	"os"
	"regexp"
	"strconv"
	"strings"
	"time"

	"github.com/google/nftables"
	"github.com/prometheus/client_golang/prometheus"
	"golang.zx2c4.com/wireguard/wgctrl/wgtypes"

	"github.com/ferryvpn/ferry/audit"
	"github.com/ferryvpn/ferry/cluster"
	"github.com/ferryvpn/ferry/profiles"
)

// Defaults of a Config.
const (
	DefaultInterface   = "ferry0"
	DefaultListenPort  = 51820
	DefaultMTU         = 1420
	DefaultTable       = "ferry"
	DefaultMemoryLimit = 1 << 30
	// DefaultPacketBuffers bounds the embedded device's packet buffers:
	// 768 of 64 KiB, 48 MiB at most, whatever the load. With 1,024 a
	// one-peer gateway reached 129 MiB RSS under saturating streams; 768
	// kept it near 105-112 MiB and carried what stock wireguard-go carries
	// (BenchmarkDataPlane 1.01x, BenchmarkGatewayRSS).
	DefaultPacketBuffers = 768
	// MinPacketBuffers is the least PacketBuffers: the device's receive
	// and TUN read routines each hold a batch of 128 while they wait.
	MinPacketBuffers = 512
	// DefaultSessionIdle ends a session after this long without a
	// handshake: WireGuard re-handshakes every 2 minutes while packets
	// flow (keepalives included), so 3 minutes of silence means the client
	// is gone.
	DefaultSessionIdle  = 3 * time.Minute
	DefaultPollInterval = 2 * time.Second
	// DefaultFlowInterval is the flow records' aggregation interval, as
	// AWS VPC Flow Logs' default.
	DefaultFlowInterval = time.Minute
	// MaxFlowInterval bounds FlowInterval (VPC Flow Logs' longest).
	MaxFlowInterval = 10 * time.Minute
	// DefaultFlowActiveTimeout is how often a connection still open
	// reports an interim record (NetFlow's active timeout).
	DefaultFlowActiveTimeout = 5 * time.Minute
	// DefaultFlowMaxRecords bounds the distinct fine keys per interval:
	// enough for 2,000 clients with 5 destinations each.
	DefaultFlowMaxRecords = 10000
	DefaultDenyInterval   = 10 * time.Second
	DefaultResyncTimeout  = 30 * time.Second
)

// Config configures a Gateway. Zero values take the documented defaults.
type Config struct {
	// Cluster is this node of the replicated store; the gateway follows
	// its peers and profiles. Required.
	Cluster *cluster.Node
	// Interface names the WireGuard interface; default "ferry0". UAPI
	// sockets of userspace devices share /var/run/wireguard across network
	// namespaces, so the name must be unique on the machine.
	Interface string
	// ListenPort is the UDP port of WireGuard; default 51820.
	ListenPort int
	// PrivateKey is the interface key, a cluster secret shared by every
	// node so that a client moved to another node only handshakes again.
	// Required.
	PrivateKey wgtypes.Key
	// Address is the server's tunnel address with the pool's prefix
	// length, e.g. 100.64.0.1/16 (profiles.Store.ServerAddr). Required.
	Address netip.Prefix
	// Pool is the client address pool; default Address masked.
	Pool netip.Prefix
	// Pool6, when set, makes the data plane dual-stack: the IPv6 client
	// pool (profiles.Config.Pool6). Clients' IPv6 addresses are
	// profiles.Address6 of their IPv4 ones; the interface also gets the
	// server's (Address6 of Address) with Pool6's prefix length.
	Pool6 netip.Prefix
	// MTU of the interface; default 1420.
	MTU int
	// Egress, when set, limits masquerading to traffic leaving through
	// this interface (the VPC side); default every interface but ours.
	Egress string
	// Table names ferry's nftables table; default "ferry".
	Table string
	// Userspace forces the embedded wireguard-go device even where the
	// kernel has WireGuard.
	Userspace bool
	// MemoryLimit is the Go runtime's soft memory limit, in bytes, set while
	// the embedded wireguard-go device runs: its buffer pools grow without
	// bound under load and are released only by garbage collection, which
	// the limit makes come sooner. Default 1 GiB; negative leaves the
	// runtime's limit alone.
	MemoryLimit int64
	// PacketBuffers is how many packet buffers (64 KiB each) the embedded
	// wireguard-go device may have in use at once, and how many of each of
	// its queue elements: beyond it the device waits for buffers to come
	// back (back-pressure, as a kernel queue drops) instead of allocating
	// more, so its memory under load is bounded (stock wireguard-go's is
	// not). Default DefaultPacketBuffers; at least MinPacketBuffers.
	PacketBuffers int

	// Recorder receives session and flow audit events. Required.
	Recorder audit.Recorder
	// Now is the clock for expiry and sessions; default time.Now.
	Now func() time.Time
	// Logger; default slog.Default().
	Logger *slog.Logger
	// Registerer, when set, receives the gateway's metrics.
	Registerer prometheus.Registerer

	// SessionIdle ends a session after this long without a handshake;
	// default 3 minutes.
	SessionIdle time.Duration
	// PollInterval is how often the device is read for sessions and
	// byte counts; default 2s.
	PollInterval time.Duration
	// FlowInterval is the aggregation interval of flow records: every
	// interval, one tuple per (client, destination, protocol, port,
	// verdict) seen, a client's tuples of one verdict in one flow.accept or
	// flow.deny event; default 1 minute, at most
	// 10 minutes (production: 1 to 10 minutes, like VPC Flow Logs).
	FlowInterval time.Duration
	// FlowActiveTimeout is how often a connection still open adds an
	// interim report to its record; default 5 minutes.
	FlowActiveTimeout time.Duration
	// FlowMaxRecords bounds the distinct tuples held per interval (memory
	// and journal growth); beyond it tuples fold to (client, destination)
	// records, then per client, each with a count of what was folded and
	// the metric ferry_tunnel_flow_folded_total. Nothing is dropped.
	// Default 10,000.
	FlowMaxRecords int
	// DenyInterval is how often the denied-attempts set is read into the
	// current interval's records; default 10s.
	DenyInterval time.Duration
	// DNS configures the node's DNS forwarder, which makes host rules
	// work: answers become per-client permissions before they are sent.
	DNS DNSConfig

	// NoFlows disables conntrack flow events (e.g. where conntrack netlink
	// is unavailable); denied attempts are still reported.
	NoFlows bool
}

var ifacePattern = regexp.MustCompile(`^[A-Za-z0-9_.-]{1,15}$`)

// Validate checks the configuration, naming the first bad field.
func (c *Config) Validate() error {
	switch {
	case c.Cluster == nil:
		return errors.New("tunnel config: cluster: required")
	case c.Recorder == nil:
		return errors.New("tunnel config: recorder: required")
	case c.PrivateKey == (wgtypes.Key{}):
		return errors.New("tunnel config: private_key: required")
	case !c.Address.IsValid() || !c.Address.Addr().Is4():
		return errors.New("tunnel config: address: an IPv4 address with the pool's prefix length is required, e.g. 100.64.0.1/16")
	case c.Address.Bits() > 30:
		return fmt.Errorf("tunnel config: address %s: prefix /%d leaves no room for clients", c.Address, c.Address.Bits())
	case c.Interface != "" && !ifacePattern.MatchString(c.Interface):
		return fmt.Errorf("tunnel config: interface %q: want 1-15 letters, digits, '_', '.' or '-'", c.Interface)
	case c.Egress != "" && !ifacePattern.MatchString(c.Egress):
		return fmt.Errorf("tunnel config: egress %q: not an interface name", c.Egress)
	case c.ListenPort < 0 || c.ListenPort > 65535:
		return fmt.Errorf("tunnel config: listen_port %d: out of range", c.ListenPort)
	case c.MTU != 0 && (c.MTU < 576 || c.MTU > 9000):
		return fmt.Errorf("tunnel config: mtu %d: out of range 576-9000", c.MTU)
	}
	if c.Pool6.IsValid() {
		if err := profiles.ValidPool6(c.Pool6); err != nil {
			return fmt.Errorf("tunnel config: pool6: %w", err)
		}
	}
	if c.Pool.IsValid() && !c.Pool.Contains(c.Address.Addr()) {
		return fmt.Errorf("tunnel config: pool %s does not contain address %s", c.Pool, c.Address.Addr())
	}
	for name, d := range map[string]time.Duration{"session_idle": c.SessionIdle, "poll_interval": c.PollInterval,
		"flow_interval": c.FlowInterval, "flow_active_timeout": c.FlowActiveTimeout, "deny_interval": c.DenyInterval} {
		if d < 0 {
			return fmt.Errorf("tunnel config: %s: must not be negative", name)
		}
	}
	if c.FlowInterval > MaxFlowInterval {
		return fmt.Errorf("tunnel config: flow_interval %s: at most %s", c.FlowInterval, MaxFlowInterval)
	}
	if c.PacketBuffers != 0 && (c.PacketBuffers < MinPacketBuffers || c.PacketBuffers > 1<<20) {
		return fmt.Errorf("tunnel config: packet_buffers %d: between %d and %d", c.PacketBuffers, MinPacketBuffers, 1<<20)
	}
	if c.FlowMaxRecords < 0 {
		return errors.New("tunnel config: flow_max_records: must not be negative")
	}
	return c.DNS.validate()
}

func (c *Config) setDefaults() {
	if c.Interface == "" {
		c.Interface = DefaultInterface
	}
	if c.ListenPort == 0 {
		c.ListenPort = DefaultListenPort
	}
	if !c.Pool.IsValid() {
		c.Pool = c.Address.Masked()
	}
	c.Pool = c.Pool.Masked()
	if c.Pool6.IsValid() {
		c.Pool6 = c.Pool6.Masked()
	}
	if c.MTU == 0 {
		c.MTU = DefaultMTU
	}
	if c.Table == "" {
		c.Table = DefaultTable
	}
	if c.MemoryLimit == 0 {
		c.MemoryLimit = DefaultMemoryLimit
	}
	if c.PacketBuffers == 0 {
		c.PacketBuffers = DefaultPacketBuffers
	}
	if c.Now == nil {
		c.Now = time.Now
	}
	if c.Logger == nil {
		c.Logger = slog.Default()
	}
	if c.SessionIdle == 0 {
		c.SessionIdle = DefaultSessionIdle
	}
	if c.PollInterval == 0 {
		c.PollInterval = DefaultPollInterval
	}
	if c.FlowInterval == 0 {
		c.FlowInterval = DefaultFlowInterval
	}
	if c.FlowActiveTimeout == 0 {
		c.FlowActiveTimeout = DefaultFlowActiveTimeout
	}
	if c.FlowMaxRecords == 0 {
		c.FlowMaxRecords = DefaultFlowMaxRecords
	}
	if c.DenyInterval == 0 {
		c.DenyInterval = DefaultDenyInterval
	}
}

// Available reports whether this process can run the data plane here, and
// if not, what is missing: root (CAP_NET_ADMIN), a WireGuard device (kernel
// support or /dev/net/tun for the embedded one) and nftables over netlink.
// cmd uses it to say clearly what it skipped.
func Available() error {
	var errs []error
	if !hasNetAdmin() {
		errs = append(errs, errors.New("no CAP_NET_ADMIN (run as root, or grant the capability as the systemd unit does)"))
	}
	if _, err := os.Stat("/dev/net/tun"); err != nil {
		errs = append(errs, fmt.Errorf("no /dev/net/tun for the embedded WireGuard device: %w", err))
	}
	if len(errs) == 0 {
		c, err := nftables.New()
		if err == nil {
			_, err = c.ListTablesOfFamily(nftables.TableFamilyIPv4)
		}
		if err != nil {
			errs = append(errs, fmt.Errorf("nftables over netlink unavailable: %w", err))
		}
	}
	if len(errs) > 0 {
		return fmt.Errorf("tunnel: data plane unavailable: %w", errors.Join(errs...))
	}
	return nil
}

// capNetAdmin is CAP_NET_ADMIN's bit in the capability sets.
const capNetAdmin = 12

// hasNetAdmin reports whether the process holds CAP_NET_ADMIN in its
// effective set: root, or a service granted just that capability.
func hasNetAdmin() bool {
	if os.Geteuid() == 0 {
		return true
	}
	b, err := os.ReadFile("/proc/self/status")
	if err != nil {
		return false
	}
	for _, line := range strings.Split(string(b), "\n") {
		if v, ok := strings.CutPrefix(line, "CapEff:"); ok {
			caps, err := strconv.ParseUint(strings.TrimSpace(v), 16, 64)
			return err == nil && caps&(1<<capNetAdmin) != 0
		}
	}
	return false
}
