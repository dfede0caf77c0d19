package api

import (
	"bufio"
	"context"
	"errors"
	"net/http"
	"strconv"
	"strings"
	"time"

	"github.com/ferryvpn/ferry/audit"
	"github.com/ferryvpn/ferry/authn"
	"github.com/ferryvpn/ferry/cmd/internal/wire"
	"github.com/ferryvpn/ferry/report"
)

// Audit is what the audit endpoints need; without it they are not served.
type Audit struct {
	Signer *audit.Signer
	// Recorder, when set, records the cluster operations the API performs
	// itself (join tokens, member removal, backup, restore). A join token
	// is minted only once its record is stored.
	Recorder audit.Recorder
	// Sinks, when set, serves the network sinks stored in the cluster
	// (ferryctl audit sink ...).
	Sinks *AuditSinks
	// Reports, when set, adds the report endpoints, answered from this
	// node's rollup of its journal.
	Reports *report.Rollup
	// Retention, when set, serves the retention status (ferryctl audit
	// status).
	Retention *audit.Trimmer
}

// tailPoll is how often a followed stream looks for new records.
const tailPoll = 250 * time.Millisecond

func (h *handler) mountAudit(mux *http.ServeMux) {
	route(mux, http.MethodGet, wire.PathAuditRecords, h.admin(h.auditRecords))
	route(mux, http.MethodGet, wire.PathAuditKey, h.admin(h.auditKey))
	route(mux, http.MethodPost, wire.PathAuditVerify, h.admin(h.auditVerify))
	if h.audit.Sinks != nil {
		h.mountAuditSinks(mux)
	}
	if h.audit.Retention != nil {
		route(mux, http.MethodGet, wire.PathAuditStatus, h.admin(h.auditStatus))
	}
}

// auditStatus reports what retention keeps.
func (h *handler) auditStatus(w http.ResponseWriter, r *http.Request, s authn.Session) error {
	st, err := h.audit.Retention.Status(r.Context())
	if err != nil {
		return err
	}
	out := wire.AuditStatus{Node: h.node.ID(), Retention: st.Retention.String(), FlowRetention: st.FlowRetention.String(),
		First: st.First, Head: st.Head}
	if p := st.LastPrune; p != nil {
		out.LastPrune = &wire.AuditPrune{Time: p.Time, Through: p.Through, Removed: p.Removed, Runs: p.Runs, Summaries: p.Summaries}
	}
	writeJSON(w, http.StatusOK, out)
	return nil
}

// auditFilter parses the query's filter, naming a bad parameter.
func auditFilter(r *http.Request) (audit.Filter, error) {
	q := r.URL.Query()
	var f audit.Filter
	if v := q.Get("from_seq"); v != "" {
		n, err := strconv.ParseUint(v, 10, 64)
		if err != nil {
			return f, errors.New("from_seq: want a sequence number")
		}
		f.FromSeq = n
	}
	for name, dst := range map[string]*time.Time{"since": &f.Since, "until": &f.Until} {
		if v := q.Get(name); v != "" {
			t, err := time.Parse(time.RFC3339, v)
			if err != nil {
				return f, errors.New(name + ": want an RFC 3339 time such as 2026-11-28T12:00:00Z")
			}
			*dst = t
		}
	}
	for _, t := range q["type"] {
		f.Types = append(f.Types, strings.Split(t, ",")...)
	}
	f.User = q.Get("user")
	return f, nil
}

// auditRecords streams the journal: an export with its signed trailer, or
// with follow=1 every new record as it commits.
func (h *handler) auditRecords(w http.ResponseWriter, r *http.Request, s authn.Session) error {
	f, err := auditFilter(r)
	if err != nil {
		return errorf(http.StatusBadRequest, "%s", err.Error())
	}
	format, ok := audit.FormatByName(r.URL.Query().Get("format"))
	if !ok {
		return errorf(http.StatusBadRequest, "format: want json, cef, ocsf or syslog")
	}
	w.Header().Set("Content-Type", "application/x-ndjson")
	node := h.node
	if r.URL.Query().Get("follow") != "1" {
		if _, err := audit.Export(r.Context(), w, node, audit.ExportOptions{Filter: f, Format: format, Signer: h.audit.Signer}); err != nil {
			h.log.Warn("audit export ended early", "err", err)
		}
		return nil
	}
	bw := bufio.NewWriter(w)
	flusher, _ := w.(http.Flusher)
	var buf []byte
	err = audit.Tail(r.Context(), node, f, tailPoll, func(e *audit.Entry) error {
		var err error
		if buf, err = format.Append(buf[:0], e); err != nil {
			return err
		}
		if _, err := bw.Write(buf); err != nil {
			return err
		}
		if len(buf) == 0 || buf[len(buf)-1] != '\n' {
			bw.WriteByte('\n')
		}
		if err := bw.Flush(); err != nil {
			return err
		}
		if flusher != nil {
			flusher.Flush()
		}
		return nil
	})
	if err != nil && !errors.Is(err, context.Canceled) {
		h.log.Warn("audit tail ended", "err", err)
	}
	return nil
}

func (h *handler) auditKey(w http.ResponseWriter, r *http.Request, s authn.Session) error {
	pub := h.audit.Signer.Public()
	writeJSON(w, http.StatusOK, audit.PublicKeyRecord{KeyID: audit.KeyID(pub), PublicKey: pub})
	return nil
}

// auditVerify checks this node's journal whole: chain, signatures and head.
func (h *handler) auditVerify(w http.ResponseWriter, r *http.Request, s authn.Session) error {
	keys, err := audit.LoadKeys(r.Context(), h.node)
	if err != nil {
		return err
	}
	rep, err := audit.VerifyLive(r.Context(), h.node, audit.VerifyOptions{Keys: keys})
	out := wire.AuditVerifyResponse{Node: h.node.ID(), OK: err == nil, Records: rep.Records, First: rep.First, Last: rep.Last, Signed: rep.Signed, Anchored: rep.Anchored}
	if err != nil {
		var te *audit.TamperError
		if !errors.As(err, &te) && !errors.Is(err, audit.ErrTampered) {
			return err
		}
		out.Problem = err.Error()
	}
	writeJSON(w, http.StatusOK, out)
	return nil
}
