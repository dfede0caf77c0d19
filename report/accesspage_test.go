package report

import (
	"cmp"
	"context"
	"errors"
	"path/filepath"
	"slices"
	"testing"
	"time"
)

// TestAccessPage: a query with Offset and Limit returns that slice of the
// whole report, in the same order (user, profile, destination, protocol,
// then port as a number), with Total counting every row.
func TestAccessPage(t *testing.T) {
	j := &memJournal{}
	for i, port := range []int{8080, 22, 443, 1000, 5432} {
		for _, user := range []string{"ab", "a", "b"} {
			at := t0.Add(time.Duration(i) * time.Hour)
			j.add(t, flowEv(at, user, "laptop", "eng", "10.0.4.17", port, false, 1, 10, 20))
			j.add(t, flowEv(at.Add(30*time.Hour), user, "laptop", "eng", "10.0.4.9", port, i%2 == 0, 1, 10, 20))
		}
	}
	r := openRollup(t, j, filepath.Join(t.TempDir(), "r.db"))
	ctx := context.Background()
	if _, err := r.Sync(ctx); err != nil {
		t.Fatal(err)
	}
	for _, by := range []string{"", "day"} {
		all, err := r.Access(ctx, AccessQuery{By: by})
		if err != nil {
			t.Fatal(err)
		}
		if all.Total != len(all.Rows) || len(all.Rows) < 30 {
			t.Fatalf("by %q: total %d, %d rows", by, all.Total, len(all.Rows))
		}
		if !slices.IsSortedFunc(all.Rows, func(a, b AccessRow) int {
			return cmp.Or(a.Period.Compare(b.Period), cmp.Compare(a.User, b.User), cmp.Compare(a.Profile, b.Profile), cmp.Compare(a.Dst, b.Dst),
				cmp.Compare(a.Protocol, b.Protocol), cmp.Compare(a.Port, b.Port), cmp.Compare(a.Host, b.Host))
		}) {
			t.Errorf("by %q: rows out of order", by)
		}
		for _, pg := range [][2]int{{0, 7}, {7, 7}, {28, 7}, {len(all.Rows) - 1, 7}, {len(all.Rows), 7}, {len(all.Rows) + 5, 7}, {3, 0}} {
			rep, err := r.Access(ctx, AccessQuery{By: by, Offset: pg[0], Limit: pg[1]})
			if err != nil {
				t.Fatal(err)
			}
			lo := min(pg[0], len(all.Rows))
			hi := len(all.Rows)
			if pg[1] > 0 {
				hi = min(lo+pg[1], hi)
			}
			want := all.Rows[lo:hi]
			if rep.Total != len(all.Rows) || len(rep.Rows) != len(want) {
				t.Errorf("by %q, offset %d limit %d: total %d, %d rows; want %d, %d", by, pg[0], pg[1], rep.Total, len(rep.Rows), len(all.Rows), len(want))
				continue
			}
			for i := range want {
				if !rowEqual(rep.Rows[i], want[i]) {
					t.Errorf("by %q, offset %d: row %d = %+v, want %+v", by, pg[0], i, rep.Rows[i], want[i])
				}
			}
		}
	}
	for _, q := range []AccessQuery{{Offset: -1}, {Limit: -1}} {
		if _, err := r.Access(ctx, q); !errors.Is(err, ErrInvalidQuery) {
			t.Errorf("%+v: %v, want ErrInvalidQuery", q, err)
		}
	}
}

func rowEqual(a, b AccessRow) bool {
	return a.Period.Equal(b.Period) && a.User == b.User && a.Profile == b.Profile && a.Dst == b.Dst && a.Protocol == b.Protocol &&
		a.Port == b.Port && a.Host == b.Host && slices.Equal(a.Devices, b.Devices) && slices.Equal(a.Versions, b.Versions) &&
		a.Flows == b.Flows && a.BytesOut == b.BytesOut && a.BytesIn == b.BytesIn && a.Denied == b.Denied && a.First.Equal(b.First) && a.Last.Equal(b.Last)
}
