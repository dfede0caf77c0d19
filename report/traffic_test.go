package report

import (
	"context"
	"path/filepath"
	"testing"
	"time"
)

// TestTrafficSummary checks the chart summary against the access report
// it must agree with: per-period totals, top users, top services and
// denied attempts, with filters, by hour and by day.
func TestTrafficSummary(t *testing.T) {
	j := &memJournal{}
	sampleTraffic(j, t)
	r := openRollup(t, j, filepath.Join(t.TempDir(), "r.db"))
	ctx := context.Background()
	if _, err := r.Sync(ctx); err != nil {
		t.Fatal(err)
	}
	day := time.Date(t0.Year(), t0.Month(), t0.Day(), 0, 0, 0, 0, time.UTC)
	for _, q := range []AccessQuery{
		{Since: day, Until: day.Add(3 * 24 * time.Hour), By: "day"},
		{Since: t0.Add(5 * time.Hour), Until: t0.Add(29 * time.Hour), By: "hour"},
		{User: "bob@example.com", Since: day, Until: day.Add(3 * 24 * time.Hour), By: "day"},
		{Profile: "nope", Since: day, Until: day.Add(24 * time.Hour), By: "day"},
	} {
		sum, err := r.Traffic(ctx, q, 10)
		if err != nil {
			t.Fatal(err)
		}
		rep, err := r.Access(ctx, q)
		if err != nil {
			t.Fatal(err)
		}
		want := map[time.Time]TrafficPoint{}
		users, dests, dens := map[string]uint64{}, map[string]uint64{}, map[string]uint64{}
		for _, row := range rep.Rows {
			p := want[row.Period]
			p.BytesOut += row.BytesOut
			p.BytesIn += row.BytesIn
			p.Flows += row.Flows
			p.Denied += row.Denied
			want[row.Period] = p
			users[row.User] += row.BytesIn + row.BytesOut
			dests[row.Dst] += row.BytesIn + row.BytesOut
			if row.Denied > 0 {
				dens[row.User+" "+row.Dst] += row.Denied
			}
		}
		if sum.Empty != (len(rep.Rows) == 0) {
			t.Errorf("%+v: empty %v with %d rows", q, sum.Empty, len(rep.Rows))
		}
		var seen int
		for _, p := range sum.Series {
			w := want[p.Period]
			w.Period = p.Period
			if p != w {
				t.Errorf("%+v: point %s = %+v, want %+v", q, p.Period, p, w)
			}
			if w.Flows+w.Denied > 0 {
				seen++
			}
		}
		if seen != len(want) {
			t.Errorf("%+v: %d periods with traffic in the series, %d in the report", q, seen, len(want))
		}
		check := func(name string, got []Talker, want map[string]uint64, key func(Talker) (string, uint64)) {
			if len(got) != len(want) {
				t.Errorf("%+v: %s: %d rows, want %d", q, name, len(got), len(want))
			}
			for i, g := range got {
				k, v := key(g)
				if want[k] != v {
					t.Errorf("%+v: %s[%d] %s = %d, want %d", q, name, i, k, v, want[k])
				}
				if i > 0 {
					if _, prev := key(got[i-1]); prev < v {
						t.Errorf("%+v: %s not in descending order at %d", q, name, i)
					}
				}
			}
		}
		check("talkers", sum.Talkers, users, func(x Talker) (string, uint64) { return x.User, x.BytesIn + x.BytesOut })
		check("dests", sum.Dests, dests, func(x Talker) (string, uint64) { return x.Dst, x.BytesIn + x.BytesOut })
		check("denials", sum.Denials, dens, func(x Talker) (string, uint64) { return x.User + " " + x.Dst, x.Denied })
	}
	if _, err := r.Traffic(ctx, AccessQuery{}, 10); err == nil {
		t.Error("a summary without a range or a period: no error")
	}
}
