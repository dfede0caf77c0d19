package api

import (
	"net/http"
	"net/netip"
	"strconv"
	"strings"
	"time"

	"github.com/ferryvpn/ferry/authn"
	"github.com/ferryvpn/ferry/cmd/internal/wire"
	"github.com/ferryvpn/ferry/profiles"
	"github.com/ferryvpn/ferry/report"
)

func (h *handler) mountReports(mux *http.ServeMux) {
	route(mux, http.MethodGet, wire.PathReportAccess, h.admin(h.reportAccess))
	route(mux, http.MethodPost, wire.PathReportReplay, h.admin(h.reportReplay))
	route(mux, http.MethodGet, wire.PathReportEntitlements, h.admin(h.reportEntitlements))
}

// accessQuery parses the access report's filter, naming a bad parameter.
func accessQuery(r *http.Request) (report.AccessQuery, map[string]string, error) {
	v := r.URL.Query()
	q := report.AccessQuery{User: v.Get("user"), Profile: v.Get("profile"), Protocol: v.Get("protocol"), By: v.Get("by")}
	echo := map[string]string{}
	for _, k := range []string{"user", "profile", "dst", "port", "protocol", "since", "until", "by"} {
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
		out.Rows = append(out.Rows, wire.AccessRow{Period: r.Period, User: r.User, Email: r.Email, Devices: r.Devices, Profile: r.Profile,
			Versions: r.Versions, Dst: r.Dst, Protocol: r.Protocol, Port: r.Port, Host: r.Host, First: r.First, Last: r.Last,
			Flows: r.Flows, PacketsOut: r.PacketsOut, PacketsIn: r.PacketsIn, BytesOut: r.BytesOut, BytesIn: r.BytesIn, Denied: r.Denied})
	}
	return out
}

// reportReplay replays a proposed profile file against recorded traffic:
// the apply's dry-run plan says which profiles change, the rollup what
// their recorded traffic would meet. Nothing changes.
func (h *handler) reportReplay(w http.ResponseWriter, r *http.Request, s authn.Session) error {
	if h.users == nil {
		return errorf(http.StatusNotFound, "profiles are not served here")
	}
	var in wire.ReplayRequest
	if err := decodeLimit(w, r, &in, maxApplyBytes); err != nil {
		return err
	}
	want, err := profiles.ParseFile([]byte(in.File), h.users.Profiles.Pool())
	if err != nil {
		return err
	}
	plan, err := h.users.Profiles.Apply(r.Context(), want, true, actor(s))
	if err != nil {
		return err
	}
	names := func(cs []profiles.Change) []string {
		out := make([]string, 0, len(cs))
		for _, c := range cs {
			out = append(out, c.Name)
		}
		return out
	}
	if _, err := h.audit.Reports.Sync(r.Context()); err != nil {
		return err
	}
	reps, err := h.audit.Reports.ReplayPlan(r.Context(), want, names(plan.Update), names(plan.Delete), in.Since, in.Until)
	if err != nil {
		return err
	}
	out := wire.ReplayResponse{Since: in.Since, Until: in.Until, Profiles: []wire.ProfileReplay{}}
	src, err := h.audit.Reports.Source()
	if err != nil {
		return err
	}
	out.Source = accessReportWire(report.AccessReport{Source: src}, nil, h.node.ID()).Source
	conv := func(rows []report.ReplayRow) []wire.ReplayRow {
		res := make([]wire.ReplayRow, 0, len(rows))
		for _, r := range rows {
			res = append(res, wire.ReplayRow{User: r.User, Email: r.Email, Dst: r.Dst, Protocol: r.Protocol, Port: r.Port,
				Flows: r.Flows, Denied: r.Denied, Last: r.Last})
		}
		return res
	}
	for _, rep := range reps {
		out.Profiles = append(out.Profiles, wire.ProfileReplay{Profile: rep.Profile, WouldDeny: conv(rep.WouldDeny),
			WouldAllow: conv(rep.WouldAllow), Folded: rep.Folded})
	}
	writeJSON(w, http.StatusOK, out)
	return nil
}

// reportEntitlements answers who can reach what now, with what was used.
func (h *handler) reportEntitlements(w http.ResponseWriter, r *http.Request, s authn.Session) error {
	if h.users == nil {
		return errorf(http.StatusNotFound, "profiles are not served here")
	}
	q, _, err := accessQuery(r)
	if err != nil {
		return err
	}
	var at time.Time
	if v := r.URL.Query().Get("at"); v != "" {
		if at, err = time.Parse(time.RFC3339, v); err != nil {
			return errorf(http.StatusBadRequest, "at %q: want an RFC 3339 time", v)
		}
	}
	if _, err := h.audit.Reports.Sync(r.Context()); err != nil {
		return err
	}
	unused := r.URL.Query().Get("unused") == "1"
	var rep report.EntitlementsReport
	users, err := h.users.Users.List(r.Context())
	if err != nil {
		return err
	}
	if at.IsZero() {
		all, err := h.users.Profiles.List(r.Context())
		if err != nil {
			return err
		}
		rep, err = h.audit.Reports.Entitlements(r.Context(), users, all, h.users.Profiles.Entitle, q.Since, q.Until, unused)
		if err != nil {
			return err
		}
	} else if rep, err = h.audit.Reports.EntitlementsAt(r.Context(), at, users, h.users.Profiles.Entitle, q.Since, q.Until, unused); err != nil {
		return err
	}
	conv := func(rows []report.EntitlementRow) []wire.EntitlementRow {
		out := make([]wire.EntitlementRow, 0, len(rows))
		for _, e := range rows {
			out = append(out, wire.EntitlementRow{User: e.User, Email: e.Email, Via: e.Via, Profile: e.Profile, Version: e.Version,
				Rule: e.Rule, RuleText: e.RuleText, Flows: e.Flows, Last: e.Last})
		}
		return out
	}
	writeJSON(w, http.StatusOK, wire.EntitlementsReport{Since: rep.Since, Until: rep.Until, Rows: conv(rep.Rows), UnusedRules: conv(rep.UnusedRules),
		Source: accessReportWire(report.AccessReport{Source: rep.Source}, nil, h.node.ID()).Source, At: rep.At, UnknownProfiles: rep.Unknown, UnknownUsers: rep.UnknownUsers})
	return nil
}
