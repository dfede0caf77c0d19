package audit

import (
	"context"
	"crypto/rand"
	"encoding/binary"
	"encoding/hex"
	"errors"
	"fmt"
	"log/slog"
	"sync"
	"sync/atomic"
	"time"

	"github.com/ferryvpn/ferry/cluster"
	"github.com/prometheus/client_golang/prometheus"
)

// Config configures a Log. Zero values take the documented defaults.
type Config struct {
	// Store is this node's cluster member. Required.
	Store *cluster.Node
	// Node is the name stamped on events that carry none; default
	// Store.ID().
	Node string
	// Now stamps events that carry no time; default time.Now.
	Now func() time.Time
	// Logger receives operational logs (never events); default
	// slog.Default().
	Logger *slog.Logger
	// BatchSize is the most records one journal append carries; default
	// 512, at most cluster.MaxAppendRecs.
	BatchSize int
	// Appenders is how many appends may be in flight at once; default 4.
	// The cluster merges concurrent appends into one Raft entry, so a few
	// in flight keep the disk busy without waiting to fill batches. While
	// others are in flight, appends start spread over the time one takes
	// (see Log), so that each carries what arrived since the previous one.
	Appenders int
	// QueueSize bounds each lane's queue; default 8192. Record blocks
	// (until its context ends) while its lane is full.
	QueueSize int
	// RetryFor is how long a failed append is retried while the cluster
	// elects a leader; default 15s. A retried append whose first outcome
	// was unknown stores nothing twice: the journal drops a record whose
	// event ID it already holds among its recent records.
	RetryFor time.Duration
	// Registerer, when set, receives the Log's metrics.
	Registerer prometheus.Registerer
}

// Validate checks the configuration, naming the first bad field.
func (c *Config) Validate() error {
	switch {
	case c.Store == nil:
		return errors.New("audit config: store: required")
	case c.BatchSize < 0 || c.BatchSize > cluster.MaxAppendRecs:
		return fmt.Errorf("audit config: batch_size %d: want 1 to %d", c.BatchSize, cluster.MaxAppendRecs)
	case c.Appenders < 0 || c.Appenders > 64:
		return fmt.Errorf("audit config: appenders %d: want 1 to 64", c.Appenders)
	case c.QueueSize < 0:
		return fmt.Errorf("audit config: queue_size %d: must not be negative", c.QueueSize)
	case c.RetryFor < 0:
		return fmt.Errorf("audit config: retry_for %s: must not be negative", c.RetryFor)
	}
	return nil
}

func (c *Config) setDefaults() {
	if c.Node == "" {
		c.Node = c.Store.ID()
	}
	if c.Now == nil {
		c.Now = time.Now
	}
	if c.Logger == nil {
		c.Logger = slog.Default()
	}
	if c.BatchSize == 0 {
		c.BatchSize = 512
	}
	if c.Appenders == 0 {
		c.Appenders = 4
	}
	if c.QueueSize == 0 {
		c.QueueSize = 8192
	}
	if c.RetryFor == 0 {
		c.RetryFor = 15 * time.Second
	}
}

// Log is the Recorder every ferry component writes to. It stamps events,
// encodes them deterministically as JSON and appends them to the cluster
// journal in batches; the cluster state machine chains them in commit
// order, identically on every node.
//
// Events travel in two lanes. Flow events (flow.*) are the bulk lane; all
// others (logins, MFA, lockouts, sessions, peers, profiles, users, admin
// and cluster actions) are the priority lane. Every batch takes the whole
// priority queue first and fills up with flows, so a flood of flows delays
// a login's record by at most the appends already in flight. A flood of
// priority events, in turn, holds flows back.
//
// An append starts as soon as an event is queued and no other append is in
// flight. While others are, it waits until its first event has been queued
// for a share (1/Appenders) of the recent append latency, at most maxPace,
// collecting what arrives meanwhile. Appends therefore start spread over
// the time one takes: started back to back, with one event each, they
// would all land in the same Raft entry, finish together and leave the
// events that arrive meanwhile waiting for a whole commit.
//
// A Log is safe for concurrent use. Close stops it.
type Log struct {
	cfg   Config
	log   *slog.Logger
	store *cluster.Node
	prio  chan *request
	bulk  chan *request

	ctx    context.Context
	cancel context.CancelFunc
	wg     sync.WaitGroup

	mu     sync.RWMutex // guards closed against enqueues
	closed bool
	once   sync.Once

	// appendNanos is a moving average of append latency, in nanoseconds;
	// it paces appends.
	appendNanos atomic.Int64

	metrics *logMetrics
}

// maxPace bounds the pause between two appends' starts, and so what pacing
// adds to an event's latency.
const maxPace = 10 * time.Millisecond

var _ Recorder = (*Log)(nil)

// request is one event waiting for its append.
type request struct {
	data []byte
	id   string
	done chan result // capacity 1
}

type result struct {
	seq uint64
	err error
}

// Receipt tells where an event was stored.
type Receipt struct {
	ID  string
	Seq uint64
}

// New starts a Log.
func New(cfg Config) (*Log, error) {
	if err := cfg.Validate(); err != nil {
		return nil, err
	}
	cfg.setDefaults()
	l := &Log{
		cfg: cfg, log: cfg.Logger.With("component", "audit"), store: cfg.Store,
		prio: make(chan *request, cfg.QueueSize), bulk: make(chan *request, cfg.QueueSize),
	}
	l.metrics = newLogMetrics(l)
	if cfg.Registerer != nil {
		if err := registerAll(cfg.Registerer, l.metrics.collectors()); err != nil {
			return nil, err
		}
	}
	l.ctx, l.cancel = context.WithCancel(context.Background())
	l.wg.Add(1)
	go func() {
		defer l.wg.Done()
		l.send()
	}()
	return l, nil
}

// Record implements Recorder: it stores e and returns once the journal
// append that carries it has committed on a quorum of nodes. It fills an
// empty ID (128 bits: a 48-bit millisecond time then 80 random bits, in
// hex, so IDs sort by time), Time (the injected clock) and Node.
//
// If ctx ends after the event was queued, Record returns ctx's error and
// the event may or may not be stored.
func (l *Log) Record(ctx context.Context, e Event) error {
	_, err := l.Append(ctx, e)
	return err
}

// Append is Record that also reports the event's ID and sequence number.
func (l *Log) Append(ctx context.Context, e Event) (Receipt, error) {
	data, err := l.encode(ctx, &e, cluster.MaxRecordLen)
	if err != nil {
		return Receipt{}, err
	}
	r := &request{data: data, id: e.ID, done: make(chan result, 1)}
	q := l.prio
	if e.Type.bulk() {
		q = l.bulk
	}
	l.mu.RLock()
	if l.closed {
		l.mu.RUnlock()
		return Receipt{}, ErrClosed
	}
	select {
	case q <- r:
	case <-ctx.Done():
		l.mu.RUnlock()
		return Receipt{}, ctx.Err()
	case <-l.ctx.Done():
		l.mu.RUnlock()
		return Receipt{}, ErrClosed
	}
	l.mu.RUnlock()
	select {
	case res := <-r.done:
		return Receipt{ID: e.ID, Seq: res.seq}, res.err
	case <-ctx.Done():
		return Receipt{ID: e.ID}, ctx.Err()
	}
}

// encode validates e, fills in what Record fills in (Time, Node, Source
// from ctx, ID; strings capped) and returns its journal record, at most
// limit bytes.
func (l *Log) encode(ctx context.Context, e *Event, limit int) ([]byte, error) {
	if err := e.validate(); err != nil {
		return nil, err
	}
	if e.Time.IsZero() {
		e.Time = l.cfg.Now()
	}
	e.Time = e.Time.UTC().Round(0)
	if e.Node == "" {
		e.Node = l.cfg.Node
	}
	if e.Source.Addr == "" {
		if src, ok := SourceFrom(ctx); ok {
			e.Source = src
		}
	}
	e.capStrings()
	if e.ID == "" {
		id, err := newID(e.Time)
		if err != nil {
			return nil, err
		}
		e.ID = id
	}
	data, err := encodeEvent(e)
	if err != nil {
		return nil, fmt.Errorf("%w: encoding: %v", ErrInvalidEvent, err)
	}
	if len(data) > limit {
		return nil, fmt.Errorf("%w: %d bytes encoded, at most %d", ErrInvalidEvent, len(data), limit)
	}
	return data, nil
}

// newID returns a time-ordered 128-bit ID in hex.
func newID(t time.Time) (string, error) {
	var b [16]byte
	binary.BigEndian.PutUint64(b[:8], uint64(t.UnixMilli())<<16)
	if _, err := rand.Read(b[6:]); err != nil {
		return "", fmt.Errorf("audit: generating event id: %w", err)
	}
	return hex.EncodeToString(b[:]), nil
}

// send takes whatever is queued, priority lane first, and starts its
// append, at most cfg.Appenders at once, paced while others are in flight.
// It never waits for a batch to fill; pacing waits at most maxPace. It
// returns when the Log closes, once the appends it started have finished.
func (l *Log) send() {
	slots := make(chan struct{}, l.cfg.Appenders)
	var inflight sync.WaitGroup
	defer inflight.Wait()
	for l.ctx.Err() == nil {
		var first *request
		select {
		case <-l.ctx.Done():
			return
		case first = <-l.prio:
		case first = <-l.bulk:
		}
		got := time.Now()
		select {
		case slots <- struct{}{}:
		case <-l.ctx.Done():
			first.done <- result{err: ErrClosed}
			return
		}
		if len(slots) > 1 {
			l.pace(got)
		}
		batch := make([]*request, 1, min(l.cfg.BatchSize, 1+len(l.prio)+len(l.bulk)))
		batch[0] = first
		batch = drain(batch, l.prio, l.cfg.BatchSize)
		batch = drain(batch, l.bulk, l.cfg.BatchSize)
		inflight.Add(1)
		go func() {
			defer inflight.Done()
			l.appendBatch(batch)
			<-slots
		}()
	}
}

// pace waits until a 1/Appenders share of the recent append latency (at
// most maxPace) has passed since since, or the Log closes.
func (l *Log) pace(since time.Time) {
	gap := min(time.Duration(l.appendNanos.Load())/time.Duration(l.cfg.Appenders), maxPace)
	wait := time.Until(since.Add(gap))
	if wait <= 0 {
		return
	}
	t := time.NewTimer(wait)
	defer t.Stop()
	select {
	case <-t.C:
	case <-l.ctx.Done():
	}
}

// appendBatch appends batch and answers its requests.
func (l *Log) appendBatch(batch []*request) {
	data := make([]cluster.KeyedRecord, len(batch))
	for i, r := range batch {
		data[i] = cluster.KeyedRecord{Key: []byte(r.id), Data: r.data}
	}
	start := time.Now()
	res, err := l.appendRetrying(data)
	took := time.Since(start)
	l.metrics.appendSeconds.Observe(took.Seconds())
	l.metrics.batchSize.Observe(float64(len(batch)))
	if err != nil {
		l.metrics.appendErrors.Inc()
		l.log.Warn("audit append failed", "records", len(batch), "err", err)
	} else {
		// A moving average over about the last eight appends. Appends
		// finishing together may lose one another's update: harmless.
		avg := l.appendNanos.Load()
		l.appendNanos.Store(avg + (int64(took)-avg)/8)
	}
	for i, r := range batch {
		if err != nil {
			r.done <- result{err: fmt.Errorf("appending audit records: %w", err)}
			continue
		}
		r.done <- result{seq: res.Seqs[i]}
	}
}

// appendRetrying appends data, retrying while no leader can take it. An
// append whose outcome is unknown is retried too: each record is keyed by
// its event ID, so the journal drops a retried record it already holds
// (cluster.Node.AppendKeyed) and every event is stored once.
func (l *Log) appendRetrying(data []cluster.KeyedRecord) (cluster.AppendResult, error) {
	deadline := time.Now().Add(l.cfg.RetryFor)
	for {
		// Not l.ctx: an append in flight finishes even while closing, so
		// its callers learn the outcome. The cluster bounds each wait.
		res, err := l.store.AppendKeyed(context.Background(), data)
		if err == nil || time.Now().After(deadline) || !(errors.Is(err, cluster.ErrOutcomeUnknown) ||
			errors.Is(err, cluster.ErrNoQuorum) || errors.Is(err, cluster.ErrNotLeader)) {
			return res, err
		}
		l.metrics.appendErrors.Inc()
		l.log.Info("audit append failed; retrying", "records", len(data), "err", err)
		t := time.NewTimer(50 * time.Millisecond)
		<-t.C
	}
}

func drain(batch []*request, q chan *request, limit int) []*request {
	for len(batch) < limit {
		select {
		case r := <-q:
			batch = append(batch, r)
		default:
			return batch
		}
	}
	return batch
}

// Close stops the Log: appends in flight finish, queued events fail with
// ErrClosed. It is idempotent and waits.
func (l *Log) Close() error {
	l.once.Do(func() {
		l.cancel()
		l.mu.Lock()
		l.closed = true
		l.mu.Unlock()
		l.wg.Wait()
		for _, q := range []chan *request{l.prio, l.bulk} {
			for {
				select {
				case r := <-q:
					r.done <- result{err: ErrClosed}
					continue
				default:
				}
				break
			}
		}
		if l.cfg.Registerer != nil {
			for _, c := range l.metrics.collectors() {
				l.cfg.Registerer.Unregister(c)
			}
		}
	})
	return nil
}
