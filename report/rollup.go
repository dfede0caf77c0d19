package report

import (
	"context"
	"encoding/binary"
	"encoding/json"
	"errors"
	"fmt"
	"log/slog"
	"strconv"
	"sync"
	"time"

	bolt "go.etcd.io/bbolt"
	berrors "go.etcd.io/bbolt/errors"

	"github.com/ferryvpn/ferry/audit"
)

// Bucket and meta key names of the rollup file.
var (
	bucketHour = []byte("hour")
	bucketDay  = []byte("day")
	bucketMeta = []byte("meta")
	metaCursor = []byte("cursor")     // 8 bytes: last folded sequence number
	metaHash   = []byte("hash")       // 32 bytes: that record's hash
	metaFirst  = []byte("first")      // 8 bytes: first sequence number read
	metaCkpt   = []byte("checkpoint") // JSON: the last checkpoint read
)

// syncPage is how many journal records one rollup transaction folds.
const syncPage = 4096

// DefaultPoll is how often Run looks for new journal records.
const DefaultPoll = time.Second

// Config configures a Rollup.
type Config struct {
	// Path is the rollup's bbolt file, node-local. Required.
	Path string
	// Journal is this node's copy of the audit journal. Required.
	Journal audit.Journal
	// Poll is how often Run folds new records; default 1s.
	Poll time.Duration
	// Logger; default slog.Default().
	Logger *slog.Logger
}

// Validate checks the configuration, naming the first bad field.
func (c *Config) Validate() error {
	switch {
	case c.Path == "":
		return errors.New("report config: path: required")
	case c.Journal == nil:
		return errors.New("report config: journal: required")
	case c.Poll < 0:
		return errors.New("report config: poll: must not be negative")
	}
	return nil
}

// Rollup is a node's index of its journal's flow records in hourly and
// daily buckets (see the package documentation). Its methods are safe for
// concurrent use.
type Rollup struct {
	cfg Config
	log *slog.Logger
	db  *bolt.DB

	syncMu sync.Mutex // serialises Sync and Rebuild
}

// Open opens (or creates) the rollup file. Call Sync or Run to fold the
// journal into it.
func Open(cfg Config) (*Rollup, error) {
	if err := cfg.Validate(); err != nil {
		return nil, err
	}
	if cfg.Poll == 0 {
		cfg.Poll = DefaultPoll
	}
	if cfg.Logger == nil {
		cfg.Logger = slog.Default()
	}
	db, err := bolt.Open(cfg.Path, 0o600, &bolt.Options{Timeout: 5 * time.Second})
	if err != nil {
		return nil, fmt.Errorf("opening rollup %s: %w", cfg.Path, err)
	}
	err = db.Update(func(tx *bolt.Tx) error {
		for _, b := range [][]byte{bucketHour, bucketDay, bucketMeta, bucketHistory, bucketPruned, bucketDayTotal} {
			if _, err := tx.CreateBucketIfNotExists(b); err != nil {
				return err
			}
		}
		m := tx.Bucket(bucketMeta)
		if string(m.Get(metaFormat)) == rollupFormat {
			return nil
		}
		// An older file (or a new one): start over, so the history is
		// complete.
		if err := resetTx(tx); err != nil {
			return err
		}
		return tx.Bucket(bucketMeta).Put(metaFormat, []byte(rollupFormat))
	})
	if err != nil {
		db.Close()
		return nil, fmt.Errorf("initialising rollup %s: %w", cfg.Path, err)
	}
	return &Rollup{cfg: cfg, log: cfg.Logger.With("component", "report"), db: db}, nil
}

// Close closes the file. It is idempotent.
func (r *Rollup) Close() error { return r.db.Close() }

// Run folds new journal records every Poll until ctx ends.
func (r *Rollup) Run(ctx context.Context) error {
	t := time.NewTicker(r.cfg.Poll)
	defer t.Stop()
	for {
		if _, err := r.Sync(ctx); err != nil && ctx.Err() == nil {
			r.log.Warn("folding the journal into the rollup failed", "err", err)
		}
		select {
		case <-ctx.Done():
			return nil
		case <-t.C:
		}
	}
}

// cursor is where the rollup stands in the journal.
type cursor struct {
	seq, first uint64
	hash       audit.Hash
	checkpoint *audit.Checkpoint
}

func (r *Rollup) readCursor() (cursor, error) {
	var c cursor
	err := r.db.View(func(tx *bolt.Tx) error {
		var err error
		c, err = readCursorTx(tx)
		return err
	})
	if errors.Is(err, berrors.ErrDatabaseNotOpen) {
		return c, ErrClosed
	}
	return c, err
}

// Sync folds the journal records after the cursor, in transactions of
// syncPage records that each move the cursor with the buckets, and returns
// the new cursor. When the journal is no longer the one the cursor was
// taken from, it rebuilds from the start of the journal.
func (r *Rollup) Sync(ctx context.Context) (uint64, error) {
	r.syncMu.Lock()
	defer r.syncMu.Unlock()
	c, err := r.readCursor()
	if err != nil {
		return 0, err
	}
	head, _, err := r.cfg.Journal.JournalHead()
	if err != nil {
		return c.seq, fmt.Errorf("reading journal head: %w", err)
	}
	if c.seq > 0 {
		replaced := head < c.seq
		if !replaced {
			recs, err := r.cfg.Journal.JournalRange(c.seq, c.seq, 1)
			if err != nil {
				return c.seq, fmt.Errorf("reading journal record %d: %w", c.seq, err)
			}
			// A record trimmed away is no sign of replacement: rollups
			// outlive raw flow records.
			// Nor is a record pruned into a stub, unless the stub ends
			// there (its hash is that record's).
			replaced = len(recs) == 1 && recs[0].LastSeq() == c.seq && audit.Hash(recs[0].Hash) != c.hash
		}
		if replaced {
			r.log.Info("journal replaced under the rollup (snapshot install); rebuilding", "cursor", c.seq, "head", head)
			if err := r.resetLocked(); err != nil {
				return 0, err
			}
			c = cursor{}
		}
	}
	if head <= c.seq {
		return c.seq, nil
	}
	var page []*audit.Entry
	commit := func() error {
		if len(page) == 0 {
			return nil
		}
		err := r.db.Update(func(tx *bolt.Tx) error { return foldPage(tx, page, &c) })
		page = page[:0]
		if errors.Is(err, berrors.ErrDatabaseNotOpen) {
			return ErrClosed
		}
		return err
	}
	fold := func() error {
		err := audit.Scan(ctx, r.cfg.Journal, audit.Filter{FromSeq: c.seq + 1, ToSeq: head}, func(e *audit.Entry) error {
			page = append(page, e)
			if len(page) >= syncPage {
				return commit()
			}
			return nil
		})
		if err == nil {
			err = commit()
		}
		return err
	}
	err = fold()
	if errors.Is(err, errRebuild) {
		// A prune committed while this rollup was folding its range.
		r.log.Info("a prune ran under the rollup; rebuilding", "cursor", c.seq, "head", head)
		if err := r.resetLocked(); err != nil {
			return 0, err
		}
		c, page = cursor{}, page[:0]
		err = fold()
	}
	if err != nil {
		return c.seq, fmt.Errorf("folding journal records after %d: %w", c.seq, err)
	}
	return c.seq, nil
}

// Rebuild empties the rollup and folds the whole journal again.
func (r *Rollup) Rebuild(ctx context.Context) error {
	r.syncMu.Lock()
	err := r.resetLocked()
	r.syncMu.Unlock()
	if err != nil {
		return err
	}
	_, err = r.Sync(ctx)
	return err
}

func (r *Rollup) resetLocked() error {
	return r.db.Update(func(tx *bolt.Tx) error {
		if err := resetTx(tx); err != nil {
			return err
		}
		return tx.Bucket(bucketMeta).Put(metaFormat, []byte(rollupFormat))
	})
}

// resetTx empties every bucket of the rollup.
func resetTx(tx *bolt.Tx) error {
	for _, b := range [][]byte{bucketHour, bucketDay, bucketMeta, bucketHistory, bucketPruned, bucketDayTotal} {
		if err := tx.DeleteBucket(b); err != nil && !errors.Is(err, berrors.ErrBucketNotFound) {
			return err
		}
		if _, err := tx.CreateBucket(b); err != nil {
			return err
		}
	}
	return nil
}

// foldPage folds entries into the buckets and moves the cursor, in tx.
func foldPage(tx *bolt.Tx, page []*audit.Entry, c *cursor) error {
	hours := map[string]*counts{}
	days := map[string]*counts{}
	for _, e := range page {
		prev := c.seq
		if c.first == 0 {
			c.first = e.Seq
		}
		c.seq, c.hash = e.LastSeq(), e.Hash // a stub's hash is its last record's
		if e.Pruned > 0 {
			if err := foldStub(tx, e, prev); err != nil {
				return err
			}
			continue
		}
		if e.Checkpoint != nil {
			c.checkpoint = e.Checkpoint
			continue
		}
		if err := putHistory(tx, e); err != nil {
			return err
		}
		if e.Event != nil && e.Event.Type == audit.TypeFlowSummary {
			if err := foldSummary(tx, e.Event, days, hours); err != nil {
				return err
			}
			continue
		}
		if e.Event == nil || !e.Event.IsFlow() {
			continue
		}
		t := e.Event.Time.UTC()
		for _, rec := range e.Event.FlowRecords() {
			k, v, ok := flowOf(&rec)
			if !ok {
				continue
			}
			for _, agg := range []struct {
				m      map[string]*counts
				period time.Time
			}{{hours, t.Truncate(time.Hour)}, {days, time.Date(t.Year(), t.Month(), t.Day(), 0, 0, 0, 0, time.UTC)}} {
				bk := string(k.encode(agg.period))
				if cur := agg.m[bk]; cur != nil {
					cur.add(v)
				} else {
					cp := v
					agg.m[bk] = &cp
				}
			}
		}
	}
	totals := map[string]*counts{}
	for _, b := range []struct {
		name  []byte
		m     map[string]*counts
		daily bool
	}{{bucketHour, hours, false}, {bucketDay, days, true}} {
		bkt := tx.Bucket(b.name)
		for k, v := range b.m {
			var old counts
			if ob := bkt.Get([]byte(k)); ob != nil {
				old = decodeCounts(ob)
			}
			delta := *v
			v.add(old)
			if err := bkt.Put([]byte(k), v.encode()); err != nil {
				return err
			}
			if b.daily {
				addDayTotals(totals, []byte(k), delta, old, *v)
			}
		}
	}
	if err := putDayTotals(tx, totals); err != nil {
		return err
	}
	m := tx.Bucket(bucketMeta)
	if err := m.Put(metaCursor, binary.BigEndian.AppendUint64(nil, c.seq)); err != nil {
		return err
	}
	if err := m.Put(metaFirst, binary.BigEndian.AppendUint64(nil, c.first)); err != nil {
		return err
	}
	if err := m.Put(metaHash, c.hash[:]); err != nil {
		return err
	}
	if c.checkpoint != nil {
		b, err := json.Marshal(c.checkpoint)
		if err != nil {
			return err
		}
		if err := m.Put(metaCkpt, b); err != nil {
			return err
		}
	}
	return nil
}

// flowOf extracts a flow record's key and counts; ev is one tuple
// (audit.Event.FlowRecords).
func flowOf(ev *audit.Event) (key, counts, bool) {
	if ev == nil || (ev.Type != audit.TypeFlowAccept && ev.Type != audit.TypeFlowDeny) {
		return key{}, counts{}, false
	}
	u := func(name string) uint64 {
		v, _ := strconv.ParseUint(ev.Details[name], 10, 64)
		return v
	}
	user := ev.Actor.UserID
	if user == "" {
		user = ev.Target.User
	}
	device := ev.Target.Device
	if device == "" && user == "" {
		device = "addr:" + ev.Source.Addr
	}
	k := key{User: user, Email: ev.Actor.Email, Device: device, Profile: ev.Target.Profile,
		Version: ev.PolicyVersion, Dst: ev.Target.DstAddr, Proto: ev.Target.Protocol, Port: uint16(ev.Target.DstPort),
		Host: ev.Details[audit.FlowDetailHost], Deny: ev.Type == audit.TypeFlowDeny}
	first, last := ev.Time, ev.Time
	if t, err := time.Parse(time.RFC3339Nano, ev.Details["first"]); err == nil {
		first = t
	}
	if t, err := time.Parse(time.RFC3339Nano, ev.Details["last"]); err == nil {
		last = t
	}
	v := counts{PktsOut: u("packets_out"), PktsIn: u("packets_in"), BytesOut: ev.BytesOut, BytesIn: ev.BytesIn,
		// In milliseconds, as flow tuples and flow summaries carry them:
		// a rollup folding a summary agrees with one that folded the raw
		// records, whatever precision an older record had.
		First: first.Truncate(time.Millisecond).UnixNano(), Last: last.Truncate(time.Millisecond).UnixNano()}
	if k.Deny {
		v.Denied = u("flows")
		if v.Denied == 0 {
			v.Denied = u("attempts")
		}
	} else {
		v.Flows = u("flows")
		if ev.Details["flows"] == "" {
			v.Flows = 1 // a per-connection record of older versions
		}
	}
	return k, v, true
}
