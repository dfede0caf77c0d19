package report

import (
	"context"
	"encoding/binary"
	"errors"
	"slices"
	"strings"
	"time"

	bolt "go.etcd.io/bbolt"
	berrors "go.etcd.io/bbolt/errors"
)

// accessByMap is Access as it was before accessMerge: every bucket key of
// the range into one map of rows, sorted at the end. Access must return
// what it returns.
func (r *Rollup) accessByMap(ctx context.Context, q AccessQuery) (AccessReport, error) {
	if err := q.Validate(); err != nil {
		return AccessReport{}, err
	}
	rep := AccessReport{Query: q, Rows: []AccessRow{}}
	// Rows are found by their key's bytes (period, user, profile,
	// destination, protocol, port, host) read in place, so a bucket key
	// costs no allocation unless it starts a row.
	rows := map[string]*AccessRow{}
	var rk []byte
	var lastAt, period time.Time
	var cur cursor
	err := r.db.View(func(tx *bolt.Tx) error {
		var err error
		if cur, err = readCursorTx(tx); err != nil {
			return err
		}
		return scanRaw(ctx, tx, q.Since, q.Until, q.By == "hour", func(kb, vb []byte, at time.Time) {
			k, ok := viewKey(kb)
			if !ok || !q.matchView(&k) {
				return
			}
			if !at.Equal(lastAt) { // once per bucket
				lastAt = at
				switch q.By {
				case "hour":
					period = at
				case "day":
					period = time.Date(at.Year(), at.Month(), at.Day(), 0, 0, 0, 0, time.UTC)
				}
			}
			// The row's key sorts as the report's order: period, then
			// each text field ended by a zero byte (so "a" sorts before
			// "ab"), the port as a big-endian number.
			rk = binary.BigEndian.AppendUint64(rk[:0], uint64(period.Unix()))
			for _, f := range [][]byte{k.user, k.profile, k.dst, k.proto} {
				rk = append(append(rk, f...), 0)
			}
			rk = binary.BigEndian.AppendUint16(rk, k.portNum())
			rk = append(append(rk, k.host...), 0)
			row := rows[string(rk)]
			if row == nil {
				row = &AccessRow{Period: period, User: string(k.user), Email: string(k.email), Profile: string(k.profile), Dst: string(k.dst),
					Protocol: string(k.proto), Port: k.portNum(), Host: string(k.host)}
				rows[string(rk)] = row
			}
			if len(k.device) != 0 && !slices.ContainsFunc(row.Devices, func(d string) bool { return d == string(k.device) }) {
				row.Devices = append(row.Devices, string(k.device))
			}
			if v := parseUint(k.version); v != 0 && !slices.Contains(row.Versions, v) {
				row.Versions = append(row.Versions, v)
			}
			c := decodeCounts(vb)
			row.Flows += c.Flows
			row.PacketsOut += c.PktsOut
			row.PacketsIn += c.PktsIn
			row.BytesOut += c.BytesOut
			row.BytesIn += c.BytesIn
			row.Denied += c.Denied
			first, last := time.Unix(0, c.First).UTC(), time.Unix(0, c.Last).UTC()
			if row.First.IsZero() || first.Before(row.First) {
				row.First = first
			}
			if last.After(row.Last) {
				row.Last = last
			}
		})
	})
	if errors.Is(err, berrors.ErrDatabaseNotOpen) {
		return AccessReport{}, ErrClosed
	}
	if err != nil {
		return AccessReport{}, err
	}
	rep.Source = sourceOf(cur)
	// Sorting by the row keys (one byte comparison each) orders the rows
	// as the report promises; only the page asked for is copied out.
	type keyed struct {
		k   string
		row *AccessRow
	}
	sorted := make([]keyed, 0, len(rows))
	for k, row := range rows {
		sorted = append(sorted, keyed{k, row})
	}
	slices.SortFunc(sorted, func(a, b keyed) int { return strings.Compare(a.k, b.k) })
	rep.Total = len(sorted)
	lo := min(q.Offset, len(sorted))
	hi := len(sorted)
	if q.Limit > 0 {
		hi = min(lo+q.Limit, hi)
	}
	rep.Rows = make([]AccessRow, 0, hi-lo)
	for _, e := range sorted[lo:hi] {
		row := e.row
		slices.Sort(row.Devices)
		slices.Sort(row.Versions)
		if row.Devices == nil {
			row.Devices = []string{}
		}
		rep.Rows = append(rep.Rows, *row)
	}
	return rep, nil
}
