package report

import (
	"bytes"
	"cmp"
	"context"
	"fmt"
	"math/rand/v2"
	"net/netip"
	"path/filepath"
	"reflect"
	"testing"
	"time"

	bolt "go.etcd.io/bbolt"

	"github.com/ferryvpn/ferry/audit"
)

// randomTraffic is a journal of n random flow records over ten days from
// t0: users with two emails, user-less records, several devices, profiles
// and services, denials with and without a count, logins between.
func randomTraffic(t testing.TB, seed uint64, n int) *memJournal {
	rnd := rand.New(rand.NewPCG(seed, 1))
	j := &memJournal{}
	for i := range n {
		at := t0.Add(time.Duration(rnd.IntN(10*24*60)) * time.Minute)
		u := fmt.Sprintf("u%d", rnd.IntN(12))
		e := flowEv(at, u, fmt.Sprintf("dev%d", rnd.IntN(3)), fmt.Sprintf("p%d", rnd.IntN(3)),
			fmt.Sprintf("10.0.%d.%d", rnd.IntN(2), rnd.IntN(3)), 22+rnd.IntN(3), rnd.IntN(4) == 0, uint64(rnd.IntN(3)), uint64(rnd.IntN(1000)), uint64(rnd.IntN(5000)))
		switch rnd.IntN(10) {
		case 0:
			e.Actor.Email = u + "@other.example"
		case 2:
			e.Actor.Email = u + "@\u212a.example" // KELVIN SIGN: equal to k under case folding
		case 1:
			e.Actor, e.Target.User, e.Target.Device, e.Source.Addr = audit.Actor{}, "", "", "192.0.2.7"
		}
		j.add(t, e)
		if i%7 == 0 {
			j.add(t, audit.Event{ID: fmt.Sprint("login-", i), Time: at, Type: audit.TypeLogin, Outcome: audit.Success})
		}
	}
	return j
}

// TestDayTotals: the daytotal bucket of a rollup folded in several steps
// (transactions that split a day's keys) holds exactly the totals
// recomputed from its daily buckets: per user and email, per service and
// profile, and per user and service over the keys with denied attempts.
func TestDayTotals(t *testing.T) {
	ctx := context.Background()
	for seed := range uint64(4) {
		j := randomTraffic(t, seed, 9000)
		lim := &headLimit{memJournal: j}
		r := openRollup(t, lim, filepath.Join(t.TempDir(), "r.db"))
		for _, head := range []uint64{1, 777, 5000, 5001, uint64(j.Len())} {
			lim.head = head
			if _, err := r.Sync(ctx); err != nil {
				t.Fatal(err)
			}
		}
		want := map[string]*counts{}
		got := map[string]string{}
		err := r.db.View(func(tx *bolt.Tx) error {
			tx.Bucket(bucketDay).ForEach(func(k, v []byte) error {
				c := decodeCounts(v)
				addDayTotals(want, k, c, counts{}, c)
				return nil
			})
			return tx.Bucket(bucketDayTotal).ForEach(func(k, v []byte) error {
				got[string(k)] = string(v)
				return nil
			})
		})
		if err != nil {
			t.Fatal(err)
		}
		if len(want) == 0 {
			t.Fatal("no daily keys")
		}
		for k, c := range want {
			if got[k] != string(c.encode()) {
				tv, _ := viewTotal([]byte(k))
				t.Errorf("seed %d: %c %s %s %s: got %+v, want %+v", seed, tv.kind, tv.user, tv.dst, tv.email, decodeCounts([]byte(got[k])), *c)
			}
		}
		if len(got) != len(want) {
			t.Errorf("seed %d: %d daytotal rows, want %d", seed, len(got), len(want))
		}
		full := openRollup(t, j, filepath.Join(t.TempDir(), "full.db"))
		if err := full.Rebuild(ctx); err != nil {
			t.Fatal(err)
		}
		if a, b := dump(t, r), dump(t, full); !reflect.DeepEqual(a, b) {
			t.Errorf("seed %d: rollup folded in steps (%d keys) differs from a rebuild (%d keys)", seed, len(a), len(b))
		}
	}
}

// TestTrafficTotalsMatchKeys: Traffic by day without filters, which reads
// the daily totals, returns exactly what reading every bucket key returns,
// for ranges with whole days and partial days at the edges, on random
// journals.
func TestTrafficTotalsMatchKeys(t *testing.T) {
	ctx := context.Background()
	day := time.Date(t0.Year(), t0.Month(), t0.Day(), 0, 0, 0, 0, time.UTC)
	for seed := range uint64(3) {
		j := randomTraffic(t, 100+seed, 6000)
		r := openRollup(t, j, filepath.Join(t.TempDir(), "r.db"))
		if _, err := r.Sync(ctx); err != nil {
			t.Fatal(err)
		}
		for _, q := range []AccessQuery{
			{Since: day.Add(-24 * time.Hour), Until: day.Add(12 * 24 * time.Hour), By: "day"},
			{Since: day.Add(2 * 24 * time.Hour), Until: day.Add(5 * 24 * time.Hour), By: "day"},
			{Since: day.Add(26 * time.Hour), Until: day.Add(5*24*time.Hour + 7*time.Hour), By: "day"},
			{Since: day.Add(3 * 24 * time.Hour), Until: day.Add(4 * 24 * time.Hour), By: "hour"},
			{User: "u3", Since: day.Add(-24 * time.Hour), Until: day.Add(12 * 24 * time.Hour), By: "day"},
			{User: "U5@OTHER.example", Since: day.Add(26 * time.Hour), Until: day.Add(9*24*time.Hour + 7*time.Hour), By: "day"},
			{User: "u7@K.EXAMPLE", Since: day, Until: day.Add(12 * 24 * time.Hour), By: "day"},
			{User: "u2@example.com", Profile: "p1", Since: day, Until: day.Add(12 * 24 * time.Hour), By: "day"},
			{User: "nobody", Since: day, Until: day.Add(12 * 24 * time.Hour), By: "day"},
		} {
			for _, n := range []int{3, 1000} {
				fast, err := r.Traffic(ctx, q, n)
				if err != nil {
					t.Fatal(err)
				}
				slow, err := r.traffic(ctx, q, n, false)
				if err != nil {
					t.Fatal(err)
				}
				if !reflect.DeepEqual(fast, slow) {
					t.Errorf("seed %d, %s..%s by %s, top %d: the daily totals give\n%+v\nevery key gives\n%+v", seed, q.Since, q.Until, q.By, n, fast, slow)
				}
				if q.User == "nobody" {
					if !fast.Empty {
						t.Errorf("seed %d: a user without traffic has some", seed)
					}
					continue
				}
				if fast.Empty || (q.User == "" && len(fast.Denials) == 0) {
					t.Errorf("seed %d, %+v: no denials or empty: the journal has both", seed, q)
				}
			}
		}
	}
}

// TestAccessMatchesMap: Access, which reads the buckets of a period side
// by side one user at a time and builds only the page's rows, returns
// exactly what the map of every row did (accessByMap), for filters, time
// splits, partial days and pages, on random journals.
func TestAccessMatchesMap(t *testing.T) {
	ctx := context.Background()
	day := time.Date(t0.Year(), t0.Month(), t0.Day(), 0, 0, 0, 0, time.UTC)
	for seed := range uint64(3) {
		j := randomTraffic(t, 200+seed, 6000)
		r := openRollup(t, j, filepath.Join(t.TempDir(), "r.db"))
		if _, err := r.Sync(ctx); err != nil {
			t.Fatal(err)
		}
		for _, q := range []AccessQuery{
			{},
			{Since: day.Add(2 * 24 * time.Hour), Until: day.Add(5 * 24 * time.Hour)},
			{Since: day.Add(26 * time.Hour), Until: day.Add(5*24*time.Hour + 7*time.Hour)},
			{Since: day.Add(26 * time.Hour), Until: day.Add(5*24*time.Hour + 7*time.Hour), By: "day"},
			{Since: day.Add(3 * 24 * time.Hour), Until: day.Add(4 * 24 * time.Hour), By: "hour"},
			{User: "u3"},
			{User: "U5@OTHER.example", By: "day"},
			{Profile: "p1", Port: 23},
			{Dst: netip.MustParsePrefix("10.0.1.0/24"), Protocol: "tcp"},
			{Offset: 7, Limit: 10},
			{Offset: 0, Limit: 1, By: "day"},
			{Offset: 1 << 20, Limit: 100},
			{Offset: 30, Since: day.Add(26 * time.Hour), Until: day.Add(9 * 24 * time.Hour)},
		} {
			got, err := r.Access(ctx, q)
			if err != nil {
				t.Fatal(err)
			}
			want, err := r.accessByMap(ctx, q)
			if err != nil {
				t.Fatal(err)
			}
			if !reflect.DeepEqual(got, want) {
				t.Errorf("seed %d, %+v: %d of %d rows, want %d of %d", seed, q, len(got.Rows), got.Total, len(want.Rows), want.Total)
				for i := range min(len(got.Rows), len(want.Rows)) {
					if !reflect.DeepEqual(got.Rows[i], want.Rows[i]) {
						t.Errorf("row %d:\n got %+v\nwant %+v", i, got.Rows[i], want.Rows[i])
						break
					}
				}
			}
			if q.User == "" && want.Total < 2 {
				t.Errorf("seed %d, %+v: %d rows: the journal is too small to show anything", seed, q, want.Total)
			}
		}
	}
}

// TestFoldCase: two strings fold alike exactly when bytes.EqualFold says
// they are equal (the user filter's email match), with letters whose case
// folding leaves ASCII and invalid UTF-8.
func TestFoldCase(t *testing.T) {
	words := []string{"", "k", "K", "\u212a", "s", "S", "\u017f", "\u00df", "\u1e9e", "ss", "\u03c3", "\u03a3", "\u03c2",
		"\xff", "\xfe", "\ufffd", "alice@example.com", "ALICE@Example.COM", "alice@example.co", "a\u212az", "akz", "AKZ"}
	for _, a := range words {
		for _, b := range words {
			fa, fb := foldCase(nil, []byte(a)), foldCase(nil, []byte(b))
			if got, want := string(fa) == string(fb), bytes.EqualFold([]byte(a), []byte(b)); got != want {
				t.Errorf("%q, %q: folded alike %v, EqualFold %v", a, b, got, want)
			}
		}
	}
}

// TestTopTalkers: the top n kept while reading are the first n of all the
// talkers sorted, ties (equal bytes) broken by email, user and service.
func TestTopTalkers(t *testing.T) {
	rnd := rand.New(rand.NewPCG(7, 7))
	m := map[string]*Talker{}
	for i := range 500 {
		tk := &Talker{User: fmt.Sprintf("u%d", rnd.IntN(400)), Dst: fmt.Sprintf("10.0.0.%d", rnd.IntN(4)), Port: uint16(rnd.IntN(3)), BytesIn: uint64(rnd.IntN(20))}
		if i%3 == 0 {
			tk.Email = fmt.Sprintf("e%d@example.com", rnd.IntN(50))
		}
		m[tk.User+" "+tk.Dst+" "+fmt.Sprint(tk.Port)] = tk
	}
	bytesOf := func(t *Talker) uint64 { return t.BytesIn }
	all := topTalkers(m, len(m), bytesOf)
	if len(all) != len(m) {
		t.Fatalf("%d of %d talkers", len(all), len(m))
	}
	for i := 1; i < len(all); i++ {
		a, b := all[i-1], all[i]
		if a.BytesIn < b.BytesIn || a.BytesIn == b.BytesIn && cmp.Or(a.Email, a.User) > cmp.Or(b.Email, b.User) {
			t.Fatalf("out of order at %d: %+v before %+v", i, a, b)
		}
	}
	for _, n := range []int{0, 1, 3, 10, 100, len(m) + 5} {
		if got := topTalkers(m, n, bytesOf); !reflect.DeepEqual(got, all[:min(n, len(all))]) {
			t.Errorf("top %d: not the first %d of all", n, n)
		}
	}
}
