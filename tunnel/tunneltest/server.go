package tunneltest

import (
	"bytes"
	"context"
	"crypto/tls"
	"encoding/json"
	"errors"
	"fmt"
	"log/slog"
	"net/netip"
	"os"
	"sync"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/common/expfmt"
	"golang.zx2c4.com/wireguard/wgctrl/wgtypes"

	"github.com/ferryvpn/ferry/audit"
	"github.com/ferryvpn/ferry/cluster"
	"github.com/ferryvpn/ferry/cluster/pki"
	"github.com/ferryvpn/ferry/tunnel"
)

// ServerConfig runs a cluster node and a gateway in an agent.
type ServerConfig struct {
	NodeID    string `json:"node_id"`
	DataDir   string `json:"data_dir"`
	Bind      string `json:"bind"` // cluster listener host:port
	Bootstrap bool   `json:"bootstrap"`
	CACert    []byte `json:"ca_cert"`
	CAKey     []byte `json:"ca_key"`

	Interface         string        `json:"interface"`
	ListenPort        int           `json:"listen_port,omitempty"` // default tunnel.DefaultListenPort
	PrivateKey        string        `json:"private_key"`
	Address           string        `json:"address"`         // e.g. 100.64.0.1/16
	Pool6             string        `json:"pool6,omitempty"` // e.g. fd66:6572:7279::/96; empty: IPv4 only
	Egress            string        `json:"egress,omitempty"`
	PollInterval      time.Duration `json:"poll_interval,omitempty"`
	DenyInterval      time.Duration `json:"deny_interval,omitempty"`
	FlowWindow        time.Duration `json:"flow_window,omitempty"` // the flow records' interval
	FlowActiveTimeout time.Duration `json:"flow_active_timeout,omitempty"`
	FlowMaxRecords    int           `json:"flow_max_records,omitempty"`
	SessionIdle       time.Duration `json:"session_idle,omitempty"`
	MemoryLimit       int64         `json:"memory_limit,omitempty"`
	PacketBuffers     int           `json:"packet_buffers,omitempty"`
	NoFlows           bool          `json:"no_flows,omitempty"`
	// Kernel lets the gateway use kernel WireGuard where the kernel has
	// it (the production path); otherwise it always runs the embedded
	// wireguard-go device.
	Kernel bool `json:"kernel,omitempty"`
	// DNS runs the node's DNS forwarder with these upstreams
	// ("addr:port"), grace and options.
	DNS             bool          `json:"dns,omitempty"`
	DNSUpstreams    []string      `json:"dns_upstreams,omitempty"`
	DNSGrace        time.Duration `json:"dns_grace,omitempty"`
	DNSRefuseOthers bool          `json:"dns_refuse_others,omitempty"`
	// Preload is written to the store before the gateway starts, in
	// transactions of one slice each.
	Preload [][]KV `json:"preload,omitempty"`
	// Extension names a registered Extension (RegisterExtension) to run
	// beside the gateway, with ExtensionConfig as its configuration.
	Extension       string          `json:"extension,omitempty"`
	ExtensionConfig json.RawMessage `json:"extension_config,omitempty"`
}

// KV is one key and value to write.
type KV struct {
	Key   string `json:"key"`
	Value []byte `json:"value"`
}

func putMany(ctx context.Context, node *cluster.Node, kvs []KV) error {
	for len(kvs) > 0 {
		n := min(len(kvs), 1000)
		var ops []cluster.Op
		for _, kv := range kvs[:n] {
			ops = append(ops, cluster.Put(kv.Key, kv.Value))
		}
		if _, err := node.Txn(ctx, cluster.Txn{Ops: ops}); err != nil {
			return err
		}
		kvs = kvs[n:]
	}
	return nil
}

// Recorder keeps audit events in memory. It is safe for concurrent use.
type Recorder struct {
	mu     sync.Mutex // guards events
	events []audit.Event
}

var _ audit.Recorder = (*Recorder)(nil)

// Record implements audit.Recorder.
func (r *Recorder) Record(_ context.Context, e audit.Event) error {
	if e.Time.IsZero() {
		e.Time = time.Now()
	}
	r.mu.Lock()
	defer r.mu.Unlock()
	r.events = append(r.events, e)
	return nil
}

// Events returns a copy of what was recorded.
func (r *Recorder) Events() []audit.Event {
	r.mu.Lock()
	defer r.mu.Unlock()
	return append([]audit.Event(nil), r.events...)
}

type server struct {
	started time.Time
	node    *cluster.Node
	gw      *tunnel.Gateway
	rec     *Recorder
	stats   *tunnel.PeerStatsService
	iface   string
	reg     *prometheus.Registry
	done    chan error
	ext     Extension // nil without ServerConfig.Extension
	capt    captures  // packet captures run by capture_start
}

func startServer(ctx context.Context, wg *sync.WaitGroup, cfg *ServerConfig) (*server, error) {
	ca, err := pki.ParseCA(cfg.CACert, cfg.CAKey)
	if err != nil {
		return nil, err
	}
	key, err := pki.NewKey()
	if err != nil {
		return nil, err
	}
	csr, err := pki.NewCSR(key, cfg.NodeID)
	if err != nil {
		return nil, err
	}
	certPEM, err := ca.IssueNode(csr, cfg.NodeID, []string{cluster.DefaultServerName}, nil, 24*time.Hour, time.Now())
	if err != nil {
		return nil, err
	}
	keyPEM, err := pki.KeyPEM(key)
	if err != nil {
		return nil, err
	}
	cert, err := tls.X509KeyPair(certPEM, keyPEM)
	if err != nil {
		return nil, err
	}
	log := slog.New(slog.NewTextHandler(os.Stderr, &slog.HandlerOptions{Level: slog.LevelInfo}))
	node, err := cluster.New(cluster.Config{
		NodeID: cfg.NodeID, DataDir: cfg.DataDir, BindAddr: cfg.Bind, Certificate: cert, RootCAs: ca.Pool(),
		Bootstrap: cfg.Bootstrap, NoSync: true, Logger: log.With("component", "cluster"),
		Authorize: authorizeAdmin,
	})
	if err != nil {
		return nil, err
	}
	s := &server{node: node, rec: &Recorder{}, reg: prometheus.NewRegistry(), done: make(chan error, 1)}
	if cfg.Bootstrap {
		wctx, cancel := context.WithTimeout(ctx, 20*time.Second)
		err := node.WaitLeader(wctx)
		cancel()
		if err != nil {
			node.Close()
			return nil, err
		}
		for _, kvs := range cfg.Preload {
			if err := putMany(ctx, node, kvs); err != nil {
				node.Close()
				return nil, fmt.Errorf("preloading: %w", err)
			}
		}
	}
	priv, err := wgtypes.ParseKey(cfg.PrivateKey)
	if err != nil {
		node.Close()
		return nil, err
	}
	var pool6 netip.Prefix
	if cfg.Pool6 != "" {
		if pool6, err = netip.ParsePrefix(cfg.Pool6); err != nil {
			node.Close()
			return nil, err
		}
	}
	addr, err := netip.ParsePrefix(cfg.Address)
	if err != nil {
		node.Close()
		return nil, err
	}
	dnsCfg := tunnel.DNSConfig{Enabled: cfg.DNS, Grace: cfg.DNSGrace, RefuseOthers: cfg.DNSRefuseOthers}
	for _, u := range cfg.DNSUpstreams {
		ap, err := netip.ParseAddrPort(u)
		if err != nil {
			node.Close()
			return nil, err
		}
		dnsCfg.Upstreams = append(dnsCfg.Upstreams, ap)
	}
	s.gw, err = tunnel.New(tunnel.Config{DNS: dnsCfg,
		Cluster: node, Interface: cfg.Interface, ListenPort: cfg.ListenPort, PrivateKey: priv, Address: addr, Pool6: pool6, Egress: cfg.Egress, Userspace: !cfg.Kernel,
		Recorder: s.rec, Logger: log, Registerer: s.reg, MemoryLimit: cfg.MemoryLimit, PacketBuffers: cfg.PacketBuffers,
		PollInterval: cfg.PollInterval, DenyInterval: cfg.DenyInterval, FlowInterval: cfg.FlowWindow, FlowActiveTimeout: cfg.FlowActiveTimeout, FlowMaxRecords: cfg.FlowMaxRecords,
		SessionIdle: cfg.SessionIdle, NoFlows: cfg.NoFlows,
	})
	if err != nil {
		node.Close()
		return nil, fmt.Errorf("starting gateway: %w", err)
	}
	s.iface = cfg.Interface
	if s.stats, err = tunnel.NewPeerStatsService(tunnel.PeerStatsConfig{Node: node, Local: s.gw.PeerStats, Logger: log}); err != nil {
		s.gw.Close()
		node.Close()
		return nil, err
	}
	if cfg.Extension != "" {
		if s.ext, err = startExtension(ctx, node, cfg.Extension, cfg.ExtensionConfig); err != nil {
			s.gw.Close()
			node.Close()
			return nil, fmt.Errorf("starting extension %s: %w", cfg.Extension, err)
		}
	}
	s.started = time.Now()
	wg.Add(1)
	go func() {
		defer wg.Done()
		s.done <- s.gw.Run(ctx)
	}()
	return s, nil
}

func (s *server) close() {
	if s.ext != nil {
		s.ext.Close()
	}
	s.stats.Close()
	s.gw.Close()
	s.node.Close()
}

// adminProof is the proof the peer_stats op attaches; agents' nodes accept
// it as an administrator's, as ferryd accepts an administrator's session.
const adminProof = "tunneltest-admin"

func authorizeAdmin(_ context.Context, req cluster.AuthRequest) (string, error) {
	if string(req.Proof) != adminProof {
		return "", errors.New("no administrator's proof")
	}
	return "test-admin", nil
}

func (s *server) handle(ctx context.Context, req Request) (Response, bool, error) {
	if s.ext != nil {
		if resp, ok, err := s.ext.Handle(ctx, req); ok {
			return resp, ok, err
		}
	}
	switch req.Op {
	case "put":
		rev, err := s.node.Put(ctx, req.Key, req.Value)
		return Response{Rev: rev}, true, err
	case "putmany":
		var kvs []KV
		if err := json.Unmarshal(req.Value, &kvs); err != nil {
			return Response{}, true, err
		}
		return Response{}, true, putMany(ctx, s.node, kvs)
	case "started":
		return Response{Elapsed: time.Since(s.started), RSS: rss(), Text: fmt.Sprint(hwm())}, true, nil
	case "revoke_latency":
		// Write req.Value at req.Key and wait until req.Addr leaves the
		// client map: commit-to-enforcement as the kernel sees it.
		return revokeLatency(ctx, s.node, s.iface, req)
	case "delete":
		return Response{}, true, s.node.Delete(ctx, req.Key)
	case "leader":
		c, cancel := context.WithTimeout(ctx, 10*time.Second)
		defer cancel()
		return Response{}, true, s.node.WaitLeader(c)
	case "addvoter":
		return Response{}, true, s.node.AddVoter(ctx, req.ID, req.Addr)
	case "capture_start", "capture_stop":
		return s.captureOp(req)
	case "pubkey":
		return Response{Text: s.gw.PublicKey().String()}, true, nil
	case "peer_stats":
		// Every node's per-peer counters, asked as an administrator
		// would (Key "noproof": without a proof).
		if req.Key != "noproof" {
			ctx = cluster.WithProof(ctx, []byte(adminProof))
		}
		b, err := json.Marshal(s.stats.Collect(ctx))
		return Response{Text: string(b)}, true, err
	case "events":
		return Response{Events: s.rec.Events()}, true, nil
	case "metrics":
		mfs, err := s.reg.Gather()
		if err != nil {
			return Response{}, true, err
		}
		var b bytes.Buffer
		for _, mf := range mfs {
			if _, err := expfmt.MetricFamilyToText(&b, mf); err != nil {
				return Response{}, true, err
			}
		}
		return Response{Text: b.String()}, true, nil
	case "applied":
		// Wait until this node has applied revision Rev-or-later writes:
		// a linearizable read does exactly that.
		_, _, err := s.node.Get(ctx, "tunneltest/none", cluster.Linearizable)
		return Response{}, true, err
	}
	return Response{}, false, nil
}
