package report

import (
	"bytes"
	"encoding/binary"
	"slices"
	"unicode"
	"unicode/utf8"

	bolt "go.etcd.io/bbolt"
)

// Daily totals. A chart over a long range needs, per day, only the totals
// of each user, of each destination service and of each (user, service)
// pair with denied attempts, not every daily bucket key (user, device,
// profile, version, destination, host, verdict): the daytotal bucket keeps
// those totals, derived from the daily buckets in the same transaction as
// they change, so an unfiltered 90-day traffic summary reads a few rows a
// user a day instead of a row per key. Like every bucket of the rollup
// they follow from the journal alone (see foldPage), whatever the pages
// the journal was folded in.
//
// Keys: the day (8 bytes, big endian unix seconds, as in the daily
// bucket), a kind byte, then the fields each ended by 0x00:
//
//	'u' user, email: all of a user's traffic that day
//	's' destination, protocol, port, profile: a service's traffic through a profile
//	'd' user, destination, protocol, port, email: the daily keys of a user and
//	    service that counted denied attempts
//	'e' email case-folded (foldCase), user: the 'u' rows again, found by
//	    email, so that a chart of one user finds the user's daily keys by
//	    seeking instead of reading every key
//
// Values are counts, as in the buckets.
var bucketDayTotal = []byte("daytotal")

const (
	totalUser    = 'u'
	totalService = 's'
	totalDenial  = 'd'
	totalEmail   = 'e'
)

// addDayTotals adds to acc (derived key to counts) the change of one daily
// bucket key kb from old to cur by delta (cur = old + delta). A key counts
// towards its denial total once its total denied attempts are positive, as
// Traffic's reading of the daily buckets counts it: then with all of cur,
// and after that with each delta.
func addDayTotals(acc map[string]*counts, kb []byte, delta, old, cur counts) {
	k, ok := viewKey(kb)
	if !ok {
		return
	}
	add := func(tk []byte, c counts) {
		if t := acc[string(tk)]; t != nil {
			t.add(c)
			return
		}
		acc[string(tk)] = &c
	}
	day := kb[:8]
	add(totalKey(day, totalUser, k.user, k.email), delta)
	add(totalKey(day, totalEmail, foldCase(nil, k.email), k.user), delta)
	add(totalKey(day, totalService, k.dst, k.proto, k.port, k.profile), delta)
	if cur.Denied > 0 {
		c := delta
		if old.Denied == 0 {
			c = cur
		}
		add(totalKey(day, totalDenial, k.user, k.dst, k.proto, k.port, k.email), c)
	}
}

// totalKey lays out a daytotal key.
func totalKey(day []byte, kind byte, fields ...[]byte) []byte {
	n := len(day) + 1
	for _, f := range fields {
		n += len(f) + 1
	}
	b := make([]byte, 0, n)
	b = append(append(b, day...), kind)
	for _, f := range fields {
		b = append(append(b, f...), 0)
	}
	return b
}

// putDayTotals adds acc to the daytotal bucket.
func putDayTotals(tx *bolt.Tx, acc map[string]*counts) error {
	bkt := tx.Bucket(bucketDayTotal)
	for k, v := range acc {
		if old := bkt.Get([]byte(k)); old != nil {
			v.add(decodeCounts(old))
		}
		if err := bkt.Put([]byte(k), v.encode()); err != nil {
			return err
		}
	}
	return nil
}

// totalView is a daytotal key's fields as slices of the key (valid while
// its transaction is open).
type totalView struct {
	kind                                   byte
	user, email, dst, proto, port, profile []byte
}

// viewTotal splits a key laid out by totalKey.
func viewTotal(b []byte) (totalView, bool) {
	if len(b) < 9 {
		return totalView{}, false
	}
	t := totalView{kind: b[8]}
	var f [5][]byte
	n, start := 0, 9
	for i := 9; i < len(b); i++ {
		if b[i] != 0 {
			continue
		}
		if n == len(f) {
			return totalView{}, false
		}
		f[n], start = b[start:i:i], i+1
		n++
	}
	if start != len(b) {
		return totalView{}, false
	}
	switch {
	case t.kind == totalUser && n == 2:
		t.user, t.email = f[0], f[1]
	case t.kind == totalService && n == 4:
		t.dst, t.proto, t.port, t.profile = f[0], f[1], f[2], f[3]
	case t.kind == totalEmail && n == 2:
		t.email, t.user = f[0], f[1]
	case t.kind == totalDenial && n == 5:
		t.user, t.dst, t.proto, t.port, t.email = f[0], f[1], f[2], f[3], f[4]
	default:
		return totalView{}, false
	}
	return t, true
}

// scanDayTotals calls fn for each daytotal row of the given kinds of the
// day starting at day (unix seconds, big endian: the daily bucket's
// prefix).
func scanDayTotals(tx *bolt.Tx, day []byte, kinds []byte, fn func(t *totalView, v []byte)) {
	c := tx.Bucket(bucketDayTotal).Cursor()
	var t totalView // one for the scan: fn must not keep it
	var ok bool
	prefix := make([]byte, 0, 9)
	for _, kind := range kinds {
		prefix = append(append(prefix[:0], day...), kind)
		for k, v := c.Seek(prefix); k != nil && bytes.HasPrefix(k, prefix); k, v = c.Next() {
			if t, ok = viewTotal(k); ok {
				fn(&t, v)
			}
		}
	}
}

// foldCase appends s in a form in which two strings are equal exactly when
// bytes.EqualFold says they are: each rune (an invalid byte as U+FFFD, as
// EqualFold reads it) as the least rune of its simple case-folding orbit.
func foldCase(b, s []byte) []byte {
	for len(s) > 0 {
		r, n := utf8.DecodeRune(s)
		s = s[n:]
		least := r
		for f := unicode.SimpleFold(r); f != r; f = unicode.SimpleFold(f) {
			least = min(least, f)
		}
		b = utf8.AppendRune(b, least)
	}
	return b
}

// usersOnDay appends to users, sorted and once each, the users with daily
// keys on the day starting at day whose ID is user or whose email equals
// it under case folding (AccessQuery's user filter).
func usersOnDay(tx *bolt.Tx, day []byte, user string, users [][]byte) [][]byte {
	c := tx.Bucket(bucketDayTotal).Cursor()
	byID := totalKey(day, totalUser, []byte(user))
	if k, _ := c.Seek(byID); k != nil && bytes.HasPrefix(k, byID) {
		users = append(users, []byte(user))
	}
	byEmail := totalKey(day, totalEmail, foldCase(nil, []byte(user)))
	for k, _ := c.Seek(byEmail); k != nil && bytes.HasPrefix(k, byEmail); k, _ = c.Next() {
		if t, ok := viewTotal(k); ok {
			users = append(users, t.user)
		}
	}
	slices.SortFunc(users, bytes.Compare)
	return slices.CompactFunc(users, bytes.Equal)
}

// dayPrefix is the bucket prefix of a period.
func dayPrefix(b []byte, unix int64) []byte {
	return binary.BigEndian.AppendUint64(b[:0], uint64(unix))
}
