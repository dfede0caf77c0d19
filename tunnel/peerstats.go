package tunnel

import (
	"cmp"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"slices"
	"sync"
	"time"

	"golang.zx2c4.com/wireguard/wgctrl/wgtypes"

	"github.com/ferryvpn/ferry/cluster"
	"github.com/ferryvpn/ferry/profiles"
)

// Live per-peer counters. Every node's WireGuard device knows only the
// clients whose tunnels land on it (the load balancer picks the node), so
// a peer's counters are per node: PeerStatsService asks every member for
// its device's and returns them side by side.

// PeerStat is one peer as one node's WireGuard device sees it.
type PeerStat struct {
	// PublicKey is the peer's WireGuard public key (base64).
	PublicKey string `json:"public_key"`
	// Peer is the ferry peer ID the key belongs to ("" if the device
	// holds a key no issued peer has, which the reconciler removes).
	Peer string `json:"peer,omitempty"`
	// Endpoint is the address the peer's last packet came from.
	Endpoint string `json:"endpoint,omitempty"`
	// LastHandshake is the time of the last handshake (zero: none).
	LastHandshake time.Time `json:"last_handshake,omitzero"`
	// RxBytes and TxBytes are the device's counters: what it received
	// from the peer and sent to it.
	RxBytes int64 `json:"rx_bytes"`
	TxBytes int64 `json:"tx_bytes"`
}

// NodePeerStats is one node's answer.
type NodePeerStats struct {
	// Node is the node's ID.
	Node string `json:"node"`
	// At is when the node last read its device (its poll interval, 2 s
	// by default); zero if it has not yet.
	At time.Time `json:"at,omitzero"`
	// Peers are the peers on the device, by public key.
	Peers []PeerStat `json:"peers"`
	// Err says why the node did not answer ("" when it did).
	Err string `json:"error,omitempty"`
}

// keyNames holds peers' public keys in base64 from one poll to the next,
// so that publishing 1,000 peers' counters every 2 s does not encode (and
// allocate) every key again: with the snapshot's other allocations that
// was about a quarter of what a 1,000-peer gateway allocated under load
// (docs/ipv6.md). Used by the reconciler's goroutine only.
type keyNames map[wgtypes.Key]string

// name returns k in base64, remembered.
func (n keyNames) name(k wgtypes.Key) string {
	if n == nil {
		return k.String()
	}
	s, ok := n[k]
	if !ok {
		s = k.String()
		n[k] = s
	}
	return s
}

// fit forgets every name once n holds many more keys than a device of
// peers peers: keys of peers removed do not accumulate.
func (n keyNames) fit(peers int) {
	if len(n) > 2*peers+16 {
		clear(n)
	}
}

// publishStats stores a device read as the latest per-peer counters;
// names, when not nil, keeps the keys' text between calls.
func publishStats(dst interface{ Store(*NodePeerStats) }, node string, at time.Time, peers []wgtypes.Peer, byKey map[wgtypes.Key]*profiles.Peer, names keyNames) {
	names.fit(len(peers))
	s := &NodePeerStats{Node: node, At: at, Peers: make([]PeerStat, 0, len(peers))}
	for i := range peers {
		p := &peers[i]
		ps := PeerStat{PublicKey: names.name(p.PublicKey), LastHandshake: p.LastHandshakeTime, RxBytes: p.ReceiveBytes, TxBytes: p.TransmitBytes}
		if p.LastHandshakeTime.IsZero() || p.LastHandshakeTime.Unix() == 0 {
			ps.LastHandshake = time.Time{}
		}
		if p.Endpoint != nil {
			ps.Endpoint = p.Endpoint.String()
		}
		if info := byKey[p.PublicKey]; info != nil {
			ps.Peer = info.ID
		}
		s.Peers = append(s.Peers, ps)
	}
	slices.SortFunc(s.Peers, func(a, b PeerStat) int { return cmp.Compare(a.PublicKey, b.PublicKey) })
	dst.Store(s)
}

// PeerStats returns this node's latest per-peer counters, as read by the
// reconciler's last device poll. It takes no lock and calls no device.
func (g *Gateway) PeerStats() NodePeerStats {
	if s := g.stats.Load(); s != nil {
		return *s
	}
	return NodePeerStats{Node: g.cfg.Cluster.ID(), Peers: []PeerStat{}}
}

// PeerStatsServiceName is the cluster service (cluster.Node.HandleService)
// through which a node asks the others for their devices' counters.
const PeerStatsServiceName = "peer-stats"

// maxPeerStatsAnswer bounds one node's answer (about 200 bytes a peer).
const maxPeerStatsAnswer = 64 << 20

// PeerStatsConfig configures a PeerStatsService.
type PeerStatsConfig struct {
	// Node is this node's cluster member. Required.
	Node *cluster.Node
	// Local returns this node's counters (Gateway.PeerStats). Required.
	Local func() NodePeerStats
	// Timeout bounds the wait for each other node; default 3s. A node
	// that does not answer in time is reported with its error, and the
	// others' counters are still returned.
	Timeout time.Duration
	// Logger; default slog.Default().
	Logger *slog.Logger
}

// Validate checks the configuration, naming the first bad field.
func (c *PeerStatsConfig) Validate() error {
	switch {
	case c.Node == nil:
		return errors.New("peer stats config: node: required")
	case c.Local == nil:
		return errors.New("peer stats config: local: required")
	case c.Timeout < 0:
		return errors.New("peer stats config: timeout: must not be negative")
	}
	return nil
}

// PeerStatsService serves this node's counters to the other members and
// collects every member's. Close unregisters it.
type PeerStatsService struct {
	cfg  PeerStatsConfig
	log  *slog.Logger
	once sync.Once
}

// NewPeerStatsService registers the service on cfg.Node.
func NewPeerStatsService(cfg PeerStatsConfig) (*PeerStatsService, error) {
	if err := cfg.Validate(); err != nil {
		return nil, err
	}
	if cfg.Timeout == 0 {
		cfg.Timeout = 3 * time.Second
	}
	if cfg.Logger == nil {
		cfg.Logger = slog.Default()
	}
	s := &PeerStatsService{cfg: cfg, log: cfg.Logger.With("component", "peer-stats")}
	cfg.Node.HandleService(PeerStatsServiceName, s.serve)
	return s, nil
}

// Close unregisters the service. It is idempotent.
func (s *PeerStatsService) Close() error {
	s.once.Do(func() { s.cfg.Node.HandleService(PeerStatsServiceName, nil) })
	return nil
}

// serve answers another member: this node's counters as JSON. The cluster
// has authorized the call (an administrator's proof) before it runs.
func (s *PeerStatsService) serve(_ context.Context, _ cluster.ServiceRequest, w io.Writer) error {
	return json.NewEncoder(w).Encode(s.cfg.Local())
}

// Collect returns every member's counters, this node's first, then the
// others by node ID. It asks the others at once, with ctx's proof
// (cluster.WithProof: the caller's administrator session), each bounded by
// the Timeout; a member that fails is listed with its error.
func (s *PeerStatsService) Collect(ctx context.Context) []NodePeerStats {
	self := s.cfg.Node.ID()
	out := []NodePeerStats{s.cfg.Local()}
	out[0].Node = self
	var others []string
	for _, m := range s.cfg.Node.Status().Members {
		if m.ID != self {
			others = append(others, m.ID)
		}
	}
	slices.Sort(others)
	res := make([]NodePeerStats, len(others))
	var wg sync.WaitGroup
	for i, id := range others {
		wg.Add(1)
		go func() {
			defer wg.Done()
			res[i] = s.ask(ctx, id)
		}()
	}
	wg.Wait()
	return append(out, res...)
}

// ask gets one member's counters.
func (s *PeerStatsService) ask(ctx context.Context, node string) NodePeerStats {
	ctx, cancel := context.WithTimeout(ctx, s.cfg.Timeout)
	defer cancel()
	fail := func(err error) NodePeerStats {
		s.log.Warn("peer counters of a node unavailable", "node", node, "err", err)
		return NodePeerStats{Node: node, Peers: []PeerStat{}, Err: err.Error()}
	}
	rc, err := s.cfg.Node.CallService(ctx, node, PeerStatsServiceName, nil)
	if err != nil {
		return fail(err)
	}
	defer rc.Close()
	var st NodePeerStats
	if err := json.NewDecoder(io.LimitReader(rc, maxPeerStatsAnswer)).Decode(&st); err != nil {
		return fail(fmt.Errorf("reading the answer: %w", err))
	}
	st.Node = node
	if st.Peers == nil {
		st.Peers = []PeerStat{}
	}
	return st
}

// PeerCounters is one peer's counters on one node.
type PeerCounters struct {
	Node string
	PeerStat
}

// CountersByKey indexes collected counters by peer public key, each
// peer's nodes in the order collected (Collect: the asked node first).
func CountersByKey(nodes []NodePeerStats) map[string][]PeerCounters {
	out := map[string][]PeerCounters{}
	for _, n := range nodes {
		for _, p := range n.Peers {
			out[p.PublicKey] = append(out[p.PublicKey], PeerCounters{Node: n.Node, PeerStat: p})
		}
	}
	return out
}
