package report

import (
	"bytes"
	"context"
	"encoding/binary"
	"encoding/json"
	"errors"
	"fmt"
	"net/netip"
	"time"

	bolt "go.etcd.io/bbolt"
	berrors "go.etcd.io/bbolt/errors"

	"github.com/ferryvpn/ferry/audit"
)

// AccessQuery filters the access report. The zero value selects
// everything. Times are cut to whole hours: Since rounds down, Until up.
type AccessQuery struct {
	// User selects a user by ID or email.
	User string `json:"user,omitempty"`
	// Profile selects a profile by name.
	Profile string `json:"profile,omitempty"`
	// Dst selects destinations inside the prefix.
	Dst netip.Prefix `json:"dst,omitempty"`
	// Port selects a destination port; 0 selects all.
	Port uint16 `json:"port,omitempty"`
	// Protocol selects tcp, udp, icmp or a protocol number.
	Protocol string `json:"protocol,omitempty"`
	// Since (inclusive) and Until (exclusive) bound the time.
	Since time.Time `json:"since,omitzero"`
	Until time.Time `json:"until,omitzero"`
	// By splits rows per "hour" or "day" (UTC) for statistics over time;
	// empty sums the whole range.
	By string `json:"by,omitempty"`
	// Offset and Limit select a page of the ordered rows: Offset rows
	// are skipped and at most Limit returned (0: all). The report's
	// Total still counts every row.
	Offset int `json:"offset,omitempty"`
	Limit  int `json:"limit,omitempty"`
}

// Validate checks the query, naming the bad field.
func (q *AccessQuery) Validate() error {
	switch {
	case q.Dst.IsValid() && q.Dst != q.Dst.Masked():
		return fmt.Errorf("%w: dst %s: not a network address (did you mean %s?)", ErrInvalidQuery, q.Dst, q.Dst.Masked())
	case q.Offset < 0 || q.Limit < 0:
		return fmt.Errorf("%w: offset %d, limit %d: must not be negative", ErrInvalidQuery, q.Offset, q.Limit)
	case q.By != "" && q.By != "hour" && q.By != "day":
		return fmt.Errorf("%w: by %q: want hour or day", ErrInvalidQuery, q.By)
	case !q.Since.IsZero() && !q.Until.IsZero() && !q.Since.Before(q.Until):
		return fmt.Errorf("%w: since %s is not before until %s", ErrInvalidQuery, q.Since.Format(time.RFC3339), q.Until.Format(time.RFC3339))
	}
	return nil
}

// AccessRow is one line of the access report: a user's traffic through
// one profile to one destination service.
type AccessRow struct {
	// Period is the hour or day the row covers when the query splits by
	// time; zero otherwise.
	Period   time.Time `json:"period,omitzero"`
	User     string    `json:"user"`
	Email    string    `json:"email,omitempty"`
	Devices  []string  `json:"devices"`
	Profile  string    `json:"profile"`
	Versions []uint64  `json:"profile_versions"`
	Dst      string    `json:"dst"` // empty: folded under load to the client
	Protocol string    `json:"protocol,omitempty"`
	Port     uint16    `json:"port,omitempty"`
	// Host is the name whose DNS answer granted the traffic (a host
	// rule); empty for traffic a CIDR rule admitted or that was denied.
	Host       string    `json:"host,omitempty"`
	First      time.Time `json:"first"`
	Last       time.Time `json:"last"`
	Flows      uint64    `json:"flows"`
	PacketsOut uint64    `json:"packets_out"`
	PacketsIn  uint64    `json:"packets_in"`
	BytesOut   uint64    `json:"bytes_out"`
	BytesIn    uint64    `json:"bytes_in"`
	Denied     uint64    `json:"denied"`
}

// Source names the journal range a report was computed from and the last
// signed checkpoint inside it, so that it can be checked with `ferryctl
// audit verify` over the same range.
type Source struct {
	// FromSeq and ToSeq are the journal records folded, inclusive.
	FromSeq uint64 `json:"from_seq"`
	ToSeq   uint64 `json:"to_seq"`
	// Checkpoint is the last signed checkpoint read; records after it
	// (Unsigned of them) are not covered by a signature yet.
	Checkpoint *audit.Checkpoint `json:"checkpoint,omitempty"`
	Unsigned   uint64            `json:"unsigned"`
}

// AccessReport is the access report: who accessed what.
type AccessReport struct {
	Query  AccessQuery `json:"query"`
	Source Source      `json:"source"`
	Rows   []AccessRow `json:"rows"`
	// Total counts the report's rows; more than len(Rows) when the query
	// asked for a page.
	Total int `json:"total"`
}

// Source returns the journal range the rollup holds.
func (r *Rollup) Source() (Source, error) {
	c, err := r.readCursor()
	if err != nil {
		return Source{}, err
	}
	return sourceOf(c), nil
}

func sourceOf(c cursor) Source {
	s := Source{FromSeq: c.first, ToSeq: c.seq, Checkpoint: c.checkpoint, Unsigned: c.seq - c.first + 1}
	if c.seq == 0 {
		s.Unsigned = 0
	}
	if c.checkpoint != nil {
		s.Unsigned = c.seq - c.checkpoint.Seq
	}
	return s
}

// Access computes the access report from the rollup as it stands (call
// Sync first for the latest records). Rows are ordered by user, profile,
// destination, protocol and port (by period first when split by time).
//
// Bucket keys sort by period and then by user, so Access reads the
// buckets of the range side by side, one user at a time (accessMerge):
// a user's keys make that user's rows, which come out in the report's
// order without a map or a sort of every row, and only the rows of the
// page asked for are built.
func (r *Rollup) Access(ctx context.Context, q AccessQuery) (AccessReport, error) {
	if err := q.Validate(); err != nil {
		return AccessReport{}, err
	}
	rep := AccessReport{Query: q, Rows: []AccessRow{}}
	m := accessMerge{q: &q, rep: &rep, from: q.Offset, to: -1}
	if q.Limit > 0 {
		m.to = q.Offset + q.Limit
	}
	var cur cursor
	err := r.db.View(func(tx *bolt.Tx) error {
		var err error
		if cur, err = readCursorTx(tx); err != nil {
			return err
		}
		lo, hi, ok := scanBounds(tx, q.Since, q.Until)
		if !ok {
			return nil
		}
		m.hours, m.days = tx.Bucket(bucketHour), tx.Bucket(bucketDay)
		// Buckets whose keys fall in the same period of the report are
		// read together.
		var group []segment
		var period time.Time
		err = segments(ctx, tx, lo, hi, q.By == "hour", func(t time.Time, day bool) {
			var p time.Time
			switch q.By {
			case "hour":
				p = t
			case "day":
				p = time.Date(t.Year(), t.Month(), t.Day(), 0, 0, 0, 0, time.UTC)
			}
			if len(group) > 0 && !p.Equal(period) {
				m.period(ctx, period, group)
				group = group[:0]
			}
			period = p
			group = append(group, segment{t, day})
		})
		if err != nil {
			return err
		}
		if len(group) > 0 {
			m.period(ctx, period, group)
		}
		return ctx.Err()
	})
	if errors.Is(err, berrors.ErrDatabaseNotOpen) {
		return AccessReport{}, ErrClosed
	}
	if err != nil {
		return AccessReport{}, err
	}
	rep.Source = sourceOf(cur)
	rep.Total = m.n
	return rep, nil
}

func readCursorTx(tx *bolt.Tx) (cursor, error) {
	var c cursor
	m := tx.Bucket(bucketMeta)
	if v := m.Get(metaCursor); len(v) == 8 {
		c.seq = binary.BigEndian.Uint64(v)
	}
	if v := m.Get(metaFirst); len(v) == 8 {
		c.first = binary.BigEndian.Uint64(v)
	}
	copy(c.hash[:], m.Get(metaHash))
	if v := m.Get(metaCkpt); v != nil {
		c.checkpoint = new(audit.Checkpoint)
		if err := json.Unmarshal(v, c.checkpoint); err != nil {
			return c, fmt.Errorf("decoding the rollup's checkpoint: %w", err)
		}
	}
	return c, nil
}

// scanPeriods calls fn for every bucket between since and until (whole
// hours; zero leaves a side open), reading daily buckets for whole days and
// hourly buckets for the hours at the edges.
func scanPeriods(ctx context.Context, tx *bolt.Tx, since, until time.Time, fn func(key, counts)) error {
	return scanPeriodsAt(ctx, tx, since, until, false, func(k key, c counts, _ time.Time) { fn(k, c) })
}

// scanPeriodsAt is scanPeriods that also passes each bucket's start; with
// hourly set it reads hourly buckets only.
func scanPeriodsAt(ctx context.Context, tx *bolt.Tx, since, until time.Time, hourly bool, fn func(key, counts, time.Time)) error {
	return scanRaw(ctx, tx, since, until, hourly, func(k, v []byte, at time.Time) {
		if kk, _, ok := decodeKey(k); ok {
			fn(kk, decodeCounts(v), at)
		}
	})
}

// scanRaw is scanPeriodsAt on the encoded keys and counts (valid only
// during the call), for readers that decode without allocating.
func scanRaw(ctx context.Context, tx *bolt.Tx, since, until time.Time, hourly bool, fn func(k, v []byte, at time.Time)) error {
	hours, days := tx.Bucket(bucketHour), tx.Bucket(bucketDay)
	lo, hi, ok := scanBounds(tx, since, until)
	if !ok {
		return nil
	}
	scan := func(b *bolt.Bucket, period time.Time) {
		prefix := binary.BigEndian.AppendUint64(nil, uint64(period.Unix()))
		c := b.Cursor()
		for k, v := c.Seek(prefix); k != nil && bytes.HasPrefix(k, prefix); k, v = c.Next() {
			fn(k, v, period)
		}
	}
	return segments(ctx, tx, lo, hi, hourly, func(t time.Time, day bool) {
		if day {
			scan(days, t)
		} else {
			scan(hours, t)
		}
	})
}

// segments calls fn for the buckets that cover lo to hi (whole hours) in
// time order: a daily bucket (day set) for each whole day, hourly buckets
// for the hours at the edges; with hourly set, hourly buckets only. A day
// past the flow window has its daily bucket only (its hourly ones were
// dropped when its flow records were pruned, summary.go): it is read
// whole, at its first hour, wherever the range starts or ends in it and
// with hourly set too.
func segments(ctx context.Context, tx *bolt.Tx, lo, hi time.Time, hourly bool, fn func(t time.Time, day bool)) error {
	hours, days := tx.Bucket(bucketHour), tx.Bucket(bucketDay)
	var checked time.Time // the last day dailyOnly answered for
	var only bool
	dailyOnly := func(d time.Time) bool {
		if !d.Equal(checked) {
			checked, only = d, !hasPeriod(hours, d, d.Add(24*time.Hour)) && hasPeriod(days, d, d.Add(time.Second))
		}
		return only
	}
	for t := lo; t.Before(hi); {
		if err := ctx.Err(); err != nil {
			return err
		}
		if !hourly && t.Hour() == 0 && !t.Add(24*time.Hour).After(hi) {
			fn(t, true)
			t = t.Add(24 * time.Hour)
			continue
		}
		if d := t.Truncate(24 * time.Hour); dailyOnly(d) {
			fn(d, true)
			t = d.Add(24 * time.Hour)
			continue
		}
		fn(t, false)
		t = t.Add(time.Hour)
	}
	return nil
}

// hasPeriod reports whether b holds a key of a period from lo (inclusive)
// to hi (exclusive).
func hasPeriod(b *bolt.Bucket, lo, hi time.Time) bool {
	k, _ := b.Cursor().Seek(binary.BigEndian.AppendUint64(nil, uint64(lo.Unix())))
	return len(k) >= 8 && binary.BigEndian.Uint64(k) < uint64(hi.Unix())
}

// scanBounds returns the hours to read for since and until (zero leaves a
// side open): those the rollup holds, cut to whole hours. Days past the
// flow window have daily buckets only (their hourly ones are dropped when
// their flow records are pruned, summary.go): they count too.
func scanBounds(tx *bolt.Tx, since, until time.Time) (lo, hi time.Time, ok bool) {
	lo, hi, ok = bounds(tx.Bucket(bucketHour))
	if dlo, dhi, dok := bounds(tx.Bucket(bucketDay)); dok {
		dhi = dhi.Add(23 * time.Hour) // a day bucket's key is its first hour
		if !ok || dlo.Before(lo) {
			lo = dlo
		}
		if !ok || dhi.After(hi) {
			hi = dhi
		}
		ok = true
	}
	if !ok {
		return lo, hi, false
	}
	if !since.IsZero() && since.After(lo) {
		lo = since.UTC().Truncate(time.Hour)
	}
	if !until.IsZero() {
		u := until.UTC()
		if t := u.Truncate(time.Hour); t.Before(u) {
			u = t.Add(time.Hour)
		}
		if u.Before(hi) {
			hi = u
		}
	}
	return lo, hi, true
}

// bounds returns the first hour held and the end of the last.
func bounds(b *bolt.Bucket) (lo, hi time.Time, ok bool) {
	c := b.Cursor()
	first, _ := c.First()
	last, _ := c.Last()
	if len(first) < 8 || len(last) < 8 {
		return lo, hi, false
	}
	lo = time.Unix(int64(binary.BigEndian.Uint64(first)), 0).UTC()
	hi = time.Unix(int64(binary.BigEndian.Uint64(last)), 0).UTC().Add(time.Hour)
	return lo, hi, true
}
