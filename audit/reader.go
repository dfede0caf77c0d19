package audit

import (
	"context"
	"fmt"
	"strings"
	"time"

	"github.com/ferryvpn/ferry/cluster"
)

// Journal is the read side of the cluster journal. *cluster.Node
// implements it; so can a test double or a read-only copy.
type Journal interface {
	JournalRange(from, to uint64, max int) ([]cluster.Record, error)
	JournalHead() (uint64, [32]byte, error)
}

var _ Journal = (*cluster.Node)(nil)

// scanPage is how many records Scan reads from the journal at a time.
const scanPage = 1024

// Filter selects journal records, for export, tail and sinks. The zero
// Filter selects everything. Event fields filter events only: checkpoints
// pass every filter (so exports stay verifiable) unless NoCheckpoints.
type Filter struct {
	// FromSeq and ToSeq bound the sequence numbers, inclusive; 0 leaves a
	// side open.
	FromSeq, ToSeq uint64
	// Since (inclusive) and Until (exclusive) bound event times; zero
	// leaves a side open.
	Since, Until time.Time
	// Types selects event types: an exact name ("auth.login",
	// "admin.profile.create") or a prefix ending in ".*" ("auth.*",
	// "admin.*"). Empty selects all.
	Types []string
	// User selects events whose actor user ID or email, or target user,
	// equals it.
	User string
	// NoCheckpoints drops checkpoint records.
	NoCheckpoints bool
}

// Match reports whether f selects e.
func (f *Filter) Match(e *Entry) bool {
	// A stub matches when it overlaps the range.
	if (f.FromSeq != 0 && e.LastSeq() < f.FromSeq) || (f.ToSeq != 0 && e.Seq > f.ToSeq) {
		return false
	}
	if e.Checkpoint != nil {
		return !f.NoCheckpoints
	}
	if e.Event == nil {
		return f.eventFiltersEmpty()
	}
	ev := e.Event
	if (!f.Since.IsZero() && ev.Time.Before(f.Since)) || (!f.Until.IsZero() && !ev.Time.Before(f.Until)) {
		return false
	}
	if f.User != "" && ev.Actor.UserID != f.User && ev.Actor.Email != f.User && ev.Target.User != f.User {
		return false
	}
	if len(f.Types) == 0 {
		return true
	}
	name := ev.FullType()
	for _, t := range f.Types {
		if p, ok := strings.CutSuffix(t, ".*"); ok {
			if name == p || strings.HasPrefix(name, p+".") {
				return true
			}
		} else if name == t {
			return true
		}
	}
	return false
}

func (f *Filter) eventFiltersEmpty() bool {
	return f.Since.IsZero() && f.Until.IsZero() && len(f.Types) == 0 && f.User == ""
}

// Contiguous reports whether f selects every record in its sequence range,
// so the hash chain can be checked link by link.
func (f *Filter) Contiguous() bool { return f.eventFiltersEmpty() && !f.NoCheckpoints }

// String describes f canonically; export trailers sign it.
func (f Filter) String() string {
	var parts []string
	if f.FromSeq != 0 {
		parts = append(parts, fmt.Sprintf("seq>=%d", f.FromSeq))
	}
	if f.ToSeq != 0 {
		parts = append(parts, fmt.Sprintf("seq<=%d", f.ToSeq))
	}
	if !f.Since.IsZero() {
		parts = append(parts, "since="+f.Since.UTC().Format(time.RFC3339Nano))
	}
	if !f.Until.IsZero() {
		parts = append(parts, "until="+f.Until.UTC().Format(time.RFC3339Nano))
	}
	if len(f.Types) > 0 {
		parts = append(parts, "type="+strings.Join(f.Types, ","))
	}
	if f.User != "" {
		parts = append(parts, fmt.Sprintf("user=%q", f.User))
	}
	if f.NoCheckpoints {
		parts = append(parts, "no-checkpoints")
	}
	if len(parts) == 0 {
		return "all"
	}
	return strings.Join(parts, " ")
}

// Scan calls fn for every record of j that f selects, in sequence order, up
// to the journal head when Scan starts. An error from fn stops the scan and
// is returned.
func Scan(ctx context.Context, j Journal, f Filter, fn func(*Entry) error) error {
	head, _, err := j.JournalHead()
	if err != nil {
		return fmt.Errorf("reading journal head: %w", err)
	}
	_, err = scanRange(ctx, j, &f, max(f.FromSeq, 1), head, fn)
	return err
}

// scanRange calls fn for the records f selects with from <= seq <= to and
// returns the last sequence number read.
func scanRange(ctx context.Context, j Journal, f *Filter, from, to uint64, fn func(*Entry) error) (uint64, error) {
	if f.ToSeq != 0 {
		to = min(to, f.ToSeq)
	}
	last := from - 1
	for from <= to {
		if err := ctx.Err(); err != nil {
			return last, err
		}
		recs, err := j.JournalRange(from, to, scanPage)
		if err != nil {
			return last, fmt.Errorf("reading journal from %d: %w", from, err)
		}
		if len(recs) == 0 {
			break
		}
		for _, r := range recs {
			e := entryFromRecord(r)
			if f.Match(&e) {
				if err := fn(&e); err != nil {
					return last, err
				}
			}
			last = r.LastSeq()
		}
		from = last + 1
	}
	return last, nil
}

// Tail is Scan that keeps following the journal: after the records present
// at the start it delivers new ones as they are committed, checking for
// them every poll (default 250ms), until ctx ends or fn fails. It is what
// `ferryctl audit tail -f` serves. It returns ctx.Err() when ctx ends.
func Tail(ctx context.Context, j Journal, f Filter, poll time.Duration, fn func(*Entry) error) error {
	if poll <= 0 {
		poll = 250 * time.Millisecond
	}
	next := max(f.FromSeq, 1)
	t := time.NewTicker(poll)
	defer t.Stop()
	for {
		head, _, err := j.JournalHead()
		if err != nil {
			return fmt.Errorf("reading journal head: %w", err)
		}
		if f.ToSeq != 0 && next > f.ToSeq {
			return nil
		}
		if head >= next {
			last, err := scanRange(ctx, j, &f, next, head, fn)
			if err != nil {
				return err
			}
			if last >= next {
				next = last + 1
				continue
			}
		}
		select {
		case <-ctx.Done():
			return ctx.Err()
		case <-t.C:
		}
	}
}
