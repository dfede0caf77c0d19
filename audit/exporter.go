package audit

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"math/rand/v2"
	"strconv"
	"sync"
	"time"

	"github.com/ferryvpn/ferry/cluster"
	"github.com/prometheus/client_golang/prometheus"
)

// CursorKey is where a sink's cursor lives in the cluster store: the last
// journal sequence number the sink confirmed, in decimal.
func CursorKey(sink string) string { return "audit/cursor/" + sink }

// errCursorMoved means another exporter (a former or future leader) wrote
// the cursor: this one must read it again.
var errCursorMoved = errors.New("audit: sink cursor moved under the exporter")

// ExporterConfig configures an Exporter. Zero values take the documented
// defaults.
type ExporterConfig struct {
	// Store is this node's cluster member. Required.
	Store *cluster.Node
	// Sinks receive the journal. Required; names must be unique. The
	// exporter owns them and closes them on Close.
	Sinks []Sink
	// BatchSize is the most records per Send; default 1000.
	BatchSize int
	// Window is the most records sent but not yet confirmed; default
	// 200000. It bounds what is sent again after a failure.
	Window uint64
	// Poll is how often the exporter checks for new records when caught
	// up, and for leadership when following; default 200ms.
	Poll time.Duration
	// CursorInterval is the least time between cursor writes while
	// records flow; default 1s. A failover resends at most this much.
	CursorInterval time.Duration
	// MinBackoff and MaxBackoff bound the wait after a failed delivery;
	// defaults 100ms and 30s. The wait doubles per failure, with jitter.
	MinBackoff, MaxBackoff time.Duration
	// StallAfter is how long a sink may go without a successful delivery
	// or contact before ferry_audit_sink_stalled{sink} is 1; default 5m.
	// Sinks contact their receiver even with nothing to send, so a dead
	// receiver is noticed on a quiet cluster too.
	StallAfter time.Duration
	// Logger receives operational logs; default slog.Default().
	Logger *slog.Logger
	// Registerer, when set, receives the export metrics, among them
	// ferry_audit_export_lag_records{sink}.
	Registerer prometheus.Registerer
	// Stored, when set, adds the network sinks stored in the cluster
	// (SinkStore), started and stopped as they are added and removed,
	// built with SinkOptions.
	Stored      *SinkStore
	SinkOptions SinkOptions
	// NoSinkLog is how often the leader logs that no network sink
	// exports the journal; default 10 minutes.
	NoSinkLog time.Duration
}

// Validate checks the configuration.
func (c *ExporterConfig) Validate() error {
	if c.Store == nil {
		return errors.New("audit exporter config: store: required")
	}
	if len(c.Sinks) == 0 && c.Stored == nil {
		return errors.New("audit exporter config: sinks: at least one required")
	}
	seen := map[string]bool{}
	for _, s := range c.Sinks {
		if err := checkSinkName(s.Name()); err != nil {
			return fmt.Errorf("audit exporter config: %w", err)
		}
		if seen[s.Name()] {
			return fmt.Errorf("audit exporter config: sink name %q used twice", s.Name())
		}
		seen[s.Name()] = true
	}
	if c.BatchSize < 0 || c.BatchSize > cluster.MaxAppendRecs {
		return fmt.Errorf("audit exporter config: batch_size %d: want 1 to %d", c.BatchSize, cluster.MaxAppendRecs)
	}
	if c.Poll < 0 || c.CursorInterval < 0 || c.MinBackoff < 0 || c.MaxBackoff < 0 {
		return errors.New("audit exporter config: durations must not be negative")
	}
	return nil
}

func (c *ExporterConfig) setDefaults() {
	if c.BatchSize == 0 {
		c.BatchSize = 1000
	}
	if c.Window == 0 {
		c.Window = 200000
	}
	if c.Poll == 0 {
		c.Poll = 200 * time.Millisecond
	}
	if c.CursorInterval == 0 {
		c.CursorInterval = time.Second
	}
	if c.MinBackoff == 0 {
		c.MinBackoff = 100 * time.Millisecond
	}
	if c.MaxBackoff == 0 {
		c.MaxBackoff = 30 * time.Second
	}
	if c.NoSinkLog == 0 {
		c.NoSinkLog = 10 * time.Minute
	}
	if c.StallAfter == 0 {
		c.StallAfter = 5 * time.Minute
	}
	if c.MaxBackoff < c.MinBackoff {
		c.MaxBackoff = c.MinBackoff
	}
	if c.Logger == nil {
		c.Logger = slog.Default()
	}
}

// Exporter feeds the journal to sinks. It runs on every node; only the
// leader exports. Per sink it reads the cursor (linearizably) when it
// becomes leader, sends everything after it in order, and advances the
// cursor with a compare-and-swap once the sink confirms delivery, so a new
// leader resumes where the old one was confirmed. Delivery is at least
// once. While a sink fails the exporter backs off and retries, then catches
// up from the cursor.
type Exporter struct {
	cfg     ExporterConfig
	log     *slog.Logger
	store   *cluster.Node
	metrics *exportMetrics
	cancel  context.CancelFunc
	wg      sync.WaitGroup
	once    sync.Once

	dynMu   sync.Mutex              // guards dynamic
	dynamic map[string]*runningSink // stored sinks running, by name

	errMu    sync.Mutex           // guards sinkErrs and lastOK
	sinkErrs map[string]string    // sink → configuration error that stopped it
	lastOK   map[string]time.Time // sink → last successful Send
}

// SinkState is what the exporter knows of one sink on this node.
type SinkState struct {
	Name string
	// ConfigError is set while the sink is stopped on a configuration
	// error (ErrSinkMisconfigured).
	ConfigError string
}

// Sinks reports the state of each sink.
func (x *Exporter) Sinks() []SinkState {
	dyn := x.dynamicNames() // before errMu: reconcileStored takes dynMu, then errMu
	x.errMu.Lock()
	defer x.errMu.Unlock()
	out := make([]SinkState, 0, len(x.cfg.Sinks))
	for _, s := range x.cfg.Sinks {
		out = append(out, SinkState{Name: s.Name(), ConfigError: x.sinkErrs[s.Name()]})
	}
	for _, name := range dyn {
		out = append(out, SinkState{Name: name, ConfigError: x.sinkErrs[name]})
	}
	return out
}

func (x *Exporter) setSinkError(name string, err error) {
	x.errMu.Lock()
	defer x.errMu.Unlock()
	if x.sinkErrs == nil {
		x.sinkErrs = map[string]string{}
	}
	x.sinkErrs[name] = err.Error()
}

// NewExporter starts an exporter.
func NewExporter(cfg ExporterConfig) (*Exporter, error) {
	if err := cfg.Validate(); err != nil {
		return nil, err
	}
	cfg.setDefaults()
	x := &Exporter{cfg: cfg, log: cfg.Logger.With("component", "audit-exporter"), store: cfg.Store, metrics: newExportMetrics()}
	if cfg.Registerer != nil {
		if err := registerAll(cfg.Registerer, x.metrics.collectors()); err != nil {
			return nil, err
		}
	}
	ctx, cancel := context.WithCancel(context.Background())
	x.cancel = cancel
	for _, s := range cfg.Sinks {
		x.wg.Add(1)
		go func() {
			defer x.wg.Done()
			x.run(ctx, s)
		}()
	}
	if cfg.Stored != nil {
		x.wg.Add(1)
		go func() {
			defer x.wg.Done()
			x.followStored(ctx)
		}()
	}
	x.wg.Add(1)
	go func() {
		defer x.wg.Done()
		x.watchNoSink(ctx)
	}()
	return x, nil
}

// Close stops exporting, closes the sinks and waits. It is idempotent.
func (x *Exporter) Close() error {
	x.once.Do(func() {
		x.cancel()
		x.wg.Wait()
		if x.cfg.Registerer != nil {
			for _, c := range x.metrics.collectors() {
				x.cfg.Registerer.Unregister(c)
			}
		}
	})
	return nil
}

// ReadCursor returns a sink's cursor and its version (0: none stored).
func ReadCursor(ctx context.Context, store *cluster.Node, sink string) (seq, version uint64, err error) {
	kv, ok, err := store.Get(ctx, CursorKey(sink), cluster.Linearizable)
	if err != nil || !ok {
		return 0, 0, err
	}
	seq, err = strconv.ParseUint(string(kv.Value), 10, 64)
	if err != nil {
		return 0, 0, fmt.Errorf("%w: %s: %v", ErrMalformed, CursorKey(sink), err)
	}
	return seq, kv.Version, nil
}

func (x *Exporter) run(ctx context.Context, s Sink) {
	if nl, ok := s.(NodeLocal); ok {
		x.runLocal(ctx, nl)
		return
	}
	defer s.Close()
	log := x.log.With("sink", s.Name())
	bo := backoff{min: x.cfg.MinBackoff, max: x.cfg.MaxBackoff}
	for ctx.Err() == nil {
		if !x.store.IsLeader() {
			x.metrics.lag.DeleteLabelValues(s.Name())
			sleep(ctx, x.cfg.Poll)
			continue
		}
		err := x.lead(ctx, s, &bo, log)
		s.Reset()
		if err == nil || ctx.Err() != nil {
			continue
		}
		if errors.Is(err, errCursorMoved) {
			log.Info("audit sink cursor moved; reading it again")
			continue
		}
		if errors.Is(err, ErrSinkMisconfigured) {
			// Re-sending cannot help: say so once, loudly, and send
			// nothing more until the configuration changes.
			x.metrics.errors.WithLabelValues(s.Name()).Inc()
			x.metrics.misconf.WithLabelValues(s.Name()).Set(1)
			x.setSinkError(s.Name(), err)
			log.Error("audit sink misconfigured; export to it stopped until its configuration changes", "err", err)
			<-ctx.Done()
			return
		}
		x.metrics.errors.WithLabelValues(s.Name()).Inc()
		d := bo.next()
		log.Warn("audit export failed; backing off", "err", err, "retry_in", d)
		x.backOff(ctx, s.Name(), d)
	}
}

// runLocal feeds a node-local sink from this node's journal, from the
// sink's own cursor, leader or not.
func (x *Exporter) runLocal(ctx context.Context, s NodeLocal) {
	defer s.Close()
	log := x.log.With("sink", s.Name())
	bo := backoff{min: x.cfg.MinBackoff, max: x.cfg.MaxBackoff}
	var entries []Entry
	for ctx.Err() == nil {
		err := func() error {
			cur, err := s.Cursor()
			if err != nil {
				return err
			}
			head, _, err := x.store.JournalHead()
			if err != nil {
				return fmt.Errorf("reading journal head: %w", err)
			}
			x.metrics.lag.WithLabelValues(s.Name()).Set(float64(head - min(cur, head)))
			if cur >= head {
				x.contact(s.Name())
				sleep(ctx, x.cfg.Poll)
				return nil
			}
			recs, err := x.store.JournalRange(cur+1, head, x.cfg.BatchSize)
			if err != nil {
				return fmt.Errorf("reading journal from %d: %w", cur+1, err)
			}
			entries = entries[:0]
			for _, r := range recs {
				entries = append(entries, entryFromRecord(r))
			}
			if len(entries) == 0 {
				sleep(ctx, x.cfg.Poll)
				return nil
			}
			c, err := s.Send(ctx, entries)
			if err != nil {
				return err
			}
			x.metrics.exported.WithLabelValues(s.Name()).Add(float64(len(entries)))
			x.metrics.cursor.WithLabelValues(s.Name()).Set(float64(c))
			x.contact(s.Name())
			bo.reset()
			return nil
		}()
		if err == nil || ctx.Err() != nil {
			continue
		}
		s.Reset()
		x.metrics.errors.WithLabelValues(s.Name()).Inc()
		d := bo.next()
		log.Warn("audit export to a node-local sink failed; backing off", "err", err, "retry_in", d)
		sleep(ctx, d)
	}
}

// backOff waits d after a failure, keeping the lag and stall metrics live
// meanwhile (the journal grows while the sink is down).
func (x *Exporter) backOff(ctx context.Context, name string, d time.Duration) {
	end := time.Now().Add(d)
	for ctx.Err() == nil {
		x.observe(ctx, name)
		left := time.Until(end)
		if left <= 0 {
			return
		}
		sleep(ctx, min(left, time.Second))
	}
}

// observe updates the lag (journal head minus the stored cursor) and the
// stall state of a sink this node exports to.
func (x *Exporter) observe(ctx context.Context, name string) {
	if !x.store.IsLeader() {
		return
	}
	head, _, err := x.store.JournalHead()
	if err != nil {
		return
	}
	kv, ok, err := x.store.Get(ctx, CursorKey(name), cluster.Local)
	var cur uint64
	if err == nil && ok {
		cur, _ = strconv.ParseUint(string(kv.Value), 10, 64)
	}
	x.metrics.lag.WithLabelValues(name).Set(float64(head - min(cur, head)))
	x.checkStall(name)
}

// contact notes that the sink delivered or reached its receiver.
func (x *Exporter) contact(name string) {
	x.errMu.Lock()
	if x.lastOK == nil {
		x.lastOK = map[string]time.Time{}
	}
	x.lastOK[name] = time.Now()
	x.errMu.Unlock()
	x.metrics.lastOK.WithLabelValues(name).SetToCurrentTime()
	x.checkStall(name)
}

func (x *Exporter) checkStall(name string) {
	x.errMu.Lock()
	last, ok := x.lastOK[name]
	if !ok {
		if x.lastOK == nil {
			x.lastOK = map[string]time.Time{}
		}
		x.lastOK[name], last = time.Now(), time.Now() // the clock starts with the exporter
	}
	x.errMu.Unlock()
	stalled := 0.0
	if time.Since(last) > x.cfg.StallAfter {
		stalled = 1
	}
	x.metrics.stalled.WithLabelValues(name).Set(stalled)
}

// lead exports to s while this node leads. It returns nil when leadership
// or ctx ends, and the error that stopped delivery otherwise.
func (x *Exporter) lead(ctx context.Context, s Sink, bo *backoff, log *slog.Logger) (err error) {
	cursor, version, err := ReadCursor(ctx, x.store, s.Name())
	if err != nil {
		return fmt.Errorf("reading cursor: %w", err)
	}
	s.Reset()
	sent, confirmed, saved := cursor, cursor, cursor
	lastSave := time.Now()
	save := func(ctx context.Context) error {
		if confirmed <= saved {
			return nil
		}
		key := CursorKey(s.Name())
		res, err := x.store.Txn(ctx, cluster.Txn{
			Compares: []cluster.Compare{cluster.IfVersion(key, version)},
			Ops:      []cluster.Op{cluster.Put(key, strconv.AppendUint(nil, confirmed, 10))},
		})
		if err != nil {
			return fmt.Errorf("saving cursor: %w", err)
		}
		if !res.Succeeded {
			return errCursorMoved
		}
		version, saved, lastSave = res.Revision, confirmed, time.Now()
		x.metrics.cursor.WithLabelValues(s.Name()).Set(float64(saved))
		return nil
	}
	defer func() {
		// Keep what was confirmed, even while closing.
		sctx, cancel := context.WithTimeout(context.WithoutCancel(ctx), 2*time.Second)
		defer cancel()
		if serr := save(sctx); serr != nil && err == nil && ctx.Err() == nil && x.store.IsLeader() {
			err = serr
		}
	}()
	var entries []Entry
	for ctx.Err() == nil && x.store.IsLeader() {
		head, _, err := x.store.JournalHead()
		if err != nil {
			return fmt.Errorf("reading journal head: %w", err)
		}
		entries = entries[:0]
		if sent < head && sent-confirmed < x.cfg.Window {
			recs, err := x.store.JournalRange(sent+1, head, x.cfg.BatchSize)
			if err != nil {
				return fmt.Errorf("reading journal from %d: %w", sent+1, err)
			}
			for _, r := range recs {
				entries = append(entries, entryFromRecord(r))
			}
		}
		c, serr := s.Send(ctx, entries)
		if c > confirmed && c <= max(sent, head) {
			confirmed = c
		}
		x.metrics.lag.WithLabelValues(s.Name()).Set(float64(head - min(confirmed, head)))
		if serr != nil {
			return serr
		}
		x.contact(s.Name())
		bo.reset()
		if len(entries) > 0 {
			sent = entries[len(entries)-1].LastSeq()
			x.metrics.exported.WithLabelValues(s.Name()).Add(float64(len(entries)))
		}
		idle := len(entries) == 0
		if confirmed > saved && (idle || time.Since(lastSave) >= x.cfg.CursorInterval) {
			if err := save(ctx); err != nil {
				return err
			}
		}
		if idle {
			sleep(ctx, x.cfg.Poll)
		}
	}
	return nil
}

// backoff doubles a wait per failure, with jitter, between min and max.
type backoff struct {
	min, max time.Duration
	n        int
}

func (b *backoff) next() time.Duration {
	d := b.min << min(b.n, 30)
	if d <= 0 || d > b.max {
		d = b.max
	}
	b.n++
	return d/2 + rand.N(d/2+1)
}

func (b *backoff) reset() { b.n = 0 }

// sleep waits for d or until ctx ends.
func sleep(ctx context.Context, d time.Duration) {
	t := time.NewTimer(d)
	defer t.Stop()
	select {
	case <-ctx.Done():
	case <-t.C:
	}
}
