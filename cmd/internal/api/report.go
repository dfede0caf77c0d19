package api

import (
	"net/http"
	"net/netip"
	"strconv"
	"strings"
	"time"

	"github.com/ferryvpn/ferry/authn"
	"github.com/ferryvpn/ferry/cmd/internal/wire"
	"github.com/ferryvpn/ferry/report"
)

func (h *handler) mountReports(mux *http.ServeMux) {
	route(mux, http.MethodGet, wire.PathReportAccess, h.admin(h.reportAccess))
}

// accessQuery parses the access report's filter, naming a bad parameter.
func accessQuery(r *http.Request) (report.AccessQuery, map[string]string, error) {
	v := r.URL.Query()
	q := report.AccessQuery{User: v.Get("user"), Profile: v.Get("profile"), Protocol: v.Get("protocol")}
	echo := map[string]string{}
	for _, k := range []string{"user", "profile", "dst", "port", "protocol", "since", "until"} {
		if s := v.Get(k); s != "" {
			echo[k] = s
		}
	}
	if s := v.Get("dst"); s != "" {
		p, err := netip.ParsePrefix(s)
		if !strings.Contains(s, "/") {
			var a netip.Addr
			if a, err = netip.ParseAddr(s); err == nil {
				p = netip.PrefixFrom(a, a.BitLen())
			}
		}
		if err != nil {
			return q, nil, errorf(http.StatusBadRequest, "dst %q: want an address or a CIDR such as 10.0.4.0/24", s)
		}
		q.Dst = p
	}
	if s := v.Get("port"); s != "" {
		n, err := strconv.ParseUint(s, 10, 16)
		if err != nil || n == 0 {
			return q, nil, errorf(http.StatusBadRequest, "port %q: want 1-65535", s)
		}
		q.Port = uint16(n)
	}
	for name, dst := range map[string]*time.Time{"since": &q.Since, "until": &q.Until} {
		if s := v.Get(name); s != "" {
			t, err := time.Parse(time.RFC3339, s)
			if err != nil {
				return q, nil, errorf(http.StatusBadRequest, "%s: want an RFC 3339 time such as 2026-11-28T12:00:00Z", name)
			}
			*dst = t
		}
	}
	return q, echo, nil
}

// reportAccess answers the access report from this node's rollup, brought
// up to the journal's head first.
func (h *handler) reportAccess(w http.ResponseWriter, r *http.Request, s authn.Session) error {
	q, echo, err := accessQuery(r)
	if err != nil {
		return err
	}
	if _, err := h.audit.Reports.Sync(r.Context()); err != nil {
		return err
	}
	rep, err := h.audit.Reports.Access(r.Context(), q)
	if err != nil {
		return err
	}
	writeJSON(w, http.StatusOK, accessReportWire(rep, echo, h.node.ID()))
	return nil
}

func accessReportWire(rep report.AccessReport, query map[string]string, node string) wire.AccessReport {
	out := wire.AccessReport{Query: query, Rows: make([]wire.AccessRow, 0, len(rep.Rows)),
		Source: wire.ReportSource{Node: node, FromSeq: rep.Source.FromSeq, ToSeq: rep.Source.ToSeq,
			Unsigned: rep.Source.Unsigned}}
	if c := rep.Source.Checkpoint; c != nil {
		out.Source.Checkpoint = &wire.ReportCheckpoint{Seq: c.Seq, Hash: c.Hash.String(), Time: c.Time, KeyID: c.KeyID}
	}
	for _, r := range rep.Rows {
		out.Rows = append(out.Rows, wire.AccessRow{User: r.User, Email: r.Email, Devices: r.Devices, Profile: r.Profile,
			Versions: r.Versions, Dst: r.Dst, Protocol: r.Protocol, Port: r.Port, First: r.First, Last: r.Last,
			Flows: r.Flows, PacketsOut: r.PacketsOut, PacketsIn: r.PacketsIn, BytesOut: r.BytesOut, BytesIn: r.BytesIn, Denied: r.Denied})
	}
	return out
}
