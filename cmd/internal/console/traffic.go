package console

import (
	"cmp"
	"net/http"
	"net/netip"
	"slices"
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
	Who, What                     string
	Bytes, Flows, Denied, Last    string
	sortBytes, sortFlows, sortDen uint64
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
	rep, err := c.cfg.Reports.Access(r.Context(), q)
	if err != nil {
		c.fail(w, "traffic report", err)
		return
	}
	d.Source = sourceText(rep.Source)
	d.Empty = len(rep.Rows) == 0
	var periods []time.Time
	index := map[time.Time]int{}
	for t := since; t.Before(until); t = t.Add(unit) {
		index[t] = len(periods)
		periods = append(periods, t)
	}
	bytesOut, bytesIn := make([]uint64, len(periods)), make([]uint64, len(periods))
	flows, denied := make([]uint64, len(periods)), make([]uint64, len(periods))
	users, dests, dens := map[string]*talker{}, map[string]*talker{}, map[string]*talker{}
	add := func(m map[string]*talker, key, who, what string, row report.AccessRow) {
		t := m[key]
		if t == nil {
			t = &talker{Who: who, What: what}
			m[key] = t
		}
		t.sortBytes += row.BytesIn + row.BytesOut
		t.sortFlows += row.Flows
		t.sortDen += row.Denied
		if l := row.Last.UTC().Format("2 Jan 15:04 UTC"); row.Last.After(time.Time{}) && l > t.Last {
			t.Last = l
		}
	}
	for _, row := range rep.Rows {
		if i, ok := index[row.Period.UTC()]; ok {
			bytesOut[i] += row.BytesOut
			bytesIn[i] += row.BytesIn
			flows[i] += row.Flows
			denied[i] += row.Denied
		}
		who := cmp.Or(row.Email, row.User)
		service := serviceOf(row)
		add(users, row.User, who, "", row)
		add(dests, service, service, row.Profile, row)
		if row.Denied > 0 {
			add(dens, row.User+"|"+service, who, service, row)
		}
	}
	d.Charts = []chart{
		newChart("chart-bytes", "Bytes", periods, rg.Hourly, []string{"sent", "received"}, [][]uint64{bytesOut, bytesIn}, humanBytes),
		newChart("chart-flows", "Flows and denied attempts", periods, rg.Hourly, []string{"flows", "denied"}, [][]uint64{flows, denied}, count),
	}
	d.Talkers = talkerTable{ID: "talkers", Label: "Top talkers", Who: "Person", Rows: top(users, func(t *talker) uint64 { return t.sortBytes })}
	d.Dests = talkerTable{ID: "dests", Label: "Top destinations", Who: "Destination", What: "Profile", Rows: top(dests, func(t *talker) uint64 { return t.sortBytes })}
	d.Denials = talkerTable{ID: "denials", Label: "Denied attempts", Who: "Person", What: "Destination", Rows: top(dens, func(t *talker) uint64 { return t.sortDen })}
	c.render(w, http.StatusOK, "traffic", k, page{Title: "Traffic", Nav: "traffic", D: d})
}

// serviceOf names a row's destination service ("10.0.0.5 tcp/22").
func serviceOf(row report.AccessRow) string {
	if row.Dst == "" {
		return "(folded under load)"
	}
	s := row.Dst + " " + row.Protocol
	if row.Port != 0 {
		s += "/" + strconv.Itoa(int(row.Port))
	}
	return s
}

// top returns the topN of m by key, with their figures written out.
func top(m map[string]*talker, key func(*talker) uint64) []talker {
	out := make([]talker, 0, len(m))
	for _, t := range m {
		out = append(out, *t)
	}
	slices.SortFunc(out, func(a, b talker) int {
		return cmp.Or(cmp.Compare(key(&b), key(&a)), cmp.Compare(a.Who, b.Who), cmp.Compare(a.What, b.What))
	})
	out = out[:min(len(out), topN)]
	for i := range out {
		out[i].Bytes, out[i].Flows, out[i].Denied = humanBytes(out[i].sortBytes), count(out[i].sortFlows), count(out[i].sortDen)
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
