package audit

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"log/slog"
	"sync"
	"time"

	"github.com/ferryvpn/ferry/audit/auditfile"
	"github.com/ferryvpn/ferry/cluster"
)

// keyLastCheckpoint holds the newest checkpoint's summary, so that a new
// leader knows when the next one is due and live verification can tell a
// journal cut short.
const keyLastCheckpoint = "sys/audit/checkpoint"

// lastCheckpoint is the value under keyLastCheckpoint.
type lastCheckpoint struct {
	Seq    uint64    `json:"seq"`    // the record the checkpoint covers
	Hash   Hash      `json:"hash"`   // that record's hash
	Record uint64    `json:"record"` // the checkpoint's own record
	Time   time.Time `json:"time"`
}

func loadLastCheckpoint(ctx context.Context, s LiveStore) (lastCheckpoint, bool, error) {
	kv, ok, err := s.Get(ctx, keyLastCheckpoint, cluster.Local)
	if err != nil || !ok {
		return lastCheckpoint{}, false, err
	}
	var lc lastCheckpoint
	if err := json.Unmarshal(kv.Value, &lc); err != nil {
		return lastCheckpoint{}, false, fmt.Errorf("%w: %s: %v", ErrMalformed, keyLastCheckpoint, err)
	}
	return lc, true, nil
}

// CheckpointerConfig configures a Checkpointer. Zero values take the
// documented defaults.
type CheckpointerConfig struct {
	// Store is this node's cluster member. Required.
	Store *cluster.Node
	// Signer holds the cluster audit key (see LoadSigner). Required.
	Signer *Signer
	// Every is the number of records after which a checkpoint is due;
	// default 1000.
	Every uint64
	// Interval is the longest time new records stay unsigned; default 1
	// minute. A checkpoint is appended after Every records or Interval,
	// whichever comes first, and never for an idle journal.
	Interval time.Duration
	// Poll is how often the leader looks at the journal head; default
	// 100ms. It bounds how far past Every a busy journal gets.
	Poll time.Duration
	// Now is the clock; default time.Now.
	Now func() time.Time
	// Logger receives operational logs; default slog.Default().
	Logger *slog.Logger
}

// Validate checks the configuration.
func (c *CheckpointerConfig) Validate() error {
	switch {
	case c.Store == nil:
		return errors.New("audit checkpointer config: store: required")
	case c.Signer == nil:
		return errors.New("audit checkpointer config: signer: required")
	case c.Interval < 0 || c.Poll < 0:
		return errors.New("audit checkpointer config: interval and poll must not be negative")
	}
	return nil
}

func (c *CheckpointerConfig) setDefaults() {
	if c.Every == 0 {
		c.Every = 1000
	}
	if c.Interval == 0 {
		c.Interval = time.Minute
	}
	if c.Poll == 0 {
		c.Poll = 100 * time.Millisecond
	}
	if c.Now == nil {
		c.Now = time.Now
	}
	if c.Logger == nil {
		c.Logger = slog.Default()
	}
}

// Checkpointer appends signed checkpoints to the journal while this node
// leads. It runs on every node; followers only wait. Close stops it.
type Checkpointer struct {
	cfg    CheckpointerConfig
	log    *slog.Logger
	cancel context.CancelFunc
	wg     sync.WaitGroup
	once   sync.Once

	mu      sync.Mutex // guards the fields below and serialises checkpoints
	leading bool       // state below was loaded during the current leadership
	last    lastCheckpoint
	since   time.Time // when the unsigned stretch began (or leadership did)
}

// NewCheckpointer starts a Checkpointer.
func NewCheckpointer(cfg CheckpointerConfig) (*Checkpointer, error) {
	if err := cfg.Validate(); err != nil {
		return nil, err
	}
	cfg.setDefaults()
	ctx, cancel := context.WithCancel(context.Background())
	c := &Checkpointer{cfg: cfg, log: cfg.Logger.With("component", "audit-checkpointer"), cancel: cancel}
	c.wg.Add(1)
	go func() {
		defer c.wg.Done()
		c.loop(ctx)
	}()
	return c, nil
}

// Close stops the checkpointer and waits for it. It is idempotent.
func (c *Checkpointer) Close() error {
	c.once.Do(func() {
		c.cancel()
		c.wg.Wait()
	})
	return nil
}

func (c *Checkpointer) loop(ctx context.Context) {
	t := time.NewTicker(c.cfg.Poll)
	defer t.Stop()
	for {
		select {
		case <-ctx.Done():
			return
		case <-t.C:
		}
		if !c.cfg.Store.IsLeader() {
			c.mu.Lock()
			c.leading = false
			c.mu.Unlock()
			continue
		}
		if _, err := c.maybe(ctx, false); err != nil && ctx.Err() == nil {
			c.log.Warn("audit checkpoint failed", "err", err)
		}
	}
}

// Checkpoint signs the journal head and appends the checkpoint now, unless
// nothing is unsigned. It works on any node (the append is forwarded) and
// returns the checkpoint, or the zero Checkpoint when none was needed.
func (c *Checkpointer) Checkpoint(ctx context.Context) (Checkpoint, error) {
	return c.maybe(ctx, true)
}

func (c *Checkpointer) maybe(ctx context.Context, force bool) (Checkpoint, error) {
	c.mu.Lock()
	defer c.mu.Unlock()
	now := c.cfg.Now()
	if !c.leading {
		lc, _, err := loadLastCheckpoint(ctx, c.cfg.Store)
		if err != nil {
			return Checkpoint{}, err
		}
		c.last, c.since, c.leading = lc, now, c.cfg.Store.IsLeader()
	}
	head, headHash, err := c.cfg.Store.JournalHead()
	if err != nil {
		return Checkpoint{}, err
	}
	// Nothing new: the head is what the last checkpoint covers, or the
	// checkpoint record itself right after it.
	if head == c.last.Seq || (head == c.last.Record && c.last.Record == c.last.Seq+1) {
		c.since = now
		return Checkpoint{}, nil
	}
	if !force && head-c.last.Seq < c.cfg.Every && now.Sub(c.since) < c.cfg.Interval {
		return Checkpoint{}, nil
	}
	cp := Checkpoint{Seq: head, Hash: headHash, Time: now.UTC(), Node: c.cfg.Store.ID()}
	c.cfg.Signer.SignCheckpoint(&cp)
	rec, err := auditfile.EncodeCheckpoint(&cp)
	if err != nil {
		return Checkpoint{}, err
	}
	res, err := c.cfg.Store.Append(ctx, [][]byte{rec})
	if err != nil {
		return Checkpoint{}, fmt.Errorf("appending checkpoint: %w", err)
	}
	c.last = lastCheckpoint{Seq: head, Hash: headHash, Record: res.First, Time: cp.Time}
	c.since = now
	b, err := json.Marshal(c.last)
	if err != nil {
		return cp, err
	}
	// The summary may lag the journal after a crash; a new leader then
	// simply checkpoints sooner.
	if _, err := c.cfg.Store.Put(ctx, keyLastCheckpoint, b); err != nil {
		return cp, fmt.Errorf("recording checkpoint: %w", err)
	}
	return cp, nil
}
