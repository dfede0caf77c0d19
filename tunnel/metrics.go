package tunnel

import (
	"sync"

	"github.com/prometheus/client_golang/prometheus"
)

// metrics are the gateway's Prometheus metrics. Gauges and counters are
// safe for concurrent use; last* fields belong to their single updater.
type metrics struct {
	peers       prometheus.Gauge
	sessions    prometheus.Gauge
	bytes       *prometheus.CounterVec
	drops       *prometheus.CounterVec
	flows       *prometheus.CounterVec
	lag         prometheus.Histogram
	duration    prometheus.Histogram
	reconciles  *prometheus.CounterVec
	auditDrops  prometheus.Counter
	folded      prometheus.Counter
	lastRx      int64
	lastTx      int64
	dropsMu     sync.Mutex // guards lastDrops
	lastDrops   map[string]uint64
	collectors  []prometheus.Collector
	registerer  prometheus.Registerer
	unregisters sync.Once
}

func newMetrics() *metrics {
	m := &metrics{
		peers: prometheus.NewGauge(prometheus.GaugeOpts{Name: "ferry_tunnel_peers",
			Help: "WireGuard peers configured in this node's device."}),
		sessions: prometheus.NewGauge(prometheus.GaugeOpts{Name: "ferry_tunnel_sessions_active",
			Help: "Client sessions active on this node."}),
		bytes: prometheus.NewCounterVec(prometheus.CounterOpts{Name: "ferry_tunnel_bytes_total",
			Help: "Tunnel bytes through this node's device, by direction (rx: from clients, tx: to clients)."}, []string{"direction"}),
		drops: prometheus.NewCounterVec(prometheus.CounterOpts{Name: "ferry_tunnel_drops_total",
			Help: "Packets dropped by the enforcement rules, by reason."}, []string{"reason"}),
		flows: prometheus.NewCounterVec(prometheus.CounterOpts{Name: "ferry_tunnel_flows_total",
			Help: "Flows counted into flow records, by verdict (accept: connections; deny: denied attempts)."}, []string{"verdict"}),
		lag: prometheus.NewHistogram(prometheus.HistogramOpts{Name: "ferry_tunnel_reconcile_lag_seconds",
			Help:    "Time from a replicated change (or a peer's expiry) reaching this node to its enforcement.",
			Buckets: []float64{.001, .005, .01, .025, .05, .1, .25, .5, 1, 2.5, 5, 10}}),
		duration: prometheus.NewHistogram(prometheus.HistogramOpts{Name: "ferry_tunnel_reconcile_duration_seconds",
			Help:    "Time one reconciliation takes to program the firewall and the device.",
			Buckets: []float64{.001, .005, .01, .025, .05, .1, .25, .5, 1, 2.5, 5, 10, 30}}),
		reconciles: prometheus.NewCounterVec(prometheus.CounterOpts{Name: "ferry_tunnel_reconciles_total",
			Help: "Reconciliations, by result."}, []string{"result"}),
		auditDrops: prometheus.NewCounter(prometheus.CounterOpts{Name: "ferry_tunnel_audit_events_dropped_total",
			Help: "Flow audit events dropped because the audit queue was full."}),
		folded: prometheus.NewCounter(prometheus.CounterOpts{Name: "ferry_tunnel_flow_folded_total",
			Help: "Flow contributions folded to a coarser key (client and destination, or client) because an interval held more distinct tuples than flow_max_records; their counts are kept."}),
		lastDrops: map[string]uint64{},
	}
	for _, r := range dropReasons {
		m.drops.WithLabelValues(r)
	}
	m.collectors = []prometheus.Collector{m.peers, m.sessions, m.bytes, m.drops, m.flows, m.lag, m.duration, m.reconciles, m.auditDrops, m.folded}
	return m
}

func (m *metrics) register(r prometheus.Registerer) error {
	for i, c := range m.collectors {
		if err := r.Register(c); err != nil {
			for _, done := range m.collectors[:i] {
				r.Unregister(done)
			}
			return err
		}
	}
	m.registerer = r
	return nil
}

func (m *metrics) unregister() {
	m.unregisters.Do(func() {
		if m.registerer != nil {
			for _, c := range m.collectors {
				m.registerer.Unregister(c)
			}
		}
	})
}

// setTraffic adds the growth of the device's byte totals; a total that
// shrank (peers removed) restarts the baseline.
func (m *metrics) setTraffic(rx, tx int64) {
	if rx >= m.lastRx {
		m.bytes.WithLabelValues("rx").Add(float64(rx - m.lastRx))
	}
	if tx >= m.lastTx {
		m.bytes.WithLabelValues("tx").Add(float64(tx - m.lastTx))
	}
	m.lastRx, m.lastTx = rx, tx
}

// setDrops adds the growth of the nftables drop counters.
func (m *metrics) setDrops(cur map[string]uint64) {
	m.dropsMu.Lock()
	defer m.dropsMu.Unlock()
	for r, v := range cur {
		if last := m.lastDrops[r]; v >= last {
			m.drops.WithLabelValues(r).Add(float64(v - last))
		} else {
			m.drops.WithLabelValues(r).Add(float64(v)) // the table was rebuilt
		}
		m.lastDrops[r] = v
	}
}
