package audit

import (
	"errors"

	"github.com/prometheus/client_golang/prometheus"
)

// Metric names are stable: dashboards and alerts depend on them.

type logMetrics struct {
	appendSeconds prometheus.Histogram
	batchSize     prometheus.Histogram
	appendErrors  prometheus.Counter
	txnRecords    prometheus.Counter
	queueFunc     prometheus.Collector
}

func newLogMetrics(l *Log) *logMetrics {
	m := &logMetrics{
		appendSeconds: prometheus.NewHistogram(prometheus.HistogramOpts{
			Name:    "ferry_audit_append_duration_seconds",
			Help:    "Time for one batch of audit records to commit to the journal.",
			Buckets: prometheus.ExponentialBuckets(0.0005, 2, 16),
		}),
		batchSize: prometheus.NewHistogram(prometheus.HistogramOpts{
			Name:    "ferry_audit_append_batch_records",
			Help:    "Audit records per journal append.",
			Buckets: prometheus.ExponentialBuckets(1, 2, 15),
		}),
		appendErrors: prometheus.NewCounter(prometheus.CounterOpts{
			Name: "ferry_audit_append_errors_total",
			Help: "Journal appends of audit records that failed.",
		}),
		txnRecords: prometheus.NewCounter(prometheus.CounterOpts{
			Name: "ferry_audit_txn_records_total",
			Help: "Audit records committed in the same cluster transaction as the change they describe.",
		}),
	}
	m.queueFunc = prometheus.NewGaugeFunc(prometheus.GaugeOpts{
		Name: "ferry_audit_queued_records",
		Help: "Audit records waiting for a journal append, both lanes.",
	}, func() float64 { return float64(len(l.prio) + len(l.bulk)) })
	return m
}

func (m *logMetrics) collectors() []prometheus.Collector {
	return []prometheus.Collector{m.appendSeconds, m.batchSize, m.appendErrors, m.txnRecords, m.queueFunc}
}

type exportMetrics struct {
	lag      *prometheus.GaugeVec
	cursor   *prometheus.GaugeVec
	exported *prometheus.CounterVec
	errors   *prometheus.CounterVec
	misconf  *prometheus.GaugeVec
	stalled  *prometheus.GaugeVec
	lastOK   *prometheus.GaugeVec
	network  prometheus.Gauge
}

func newExportMetrics() *exportMetrics {
	return &exportMetrics{
		lag: prometheus.NewGaugeVec(prometheus.GaugeOpts{
			Name: "ferry_audit_export_lag_records",
			Help: "Journal records not yet confirmed by the sink (journal head minus the sink's cursor); set on the leader.",
		}, []string{"sink"}),
		cursor: prometheus.NewGaugeVec(prometheus.GaugeOpts{
			Name: "ferry_audit_export_cursor",
			Help: "Last journal sequence number the sink confirmed.",
		}, []string{"sink"}),
		exported: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "ferry_audit_exported_records_total",
			Help: "Records sent to the sink, including re-sends after failures.",
		}, []string{"sink"}),
		errors: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "ferry_audit_export_errors_total",
			Help: "Failed deliveries to the sink.",
		}, []string{"sink"}),
		misconf: prometheus.NewGaugeVec(prometheus.GaugeOpts{
			Name: "ferry_audit_sink_config_error",
			Help: "1 while the sink is stopped on a configuration error (such as HEC ack: true against a receiver without indexer acknowledgement); nothing is sent until it is fixed.",
		}, []string{"sink"}),
		stalled: prometheus.NewGaugeVec(prometheus.GaugeOpts{
			Name: "ferry_audit_sink_stalled",
			Help: "1 when the sink has neither delivered nor reached its receiver for longer than the stall limit (default 5m), even with nothing to send; set on the leader.",
		}, []string{"sink"}),
		network: prometheus.NewGauge(prometheus.GaugeOpts{
			Name: "ferry_audit_network_sinks",
			Help: "Network sinks (syslog, RELP, HEC) this node exports to when it leads; 0 means the journal leaves the cluster nowhere.",
		}),
		lastOK: prometheus.NewGaugeVec(prometheus.GaugeOpts{
			Name: "ferry_audit_sink_last_success_timestamp_seconds",
			Help: "When the sink last delivered or reached its receiver (Unix time).",
		}, []string{"sink"}),
	}
}

func (m *exportMetrics) collectors() []prometheus.Collector {
	return []prometheus.Collector{m.lag, m.cursor, m.exported, m.errors, m.misconf, m.stalled, m.lastOK, m.network}
}

type trimMetrics struct {
	trimmed prometheus.Counter
	errors  prometheus.Counter
	first   prometheus.Gauge
	pruned  prometheus.Counter
}

func newTrimMetrics() *trimMetrics {
	return &trimMetrics{
		trimmed: prometheus.NewCounter(prometheus.CounterOpts{
			Name: "ferry_audit_trimmed_records_total",
			Help: "Journal records dropped by retention trims run on this node.",
		}),
		errors: prometheus.NewCounter(prometheus.CounterOpts{
			Name: "ferry_audit_trim_errors_total",
			Help: "Retention trims that failed on this node.",
		}),
		first: prometheus.NewGauge(prometheus.GaugeOpts{
			Name: "ferry_audit_journal_first_record",
			Help: "First journal sequence number kept after this node's last retention trim.",
		}),
		pruned: prometheus.NewCounter(prometheus.CounterOpts{
			Name: "ferry_audit_pruned_records_total",
			Help: "Flow records past the flow window pruned from the journal (replaced by chain stubs) by prunes run on this node.",
		}),
	}
}

func (m *trimMetrics) collectors() []prometheus.Collector {
	return []prometheus.Collector{m.trimmed, m.errors, m.first, m.pruned}
}

func registerAll(r prometheus.Registerer, cs []prometheus.Collector) error {
	for _, c := range cs {
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
