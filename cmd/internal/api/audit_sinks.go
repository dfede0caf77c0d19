package api

import (
	"context"
	"fmt"
	"net/http"
	"time"

	"github.com/ferryvpn/ferry/audit"
	"github.com/ferryvpn/ferry/authn"
	"github.com/ferryvpn/ferry/cmd/internal/wire"
)

// AuditSinks is what the sink endpoints need.
type AuditSinks struct {
	Store *audit.SinkStore
	// Options build a sink for a test.
	Options audit.SinkOptions
	// States reports this node's exporter's view of its sinks; optional.
	States func() []audit.SinkState
}

func (h *handler) mountAuditSinks(mux *http.ServeMux) {
	mux.HandleFunc("GET "+wire.PathAuditSinks, h.admin(h.listSinks))
	mux.HandleFunc("POST "+wire.PathAuditSinks, h.admin(h.addSink))
	mux.HandleFunc("GET "+wire.PathAuditSink, h.admin(h.showSink))
	mux.HandleFunc("DELETE "+wire.PathAuditSink, h.admin(h.removeSink))
	route(mux, http.MethodPost, wire.PathAuditSinkTest, h.admin(h.testSink))
}

func sinkToWire(s audit.SinkSpec) wire.AuditSink {
	p := s.Public()
	w := wire.AuditSink{Name: p.Name, Type: p.Type, Format: p.Format, Addr: p.Addr, URL: p.URL, Token: p.Token, Ack: p.Ack, Index: p.Index,
		CA: p.CA, ServerName: p.ServerName, ClientCert: p.ClientCert, ClientKey: p.ClientKey, ResendRecords: p.ResendRecords}
	if p.ResendAge > 0 {
		w.ResendAge = p.ResendAge.String()
	}
	return w
}

func sinkFromWire(w wire.AuditSink) (audit.SinkSpec, error) {
	s := audit.SinkSpec{Name: w.Name, Type: w.Type, Format: w.Format, Addr: w.Addr, URL: w.URL, Token: w.Token, Ack: w.Ack, Index: w.Index,
		CA: w.CA, ServerName: w.ServerName, ClientCert: w.ClientCert, ClientKey: w.ClientKey, ResendRecords: w.ResendRecords}
	if w.ResendAge != "" {
		d, err := time.ParseDuration(w.ResendAge)
		if err != nil || d < 0 {
			return s, fmt.Errorf("%w: resend_age %q: want a duration such as 2m", audit.ErrInvalidSink, w.ResendAge)
		}
		s.ResendAge = d
	}
	return s, nil
}

func (h *handler) sinkState(name string) (cursor uint64, cfgErr string) {
	cursor, _, _ = audit.ReadCursor(context.Background(), h.node, name)
	if h.audit.Sinks.States != nil {
		for _, st := range h.audit.Sinks.States() {
			if st.Name == name {
				cfgErr = st.ConfigError
			}
		}
	}
	return cursor, cfgErr
}

func (h *handler) listSinks(w http.ResponseWriter, r *http.Request, _ authn.Session) error {
	specs, err := h.audit.Sinks.Store.List(r.Context())
	if err != nil {
		return err
	}
	out := wire.AuditSinkList{Sinks: []wire.AuditSink{}, NoNetworkSink: len(specs) == 0}
	for _, s := range specs {
		ws := sinkToWire(s)
		ws.Cursor, ws.ConfigError = h.sinkState(s.Name)
		out.Sinks = append(out.Sinks, ws)
	}
	writeJSON(w, http.StatusOK, out)
	return nil
}

func (h *handler) showSink(w http.ResponseWriter, r *http.Request, _ authn.Session) error {
	s, err := h.audit.Sinks.Store.Get(r.Context(), r.PathValue("name"))
	if err != nil {
		return err
	}
	ws := sinkToWire(s)
	ws.Cursor, ws.ConfigError = h.sinkState(s.Name)
	writeJSON(w, http.StatusOK, ws)
	return nil
}

func (h *handler) addSink(w http.ResponseWriter, r *http.Request, s authn.Session) error {
	var in wire.AuditSink
	if err := decode(w, r, &in); err != nil {
		return err
	}
	spec, err := sinkFromWire(in)
	if err != nil {
		return err
	}
	// A change commits with its record; a refusal is recorded on its own.
	if err := h.audit.Sinks.Store.AddBy(r.Context(), spec, actor(s)); err != nil {
		h.recordSinkChange(r, s, "audit.sink.add", spec.Name, err)
		return err
	}
	writeJSON(w, http.StatusOK, sinkToWire(spec))
	return nil
}

func (h *handler) removeSink(w http.ResponseWriter, r *http.Request, s authn.Session) error {
	name := r.PathValue("name")
	if err := h.audit.Sinks.Store.RemoveBy(r.Context(), name, actor(s)); err != nil {
		h.recordSinkChange(r, s, "audit.sink.remove", name, err)
		return err
	}
	writeJSON(w, http.StatusOK, map[string]string{"removed": name})
	return nil
}

// recordSinkChange records a refused change of the sinks (a change made
// commits with its record: SinkStore.AddBy, RemoveBy).
func (h *handler) recordSinkChange(r *http.Request, s authn.Session, action, name string, err error) {
	if h.audit == nil || h.audit.Recorder == nil {
		return
	}
	e := audit.Event{Type: audit.TypeAdmin, Action: action, Actor: actor(s), Outcome: audit.Success, Details: map[string]string{"sink": name}}
	if err != nil {
		e.Outcome, e.Reason = audit.Failure, err.Error()
	}
	if rerr := h.audit.Recorder.Record(r.Context(), e); rerr != nil {
		h.log.Warn("recording an audit sink change failed", "err", rerr)
	}
}

func (h *handler) testSink(w http.ResponseWriter, r *http.Request, s authn.Session) error {
	spec, err := h.audit.Sinks.Store.Get(r.Context(), r.PathValue("name"))
	if err != nil {
		return err
	}
	sink, err := spec.Build(h.audit.Sinks.Options)
	if err != nil {
		return err
	}
	defer sink.Close()
	ctx, cancel := context.WithTimeout(r.Context(), 20*time.Second)
	defer cancel()
	id, answer, err := audit.SendTestRecord(ctx, sink, h.now(), actor(s))
	res := wire.AuditSinkTestResult{OK: err == nil, Answer: answer, ID: id}
	if err != nil {
		res.Answer = err.Error()
	}
	writeJSON(w, http.StatusOK, res)
	return nil
}
