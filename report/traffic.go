package report

import (
	"bytes"
	"cmp"
	"context"
	"errors"
	"fmt"
	"net/netip"
	"slices"
	"time"

	bolt "go.etcd.io/bbolt"
	berrors "go.etcd.io/bbolt/errors"
)

// TrafficPoint is one period of a traffic summary's series.
type TrafficPoint struct {
	Period   time.Time `json:"period"`
	BytesOut uint64    `json:"bytes_out"`
	BytesIn  uint64    `json:"bytes_in"`
	Flows    uint64    `json:"flows"`
	Denied   uint64    `json:"denied"`
}

// Talker is one line of a traffic summary's top lists: a user, a
// destination service, or a user's denied attempts to one service.
type Talker struct {
	// User and Email name the user (empty in the destination list).
	User  string `json:"user,omitempty"`
	Email string `json:"email,omitempty"`
	// Dst, Protocol and Port name the service (empty in the user list;
	// Dst empty: folded under load to the client).
	Dst      string `json:"dst,omitempty"`
	Protocol string `json:"protocol,omitempty"`
	Port     uint16 `json:"port,omitempty"`
	// Profile is, in the destination list, the lexically first profile
	// the service was reached through.
	Profile  string    `json:"profile,omitempty"`
	BytesOut uint64    `json:"bytes_out"`
	BytesIn  uint64    `json:"bytes_in"`
	Flows    uint64    `json:"flows"`
	Denied   uint64    `json:"denied"`
	Last     time.Time `json:"last,omitzero"`
}

// TrafficSummary is what a traffic chart shows: the totals per period
// and the top users, destinations and denied attempts over the range.
type TrafficSummary struct {
	Source Source         `json:"source"`
	Series []TrafficPoint `json:"series"`
	// Talkers are the top users by bytes, Dests the top services by
	// bytes, Denials the top (user, service) pairs by denied attempts.
	Talkers, Dests, Denials []Talker
	// Empty is set when no bucket matched.
	Empty bool `json:"empty"`
}

// Traffic summarises q (By "hour" or "day", Since and Until required)
// for a chart: one point per period from Since to Until and the top n of
// each list. It keeps one total per period, user and service rather than
// one row per period, user and service. A query by day without filters
// reads the daily totals (daytotals.go) for whole days, a few rows a user
// a day; one by day for a user reads only that user's daily keys, found
// through the totals; others read each bucket key of the range once.
func (r *Rollup) Traffic(ctx context.Context, q AccessQuery, n int) (TrafficSummary, error) {
	return r.traffic(ctx, q, n, true)
}

// traffic is Traffic; without useTotals it reads every bucket key even
// where the daily totals would do (the reference its tests compare with).
func (r *Rollup) traffic(ctx context.Context, q AccessQuery, n int, useTotals bool) (TrafficSummary, error) {
	if err := q.Validate(); err != nil {
		return TrafficSummary{}, err
	}
	if q.Since.IsZero() || q.Until.IsZero() || q.By == "" {
		return TrafficSummary{}, fmt.Errorf("%w: traffic needs since, until and by", ErrInvalidQuery)
	}
	unit := 24 * time.Hour
	if q.By == "hour" {
		unit = time.Hour
	}
	a := trafficSum{q: &q, index: map[time.Time]int{}, users: map[string]*Talker{}, dests: map[string]*Talker{}, dens: map[string]*Talker{}}
	for t := q.Since.UTC().Truncate(unit); t.Before(q.Until.UTC()); t = t.Add(unit) {
		a.index[t] = len(a.sum.Series)
		a.sum.Series = append(a.sum.Series, TrafficPoint{Period: t})
	}
	totals := useTotals && q.By == "day" && q.User == "" && q.Profile == "" && !q.Dst.IsValid() && q.Port == 0 && q.Protocol == ""
	// A query of one user reads, for whole days, only the daily keys of
	// the users the daily totals name (by ID or email).
	oneUser := useTotals && q.By == "day" && q.User != ""
	var users [][]byte
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
		hours, days := tx.Bucket(bucketHour), tx.Bucket(bucketDay)
		var prefix []byte
		return segments(ctx, tx, lo, hi, q.By == "hour", func(t time.Time, day bool) {
			a.period(t)
			prefix = dayPrefix(prefix, t.Unix())
			if day && totals {
				scanDayTotals(tx, prefix, []byte{totalDenial, totalService, totalUser}, a.addTotal)
				return
			}
			if day && oneUser {
				users = usersOnDay(tx, prefix, q.User, users[:0])
				c := days.Cursor()
				for _, u := range users {
					up := append(append(prefix[:8:8], u...), 0)
					for k, v := c.Seek(up); k != nil && bytes.HasPrefix(k, up); k, v = c.Next() {
						a.addKey(k, v)
					}
				}
				return
			}
			b := hours
			if day {
				b = days
			}
			c := b.Cursor()
			for k, v := c.Seek(prefix); k != nil && bytes.HasPrefix(k, prefix); k, v = c.Next() {
				a.addKey(k, v)
			}
		})
	})
	if errors.Is(err, berrors.ErrDatabaseNotOpen) {
		return TrafficSummary{}, ErrClosed
	}
	if err != nil {
		return TrafficSummary{}, err
	}
	sum := a.sum
	sum.Source = sourceOf(cur)
	sum.Empty = !a.matched
	bytesOf := func(t *Talker) uint64 { return t.BytesIn + t.BytesOut }
	sum.Talkers = topTalkers(a.users, n, bytesOf)
	sum.Dests = topTalkers(a.dests, n, bytesOf)
	sum.Denials = topTalkers(a.dens, n, func(t *Talker) uint64 { return t.Denied })
	return sum, nil
}

// trafficSum accumulates a traffic summary, bucket after bucket in time
// order (the first key seen of a user names the user's email).
type trafficSum struct {
	q                  *AccessQuery
	sum                TrafficSummary
	index              map[time.Time]int
	users, dests, dens map[string]*Talker
	matched            bool
	point              *TrafficPoint // the current bucket's, nil outside the series
	lastUser           *Talker
	svc, pair          []byte
}

// period starts a bucket that begins at at.
func (a *trafficSum) period(at time.Time) {
	p := at
	if a.q.By == "day" {
		p = time.Date(at.Year(), at.Month(), at.Day(), 0, 0, 0, 0, time.UTC)
	}
	a.point = nil
	if i, ok := a.index[p]; ok {
		a.point = &a.sum.Series[i]
	}
}

// user returns the user's talker, made with email if new. A bucket's keys
// are sorted by user: most rows continue the previous row's user.
func (a *trafficSum) user(user, email []byte) *Talker {
	u := a.lastUser
	if u == nil || u.User != string(user) {
		if u = a.users[string(user)]; u == nil {
			u = &Talker{User: string(user), Email: string(email)}
			a.users[u.User] = u
		}
		a.lastUser = u
	}
	return u
}

// dest returns the service's talker.
func (a *trafficSum) dest(dst, proto, port, profile []byte) *Talker {
	a.svc = append(append(append(append(append(a.svc[:0], dst...), 0), proto...), 0), port...)
	d := a.dests[string(a.svc)]
	if d == nil {
		d = &Talker{Dst: string(dst), Protocol: string(proto), Port: uint16(parseUint(port)), Profile: string(profile)}
		a.dests[string(a.svc)] = d
	} else if string(profile) < d.Profile {
		d.Profile = string(profile)
	}
	return d
}

// denial returns the talker of a user's denied attempts to a service.
func (a *trafficSum) denial(user, email, dst, proto, port []byte) *Talker {
	a.pair = append(append(append(append(append(append(append(a.pair[:0], user...), 0), dst...), 0), proto...), 0), port...)
	t := a.dens[string(a.pair)]
	if t == nil {
		t = &Talker{User: string(user), Email: string(email), Dst: string(dst), Protocol: string(proto), Port: uint16(parseUint(port))}
		a.dens[string(a.pair)] = t
	}
	return t
}

// addKey adds a bucket key of the current bucket, if the query selects it.
func (a *trafficSum) addKey(kb, vb []byte) {
	k, ok := viewKey(kb)
	if !ok || !a.q.matchView(&k) {
		return
	}
	a.matched = true
	c := decodeCounts(vb)
	if pt := a.point; pt != nil {
		pt.BytesOut += c.BytesOut
		pt.BytesIn += c.BytesIn
		pt.Flows += c.Flows
		pt.Denied += c.Denied
	}
	a.user(k.user, k.email).add(&c)
	a.dest(k.dst, k.proto, k.port, k.profile).add(&c)
	if c.Denied > 0 {
		a.denial(k.user, k.email, k.dst, k.proto, k.port).add(&c)
	}
}

// addTotal adds a daytotal row of the current day (unfiltered queries
// only): user rows make the series and the talkers, service rows the
// destinations, denial rows the denied attempts.
func (a *trafficSum) addTotal(t *totalView, vb []byte) {
	a.matched = true
	c := decodeCounts(vb)
	switch t.kind {
	case totalUser:
		if pt := a.point; pt != nil {
			pt.BytesOut += c.BytesOut
			pt.BytesIn += c.BytesIn
			pt.Flows += c.Flows
			pt.Denied += c.Denied
		}
		a.user(t.user, t.email).add(&c)
	case totalService:
		a.dest(t.dst, t.proto, t.port, t.profile).add(&c)
	case totalDenial:
		a.denial(t.user, t.email, t.dst, t.proto, t.port).add(&c)
	}
}

func (t *Talker) add(c *counts) {
	t.BytesOut += c.BytesOut
	t.BytesIn += c.BytesIn
	t.Flows += c.Flows
	t.Denied += c.Denied
	if last := time.Unix(0, c.Last).UTC(); c.Last != 0 && last.After(t.Last) {
		t.Last = last
	}
}

// topTalkers returns the n largest of m by key, ties by user then
// service. It keeps the n best seen in order (one comparison for most
// talkers) rather than sorting them all.
func topTalkers(m map[string]*Talker, n int, key func(*Talker) uint64) []Talker {
	order := func(a, b *Talker) int {
		if c := cmp.Compare(key(b), key(a)); c != 0 {
			return c
		}
		return cmp.Or(cmp.Compare(cmp.Or(a.Email, a.User), cmp.Or(b.Email, b.User)), cmp.Compare(a.User, b.User),
			cmp.Compare(a.Dst, b.Dst), cmp.Compare(a.Protocol, b.Protocol), cmp.Compare(a.Port, b.Port))
	}
	top := make([]*Talker, 0, min(n, len(m))+1)
	for _, t := range m {
		if n <= 0 || len(top) == n && order(t, top[n-1]) >= 0 {
			continue
		}
		i, _ := slices.BinarySearchFunc(top, t, order)
		top = slices.Insert(top, i, t)
		if len(top) > n {
			top = top[:n]
		}
	}
	out := make([]Talker, 0, len(top))
	for _, t := range top {
		out = append(out, *t)
	}
	return out
}

// keyView is a bucket key's fields as slices of the key (valid while its
// transaction is open): decoding without allocating.
type keyView struct {
	user, email, device, profile, version, dst, proto, port, host []byte
	verdict                                                       []byte // "a" or "d"
}

// viewKey splits a key laid out by key.encode.
func viewKey(b []byte) (keyView, bool) {
	if len(b) < 8 {
		return keyView{}, false
	}
	// One pass over the bytes: the fields are short, so a loop beats a
	// call per field.
	b = b[8:]
	var f [10][]byte
	n, start := 0, 0
	for i, c := range b {
		if c != 0 {
			continue
		}
		if n == len(f) {
			return keyView{}, false
		}
		f[n], start = b[start:i:i], i+1
		n++
	}
	if n != len(f) || start != len(b) {
		return keyView{}, false
	}
	return keyView{user: f[0], email: f[1], device: f[2], profile: f[3], version: f[4], dst: f[5], proto: f[6], port: f[7], host: f[8], verdict: f[9]}, true
}

func (k *keyView) portNum() uint16 { return uint16(parseUint(k.port)) }

// parseUint reads the decimal digits key.encode wrote, without
// allocating; anything else reads as 0.
func parseUint(b []byte) uint64 {
	var v uint64
	for _, c := range b {
		if c < '0' || c > '9' {
			return 0
		}
		v = v*10 + uint64(c-'0')
	}
	return v
}

// matchView is match on a key view.
func (q *AccessQuery) matchView(k *keyView) bool {
	if q.User != "" && string(k.user) != q.User && !bytes.EqualFold(k.email, []byte(q.User)) {
		return false
	}
	if q.Profile != "" && string(k.profile) != q.Profile {
		return false
	}
	if q.Port != 0 && k.portNum() != q.Port {
		return false
	}
	if q.Protocol != "" && string(k.proto) != q.Protocol {
		return false
	}
	if q.Dst.IsValid() {
		a, err := netip.ParseAddr(string(k.dst))
		if err != nil || !q.Dst.Contains(a) {
			return false
		}
	}
	return true
}
