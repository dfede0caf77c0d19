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
// each list. It reads each bucket once and keeps one total per period,
// user and service rather than one row per period, user and service, so
// that a 90-day range costs one pass over the daily buckets.
func (r *Rollup) Traffic(ctx context.Context, q AccessQuery, n int) (TrafficSummary, error) {
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
	since, until := q.Since.UTC().Truncate(unit), q.Until.UTC()
	var sum TrafficSummary
	index := map[time.Time]int{}
	for t := since; t.Before(until); t = t.Add(unit) {
		index[t] = len(sum.Series)
		sum.Series = append(sum.Series, TrafficPoint{Period: t})
	}
	users, dests, dens := map[string]*Talker{}, map[string]*Talker{}, map[string]*Talker{}
	var svc, pair []byte
	var cur cursor
	matched := false
	var lastAt time.Time
	var lastIdx int
	var lastOK bool
	var lastUser *Talker
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
			matched = true
			c := decodeCounts(vb)
			if !at.Equal(lastAt) { // once per bucket
				lastAt = at
				p := at
				if q.By == "day" {
					p = time.Date(at.Year(), at.Month(), at.Day(), 0, 0, 0, 0, time.UTC)
				}
				lastIdx, lastOK = index[p]
			}
			if i, ok := lastIdx, lastOK; ok {
				pt := &sum.Series[i]
				pt.BytesOut += c.BytesOut
				pt.BytesIn += c.BytesIn
				pt.Flows += c.Flows
				pt.Denied += c.Denied
			}
			// A bucket's keys are sorted by user: most rows continue the
			// previous row's user.
			u := lastUser
			if u == nil || u.User != string(k.user) {
				if u = users[string(k.user)]; u == nil {
					u = &Talker{User: string(k.user), Email: string(k.email)}
					users[u.User] = u
				}
				lastUser = u
			}
			u.add(&c)
			svc = k.service(svc[:0])
			d := dests[string(svc)]
			if d == nil {
				d = &Talker{Dst: string(k.dst), Protocol: string(k.proto), Port: k.portNum(), Profile: string(k.profile)}
				dests[string(svc)] = d
			} else if string(k.profile) < d.Profile {
				d.Profile = string(k.profile)
			}
			d.add(&c)
			if c.Denied > 0 {
				pair = append(append(append(pair[:0], k.user...), 0), svc...)
				t := dens[string(pair)]
				if t == nil {
					t = &Talker{User: string(k.user), Email: string(k.email), Dst: string(k.dst), Protocol: string(k.proto), Port: k.portNum()}
					dens[string(pair)] = t
				}
				t.add(&c)
			}
		})
	})
	if errors.Is(err, berrors.ErrDatabaseNotOpen) {
		return TrafficSummary{}, ErrClosed
	}
	if err != nil {
		return TrafficSummary{}, err
	}
	sum.Source = sourceOf(cur)
	sum.Empty = !matched
	bytesOf := func(t *Talker) uint64 { return t.BytesIn + t.BytesOut }
	sum.Talkers = topTalkers(users, n, bytesOf)
	sum.Dests = topTalkers(dests, n, bytesOf)
	sum.Denials = topTalkers(dens, n, func(t *Talker) uint64 { return t.Denied })
	return sum, nil
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
// service.
func topTalkers(m map[string]*Talker, n int, key func(*Talker) uint64) []Talker {
	all := make([]*Talker, 0, len(m))
	for _, t := range m {
		all = append(all, t)
	}
	slices.SortFunc(all, func(a, b *Talker) int {
		return cmp.Or(cmp.Compare(key(b), key(a)), cmp.Compare(cmp.Or(a.Email, a.User), cmp.Or(b.Email, b.User)), cmp.Compare(a.User, b.User),
			cmp.Compare(a.Dst, b.Dst), cmp.Compare(a.Protocol, b.Protocol), cmp.Compare(a.Port, b.Port))
	})
	out := make([]Talker, 0, min(n, len(all)))
	for _, t := range all[:min(n, len(all))] {
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

// service appends the key's destination service to b.
func (k *keyView) service(b []byte) []byte {
	b = append(b, k.dst...)
	b = append(b, 0)
	b = append(b, k.proto...)
	b = append(b, 0)
	return append(b, k.port...)
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
