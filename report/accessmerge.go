package report

import (
	"bytes"
	"cmp"
	"context"
	"slices"
	"time"

	bolt "go.etcd.io/bbolt"
)

// segment is one bucket of a range: the daily bucket of the day starting
// at t, or the hourly bucket of the hour starting at t.
type segment struct {
	t   time.Time
	day bool
}

// accessMerge builds the access report's rows one user at a time from
// the buckets of a period read side by side (see Access).
type accessMerge struct {
	q           *AccessQuery
	rep         *AccessReport
	hours, days *bolt.Bucket
	// from and to bound the rows built (to < 0: all); n counts the rows
	// so far.
	from, to, n int
	// The current user's keys (reused): each with its row's key in
	// rows, ordered through order.
	ents  []accessEnt
	rows  []byte
	order []int32
	dist  []int32      // a few rows' first keys
	row   []*accessEnt // one row's keys
	curs  []mergeCursor
	seen  []seenKey // the current user's first distinct keys
}

// seenKey is a key the current user's keys were compared with: its bytes
// after the period and its entry in ents (-1: not selected).
type seenKey struct {
	suffix []byte
	ent    int32
}

// accessEnt is one bucket key selected by the query, in place.
type accessEnt struct {
	k      keyView
	port   uint16
	v      []byte
	lo, hi int32 // the row's key: rows[lo:hi]
	same   int32 // the first key of the user equal to this one, or -1
	row    int32 // the row's number among the user's (a few rows only)
}

// mergeCursor is a bucket's cursor over one period's keys.
type mergeCursor struct {
	c      *bolt.Cursor
	prefix []byte
	k, v   []byte // nil past the period
	user   []byte // k's user
}

func (c *mergeCursor) set(k, v []byte) {
	if k == nil || !bytes.HasPrefix(k, c.prefix) {
		c.k, c.v, c.user = nil, nil, nil
		return
	}
	c.k, c.v = k, v
	u := k[len(c.prefix):]
	if i := bytes.IndexByte(u, 0); i >= 0 {
		u = u[:i]
	}
	c.user = u
}

// period adds the rows of one period of the report (the zero time when
// the report sums the whole range) from the buckets of segs, in time
// order.
func (m *accessMerge) period(ctx context.Context, period time.Time, segs []segment) {
	m.curs = m.curs[:0]
	for _, s := range segs {
		b := m.hours
		if s.day {
			b = m.days
		}
		mc := mergeCursor{c: b.Cursor(), prefix: dayPrefix(nil, s.t.Unix())}
		mc.set(mc.c.Seek(mc.prefix))
		if mc.k != nil {
			m.curs = append(m.curs, mc)
		}
	}
	for users := 0; ; users++ {
		if users%1024 == 0 && ctx.Err() != nil {
			return // Access reports ctx's error
		}
		// The least user any bucket is at: every key of that user, from
		// the buckets in time order (the first key read names a row's
		// email, as a scan in time order would).
		var user []byte
		found := false
		for i := range m.curs {
			if c := &m.curs[i]; c.k != nil && (!found || bytes.Compare(c.user, user) < 0) {
				user, found = c.user, true
			}
		}
		if !found {
			return
		}
		m.ents, m.rows, m.seen = m.ents[:0], m.rows[:0], m.seen[:0]
		for i := range m.curs {
			c := &m.curs[i]
			for c.k != nil && bytes.Equal(c.user, user) {
				m.add(c.k, c.v)
				c.set(c.c.Next())
			}
		}
		m.user(period)
	}
}

// seenKeys is how many of a user's distinct bucket keys add remembers.
const seenKeys = 32

// add adds a key of the current user, if the query selects it. The same
// key in another bucket (the same traffic another day) is not split again:
// its fields are the first one's.
func (m *accessMerge) add(kb, v []byte) {
	suffix := kb[8:] // without the period
	for _, s := range m.seen {
		if bytes.Equal(s.suffix, suffix) {
			if s.ent >= 0 {
				e := m.ents[s.ent]
				e.v, e.same = v, s.ent
				m.ents = append(m.ents, e)
			}
			return
		}
	}
	ent := int32(-1)
	if k, ok := viewKey(kb); ok && m.q.matchView(&k) {
		ent = int32(len(m.ents))
		lo := int32(len(m.rows))
		m.rows = rowKey(m.rows, &k)
		m.ents = append(m.ents, accessEnt{k: k, port: k.portNum(), v: v, lo: lo, hi: int32(len(m.rows)), same: -1})
	}
	if len(m.seen) < seenKeys {
		m.seen = append(m.seen, seenKey{suffix, ent})
	}
}

// rowKey appends the key of k's row among its user's rows, which sorts
// as the report orders them: profile, destination, protocol (each ended
// by a zero byte, so "a" sorts before "ab"), the port as a big-endian
// number, and the host.
func rowKey(b []byte, k *keyView) []byte {
	for _, f := range [][]byte{k.profile, k.dst, k.proto} {
		b = append(append(b, f...), 0)
	}
	p := k.portNum()
	b = append(b, byte(p>>8), byte(p))
	return append(b, k.host...)
}

// fewRows is how many rows a user may have for user to tell them apart by
// comparing with each (more: by sorting the user's keys).
const fewRows = 16

// user makes the rows of the current user's keys (m.ents, in the order
// read), building those inside the page.
func (m *accessMerge) user(period time.Time) {
	ents := m.ents
	rk := func(i int32) []byte { return m.rows[ents[i].lo:ents[i].hi] }
	inPage := func(n int) bool { return n >= m.from && (m.to < 0 || n < m.to) }
	// Most users have a few rows: each key is compared with the rows
	// seen so far (dist holds each row's first key), and only a user
	// with rows in the page has them sorted and built.
	m.dist = m.dist[:0]
	few := true
	for i := range ents {
		e := &ents[i]
		if e.same >= 0 {
			e.row = ents[e.same].row
			continue
		}
		e.row = -1
		for r, first := range m.dist {
			if bytes.Equal(rk(first), rk(int32(i))) {
				e.row = int32(r)
				break
			}
		}
		if e.row < 0 {
			if len(m.dist) == fewRows {
				few = false
				break
			}
			e.row = int32(len(m.dist))
			m.dist = append(m.dist, int32(i))
		}
	}
	if few {
		// This user's rows are numbers m.n to m.n+n-1.
		if n := len(m.dist); m.n+n <= m.from || (m.to >= 0 && m.n >= m.to) {
			m.n += n
			return
		}
		slices.SortFunc(m.dist, func(a, b int32) int { return bytes.Compare(rk(a), rk(b)) })
		for _, first := range m.dist {
			if inPage(m.n) {
				row := m.row[:0]
				for i := first; i < int32(len(ents)); i++ {
					if ents[i].row == ents[first].row {
						row = append(row, &ents[i])
					}
				}
				m.row = row
				m.rep.Rows = append(m.rep.Rows, buildRow(period, row))
			}
			m.n++
		}
		return
	}
	m.order = m.order[:0]
	for i := range ents {
		m.order = append(m.order, int32(i))
	}
	// By row, then in the order read (the first key names the email).
	slices.SortFunc(m.order, func(a, b int32) int { return cmp.Or(bytes.Compare(rk(a), rk(b)), cmp.Compare(a, b)) })
	for i := 0; i < len(m.order); {
		j := i + 1
		for j < len(m.order) && bytes.Equal(rk(m.order[i]), rk(m.order[j])) {
			j++
		}
		if inPage(m.n) {
			row := m.row[:0]
			for _, e := range m.order[i:j] {
				row = append(row, &ents[e])
			}
			m.row = row
			m.rep.Rows = append(m.rep.Rows, buildRow(period, row))
		}
		m.n++
		i = j
	}
}

// buildRow sums one row's keys, the first of which names its email.
func buildRow(period time.Time, ents []*accessEnt) AccessRow {
	k := &ents[0].k
	row := AccessRow{Period: period, User: string(k.user), Email: string(k.email), Profile: string(k.profile), Dst: string(k.dst),
		Protocol: string(k.proto), Port: ents[0].port, Host: string(k.host), Devices: []string{}}
	for i := range ents {
		k := &ents[i].k
		if len(k.device) != 0 && !slices.ContainsFunc(row.Devices, func(d string) bool { return d == string(k.device) }) {
			row.Devices = append(row.Devices, string(k.device))
		}
		if v := parseUint(k.version); v != 0 && !slices.Contains(row.Versions, v) {
			row.Versions = append(row.Versions, v)
		}
		c := decodeCounts(ents[i].v)
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
	}
	slices.Sort(row.Devices)
	slices.Sort(row.Versions)
	return row
}
