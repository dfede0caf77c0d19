package console

import (
	"bytes"
	"cmp"
	"encoding/csv"
	"net/http"
	"strconv"
	"strings"
	"time"

	"github.com/ferryvpn/ferry/report"
)

// reportKinds are the access reports the console offers, as ferryctl
// report does.
var reportKinds = []option{
	{Value: "access", Label: "Access: who reached what"},
	{Value: "entitlements", Label: "Entitlements: who can reach what, and what of it was used"},
	{Value: "unused", Label: "Unused access: rules nobody used"},
}

type reportsData struct {
	Kind, Range, User, Profile string
	Kinds, Ranges              []option
	Head                       []string
	Rows                       [][]string
	Unused                     [][]string
	UnusedHead                 []string
	Source, Since, Until       string
	CSV, HTML                  string
	NoReports                  bool
	// Total counts the report's rows; the page shows rows First to Last
	// of them (1-based), with links to the pages before and after.
	Total, First, Last int
	Prev, Next         string
}

// reportPageRows is how many rows a report page shows; the downloads
// keep every row.
const reportPageRows = 100

// pageSpan returns the half-open range of rows page n (1-based) shows
// of total, and the page it is (a page past the end is the last).
func pageSpan(total, n int) (lo, hi, page int) {
	pages := max(1, (total+reportPageRows-1)/reportPageRows)
	page = min(max(n, 1), pages)
	lo = (page - 1) * reportPageRows
	return lo, min(lo+reportPageRows, total), page
}

// reports shows the access, entitlements and unused-access reports with
// filters, and downloads them as CSV (format=csv) or HTML (format=html).
func (c *Console) reports(w http.ResponseWriter, r *http.Request, k call) {
	v := r.URL.Query()
	format := v.Get("format")
	pageNo, _ := strconv.Atoi(v.Get("page"))
	d := reportsData{Kind: v.Get("kind"), User: strings.TrimSpace(v.Get("user")), Profile: strings.TrimSpace(v.Get("profile"))}
	if d.Kind != "entitlements" && d.Kind != "unused" {
		d.Kind = "access"
	}
	rg := pickRange(cmp.Or(v.Get("range"), "30d"))
	d.Range = rg.Value
	for _, o := range reportKinds {
		d.Kinds = append(d.Kinds, option{Value: o.Value, Label: o.Label, Selected: o.Value == d.Kind})
	}
	for _, o := range trafficRanges {
		d.Ranges = append(d.Ranges, option{Value: o.Value, Label: o.Label, Selected: o.Value == rg.Value})
	}
	if c.cfg.Reports == nil {
		d.NoReports = true
		c.render(w, http.StatusOK, "reports", k, page{Title: "Access reports", Nav: "reports", D: d})
		return
	}
	ctx := r.Context()
	until := c.cfg.Now().UTC().Truncate(time.Hour).Add(time.Hour)
	since := until.Add(-rg.Span)
	d.Since, d.Until = since.Format("2 Jan 2006 15:04 UTC"), until.Format("2 Jan 2006 15:04 UTC")
	if _, err := c.cfg.Reports.Sync(ctx); err != nil {
		c.fail(w, "report", err)
		return
	}
	ts := func(t time.Time) string {
		if t.IsZero() {
			return ""
		}
		return t.UTC().Format(time.RFC3339)
	}
	switch d.Kind {
	case "access":
		rep, err := c.cfg.Reports.Access(ctx, report.AccessQuery{User: d.User, Profile: d.Profile, Since: since, Until: until})
		if err != nil {
			c.fail(w, "report", err)
			return
		}
		d.Source = sourceText(rep.Source)
		d.Head = []string{"User", "Email", "Devices", "Profile", "Destination", "Protocol", "Port", "Flows", "Bytes out", "Bytes in", "Denied", "First", "Last"}
		// The page formats only the rows it shows; a download takes all.
		d.Total = len(rep.Rows)
		lo, hi := 0, d.Total
		if format == "" {
			lo, hi, pageNo = pageSpan(d.Total, pageNo)
		}
		for _, row := range rep.Rows[lo:hi] {
			port := ""
			if row.Port != 0 {
				port = strconv.Itoa(int(row.Port))
			}
			d.Rows = append(d.Rows, []string{row.User, row.Email, strings.Join(row.Devices, " "), row.Profile, row.Dst, row.Protocol, port,
				count(row.Flows), count(row.BytesOut), count(row.BytesIn), count(row.Denied), ts(row.First), ts(row.Last)})
		}
	default:
		users, err := c.cfg.Users.List(ctx)
		if err != nil {
			c.fail(w, "user list", err)
			return
		}
		all, err := c.cfg.Profiles.List(ctx)
		if err != nil {
			c.fail(w, "profile list", err)
			return
		}
		rep, err := c.cfg.Reports.Entitlements(ctx, users, all, c.cfg.Profiles.Entitle, since, until, d.Kind == "unused")
		if err != nil {
			c.fail(w, "report", err)
			return
		}
		d.Source = sourceText(rep.Source)
		d.Head = []string{"User", "Email", "Held through", "Profile", "Version", "Rule", "Flows", "Last used"}
		keep := func(e report.EntitlementRow) bool {
			return (d.User == "" || e.User == d.User || strings.EqualFold(e.Email, d.User)) && (d.Profile == "" || e.Profile == d.Profile)
		}
		for _, e := range rep.Rows {
			if keep(e) {
				d.Rows = append(d.Rows, []string{e.User, e.Email, e.Via, e.Profile, count(e.Version), e.RuleText, count(e.Flows), ts(e.Last)})
			}
		}
		d.Total = len(d.Rows)
		if format == "" {
			var lo, hi int
			lo, hi, pageNo = pageSpan(d.Total, pageNo)
			d.Rows = d.Rows[lo:hi]
		}
		if d.Kind == "unused" {
			d.UnusedHead = []string{"Profile", "Version", "Rule"}
			for _, e := range rep.UnusedRules {
				if d.Profile == "" || e.Profile == d.Profile {
					d.Unused = append(d.Unused, []string{e.Profile, count(e.Version), e.RuleText})
				}
			}
		}
	}
	q := r.URL.Query()
	q.Set("kind", d.Kind)
	q.Set("range", d.Range)
	q.Del("page")
	if format == "" && d.Total > 0 {
		d.First = (pageNo-1)*reportPageRows + 1
		d.Last = d.First + len(d.Rows) - 1
		if pageNo > 1 {
			q.Set("page", strconv.Itoa(pageNo-1))
			d.Prev = pathReports + "?" + q.Encode()
		}
		if d.Last < d.Total {
			q.Set("page", strconv.Itoa(pageNo+1))
			d.Next = pathReports + "?" + q.Encode()
		}
		q.Del("page")
	}
	q.Set("format", "csv")
	d.CSV = pathReports + "?" + q.Encode()
	q.Set("format", "html")
	d.HTML = pathReports + "?" + q.Encode()
	name := "ferry-" + d.Kind + "-report-" + until.Format("20060102T1504Z")
	switch format {
	case "csv":
		// Every line has the head's width, so spreadsheets and csv
		// readers take the file whole; the journal range it comes from
		// is the last line.
		var buf bytes.Buffer
		cw := csv.NewWriter(&buf)
		width := len(d.Head)
		pad := func(row []string) []string {
			out := csvSafe(row)
			for len(out) < width {
				out = append(out, "")
			}
			return out
		}
		cw.Write(d.Head)
		for _, row := range d.Rows {
			cw.Write(pad(row))
		}
		if d.Kind == "unused" {
			cw.Write(pad([]string{"Unused rules: profile", "Version", "Rule"}))
			for _, row := range d.Unused {
				cw.Write(pad(row))
			}
		}
		cw.Write(pad([]string{"Source", d.Source + "; " + d.Since + " to " + d.Until}))
		cw.Flush()
		w.Header().Set("Content-Type", "text/csv; charset=utf-8")
		w.Header().Set("Content-Disposition", `attachment; filename="`+name+`.csv"`)
		w.Write(buf.Bytes())
		return
	case "html":
		w.Header().Set("Content-Disposition", `attachment; filename="`+name+`.html"`)
		c.render(w, http.StatusOK, "reportfile", k, page{Title: kindLabel(d.Kind), D: d})
		return
	}
	c.render(w, http.StatusOK, "reports", k, page{Title: "Access reports", Nav: "reports", D: d})
}

func kindLabel(kind string) string {
	for _, o := range reportKinds {
		if o.Value == kind {
			return o.Label
		}
	}
	return kind
}

// csvSafe keeps a spreadsheet from reading a cell as a formula (an
// email address or device name an attacker chose, say).
func csvSafe(row []string) []string {
	out := make([]string, len(row))
	for i, s := range row {
		if s != "" && strings.ContainsRune("=+-@\t\r", rune(s[0])) {
			s = "'" + s
		}
		out[i] = s
	}
	return out
}
