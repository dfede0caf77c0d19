package cluster

import (
	"errors"

	"github.com/hashicorp/raft"
	"github.com/prometheus/client_golang/prometheus"
)

// metrics holds the node's Prometheus metrics. Names are stable: dashboards
// and alerts depend on them.
type metrics struct {
	applyLatency prometheus.Histogram
	forwarded    prometheus.Counter
	state        prometheus.Collector
	peerFailures prometheus.Collector
}

func newMetrics(n *Node) *metrics {
	m := &metrics{
		applyLatency: prometheus.NewHistogram(prometheus.HistogramOpts{
			Name:    "ferry_cluster_write_duration_seconds",
			Help:    "Time from proposing a write on this node to its result, including forwarding.",
			Buckets: prometheus.ExponentialBuckets(0.0005, 2, 16),
		}),
		forwarded: prometheus.NewCounter(prometheus.CounterOpts{
			Name: "ferry_cluster_forwarded_writes_total",
			Help: "Writes this node forwarded to the leader.",
		}),
		state:        &stateCollector{n: n},
		peerFailures: n.peerLog.failures,
	}
	return m
}

func (m *metrics) collectors() []prometheus.Collector {
	return []prometheus.Collector{m.applyLatency, m.forwarded, m.state, m.peerFailures}
}

func (m *metrics) register(r prometheus.Registerer) error {
	for _, c := range m.collectors() {
		if err := r.Register(c); err != nil {
			var are prometheus.AlreadyRegisteredError
			if errors.As(err, &are) {
				continue
			}
			return err
		}
	}
	return nil
}

func (m *metrics) unregister(r prometheus.Registerer) {
	for _, c := range m.collectors() {
		r.Unregister(c)
	}
}

var (
	descState      = prometheus.NewDesc("ferry_cluster_raft_state", "1 for the node's current Raft state.", []string{"state"}, nil)
	descTerm       = prometheus.NewDesc("ferry_cluster_raft_term", "Current Raft term.", nil, nil)
	descCommit     = prometheus.NewDesc("ferry_cluster_commit_index", "Highest log index known to be committed.", nil, nil)
	descApplied    = prometheus.NewDesc("ferry_cluster_applied_index", "Highest log index applied to this node's state.", nil, nil)
	descLast       = prometheus.NewDesc("ferry_cluster_last_log_index", "Highest log index stored on this node.", nil, nil)
	descHasLeader  = prometheus.NewDesc("ferry_cluster_has_leader", "1 when this node knows a leader.", nil, nil)
	descPeers      = prometheus.NewDesc("ferry_cluster_voters", "Voting members in the configuration.", nil, nil)
	descReady      = prometheus.NewDesc("ferry_cluster_ready", "1 when the node passes its readiness check.", nil, nil)
	descJournalSeq = prometheus.NewDesc("ferry_cluster_journal_last_seq", "Last journal sequence number.", nil, nil)
)

// stateCollector reads Raft's state at scrape time.
type stateCollector struct{ n *Node }

func (c *stateCollector) Describe(ch chan<- *prometheus.Desc) {
	for _, d := range []*prometheus.Desc{descState, descTerm, descCommit, descApplied, descLast, descHasLeader, descPeers, descReady, descJournalSeq} {
		ch <- d
	}
}

func (c *stateCollector) Collect(ch chan<- prometheus.Metric) {
	s := c.n.Status()
	for _, st := range []raft.RaftState{raft.Follower, raft.Candidate, raft.Leader, raft.Shutdown} {
		v := 0.0
		if st.String() == s.State {
			v = 1
		}
		ch <- prometheus.MustNewConstMetric(descState, prometheus.GaugeValue, v, st.String())
	}
	ch <- prometheus.MustNewConstMetric(descTerm, prometheus.GaugeValue, float64(s.Term))
	ch <- prometheus.MustNewConstMetric(descCommit, prometheus.GaugeValue, float64(s.CommitIndex))
	ch <- prometheus.MustNewConstMetric(descApplied, prometheus.GaugeValue, float64(s.AppliedIndex))
	ch <- prometheus.MustNewConstMetric(descLast, prometheus.GaugeValue, float64(s.LastIndex))
	ch <- prometheus.MustNewConstMetric(descHasLeader, prometheus.GaugeValue, b2f(s.LeaderID != ""))
	voters := 0
	for _, m := range s.Members {
		if m.Voter {
			voters++
		}
	}
	ch <- prometheus.MustNewConstMetric(descPeers, prometheus.GaugeValue, float64(voters))
	ch <- prometheus.MustNewConstMetric(descReady, prometheus.GaugeValue, b2f(c.n.Ready() == nil))
	ch <- prometheus.MustNewConstMetric(descJournalSeq, prometheus.GaugeValue, float64(s.JournalSeq))
}

func b2f(b bool) float64 {
	if b {
		return 1
	}
	return 0
}
