package console

import (
	"cmp"
	"net/http"
	"net/netip"
	"strconv"
	"strings"
	"time"

	"github.com/ferryvpn/ferry/report"
)

// trafficRange is a choice of the time-range picker.
type trafficRange struct {
	Value, Label string
	Span         time.Duration
	Hourly       bool
}

var trafficRanges = []trafficRange{
	{"24h", "Last 24 hours", 24 * time.Hour, true},
	{"7d", "Last 7 days", 7 * 24 * time.Hour, true},
	{"30d", "Last 30 days", 30 * 24 * time.Hour, false},
	{"90d", "Last 90 days", 90 * 24 * time.Hour, false},
}

// topN is how many top talkers, destinations and denials are listed.
const topN = 10

type trafficData struct {
	Range, User, Profile, Dst string
	Ranges                    []option
	Charts                    []chart
	Talkers, Dests, Denials   talkerTable
	Source                    string
	Empty, NoReports          bool
}

type option struct {
	Value, Label string
	Selected     bool
}

// talkerTable is one of the traffic page's top lists.
type talkerTable struct {
	ID, Label, Who, What string
	Rows                 []talker
}

type talker struct {
	Who, What                  string
	Bytes, Flows, Denied, Last string
}

// pickRange returns the chosen range, the 7-day one by default.
func pickRange(v string) trafficRange {
	for _, r := range trafficRanges {
		if r.Value == v {
			return r
		}
	}
	return trafficRanges[1]
}

// traffic charts bytes, flows and denials over time (per the filters:
// user, profile, destination), and lists the top talkers, destinations
// and denied attempts, from this node's rollup.
func (c *Console) traffic(w http.ResponseWriter, r *http.Request, k call) {
	v := r.URL.Query()
	rg := pickRange(v.Get("range"))
	d := trafficData{Range: rg.Value, User: strings.TrimSpace(v.Get("user")), Profile: strings.TrimSpace(v.Get("profile")), Dst: strings.TrimSpace(v.Get("dst"))}
	for _, o := range trafficRanges {
		d.Ranges = append(d.Ranges, option{Value: o.Value, Label: o.Label, Selected: o.Value == rg.Value})
	}
	if c.cfg.Reports == nil {
		d.NoReports = true
		c.render(w, http.StatusOK, "traffic", k, page{Title: "Traffic", Nav: "traffic", D: d})
		return
	}
	unit := 24 * time.Hour
	by := "day"
	if rg.Hourly {
		unit, by = time.Hour, "hour"
	}
	until := c.cfg.Now().UTC().Truncate(unit).Add(unit)
	since := until.Add(-rg.Span)
	q := report.AccessQuery{User: d.User, Profile: d.Profile, Since: since, Until: until, By: by}
	if d.Dst != "" {
		p, err := parseDst(d.Dst)
		if err != nil {
			c.render(w, http.StatusBadRequest, "traffic", k, page{Title: "Traffic", Nav: "traffic", Error: "Destination “" + d.Dst + "”: want an address or a network such as 10.0.4.0/24.", D: d})
			return
		}
		q.Dst = p
	}
	if _, err := c.cfg.Reports.Sync(r.Context()); err != nil {
		c.fail(w, "traffic report", err)
		return
	}
	sum, err := c.cfg.Reports.Traffic(r.Context(), q, topN)
	if err != nil {
		c.fail(w, "traffic report", err)
		return
	}
	d.Source = sourceText(sum.Source)
	d.Empty = sum.Empty
	periods := make([]time.Time, len(sum.Series))
	bytesOut, bytesIn := make([]uint64, len(periods)), make([]uint64, len(periods))
	flows, denied := make([]uint64, len(periods)), make([]uint64, len(periods))
	for i, p := range sum.Series {
		periods[i], bytesOut[i], bytesIn[i], flows[i], denied[i] = p.Period, p.BytesOut, p.BytesIn, p.Flows, p.Denied
	}
	d.Charts = []chart{
		newChart("chart-bytes", "Bytes", periods, rg.Hourly, []string{"sent", "received"}, [][]uint64{bytesOut, bytesIn}, humanBytes),
		newChart("chart-flows", "Flows and denied attempts", periods, rg.Hourly, []string{"flows", "denied"}, [][]uint64{flows, denied}, count),
	}
	d.Talkers = talkerTable{ID: "talkers", Label: "Top talkers", Who: "Person", Rows: talkers(sum.Talkers, func(t report.Talker) (string, string) { return cmp.Or(t.Email, t.User), "" })}
	d.Dests = talkerTable{ID: "dests", Label: "Top destinations", Who: "Destination", What: "Profile", Rows: talkers(sum.Dests, func(t report.Talker) (string, string) { return serviceName(t.Dst, t.Protocol, t.Port), t.Profile })}
	d.Denials = talkerTable{ID: "denials", Label: "Denied attempts", Who: "Person", What: "Destination", Rows: talkers(sum.Denials, func(t report.Talker) (string, string) {
		return cmp.Or(t.Email, t.User), serviceName(t.Dst, t.Protocol, t.Port)
	})}
	c.render(w, http.StatusOK, "traffic", k, page{Title: "Traffic", Nav: "traffic", D: d})
}

// serviceName names a destination service ("10.0.0.5 tcp/22").
func serviceName(dst, proto string, port uint16) string {
	if dst == "" {
		return "(folded under load)"
	}
	s := dst + " " + proto
	if port != 0 {
		s += "/" + strconv.Itoa(int(port))
	}
	return s
}

// talkers writes out a top list's figures; names gives a row's Who and
// What.
func talkers(ts []report.Talker, names func(report.Talker) (string, string)) []talker {
	out := make([]talker, 0, len(ts))
	for _, t := range ts {
		who, what := names(t)
		row := talker{Who: who, What: what, Bytes: humanBytes(t.BytesIn + t.BytesOut), Flows: count(t.Flows), Denied: count(t.Denied)}
		if !t.Last.IsZero() {
			row.Last = t.Last.UTC().Format("2 Jan 15:04 UTC")
		}
		out = append(out, row)
	}
	return out
}

// parseDst reads an address or a network.
func parseDst(s string) (netip.Prefix, error) {
	if !strings.Contains(s, "/") {
		a, err := netip.ParseAddr(s)
		if err != nil {
			return netip.Prefix{}, err
		}
		return netip.PrefixFrom(a, a.BitLen()), nil
	}
	p, err := netip.ParsePrefix(s)
	if err != nil {
		return p, err
	}
	return p.Masked(), nil
}
