package api

import (
	"math"
	"net/http"
	"strconv"
	"strings"
	"time"

	"github.com/ferryvpn/ferry/authn"
	"github.com/ferryvpn/ferry/cmd/internal/wire"
	"github.com/ferryvpn/ferry/tunnel/capture"
)

// mountCapture adds the packet capture endpoints. A capture is refused to
// non-administrators by the capture service itself (not by the admin
// middleware), so that the refusal is an audit event like the others.
func (h *handler) mountCapture(mux *http.ServeMux) {
	mux.HandleFunc("POST "+wire.PathCaptures, h.authed(h.runCapture))
	mux.HandleFunc("GET "+wire.PathCaptures, h.admin(h.listCaptures))
	mux.HandleFunc("GET "+wire.PathCaptureLimits, h.admin(h.captureLimits))
	// Like a capture, a change of the caps is refused (and recorded) by
	// the capture service itself.
	mux.HandleFunc("PUT "+wire.PathCaptureLimits, h.authed(h.setCaptureLimits))
}

// runCapture streams a cluster-wide capture as pcapng.
func (h *handler) runCapture(w http.ResponseWriter, r *http.Request, s authn.Session) error {
	var in wire.CaptureRequest
	if err := decode(w, r, &in); err != nil {
		return err
	}
	req := capture.Request{
		Actor: actor(s), Source: auditSource(r), Admin: s.Role == authn.RoleAdmin, TOTP: in.TOTP, Reason: in.Reason,
		User: in.User, Peer: in.Peer, Profile: in.Profile, Filter: in.Filter,
		Duration: time.Duration(in.DurationSeconds) * time.Second, MaxBytes: in.MaxBytes, Snaplen: in.Snaplen,
	}
	for _, t := range []string{wire.TrailerCaptureSHA256, wire.TrailerCapturePackets, wire.TrailerCaptureBytes,
		wire.TrailerCaptureDropped, wire.TrailerCaptureStopped, wire.TrailerCaptureNodes, wire.TrailerCaptureError} {
		w.Header().Add("Trailer", t)
	}
	w.Header().Set("Content-Type", wire.ContentTypePcapng)
	h.extendDeadlines(w)
	fw := &flushingWriter{w: w, rc: http.NewResponseController(w)}
	res, err := h.capture.Run(withAdminProof(r).Context(), req, fw)
	if !fw.wrote {
		// Refused before anything was captured: an ordinary error answer.
		for _, k := range []string{"Trailer", "Content-Type"} {
			w.Header().Del(k)
		}
		return err
	}
	nodes := make([]string, 0, len(res.Nodes))
	for _, n := range res.Nodes {
		v := n.Name + "=" + strconv.FormatUint(n.Packets, 10) + ":" + n.Stopped
		if n.Err != "" {
			v += ":error"
		}
		nodes = append(nodes, v)
	}
	t := w.Header()
	t.Set(wire.TrailerCaptureSHA256, res.SHA256)
	t.Set(wire.TrailerCapturePackets, strconv.FormatUint(res.Packets, 10))
	t.Set(wire.TrailerCaptureBytes, strconv.FormatUint(res.Bytes, 10))
	t.Set(wire.TrailerCaptureDropped, strconv.FormatUint(res.Dropped, 10))
	t.Set(wire.TrailerCaptureStopped, res.Stopped)
	t.Set(wire.TrailerCaptureNodes, strings.Join(nodes, ","))
	if err != nil {
		t.Set(wire.TrailerCaptureError, err.Error())
	}
	return nil
}

func (h *handler) listCaptures(w http.ResponseWriter, r *http.Request, s authn.Session) error {
	running, err := h.capture.Running(r.Context())
	if err != nil {
		return err
	}
	out := wire.CaptureList{Captures: []wire.RunningCapture{}}
	for _, c := range running {
		out.Captures = append(out.Captures, wire.RunningCapture{ID: c.ID, Actor: c.Actor, Reason: c.Reason, Clients: c.Clients,
			Filter: c.Filter, Started: c.Started, Node: c.Node})
	}
	writeJSON(w, http.StatusOK, out)
	return nil
}

func (h *handler) captureLimits(w http.ResponseWriter, r *http.Request, _ authn.Session) error {
	c, err := h.capture.Caps(r.Context())
	if err != nil {
		return err
	}
	writeJSON(w, http.StatusOK, wireCaps(c))
	return nil
}

func (h *handler) setCaptureLimits(w http.ResponseWriter, r *http.Request, s authn.Session) error {
	var in wire.CaptureLimitsChange
	if err := decode(w, r, &in); err != nil {
		return err
	}
	ch := capture.CapsChange{Actor: actor(s), Source: auditSource(r), Admin: s.Role == authn.RoleAdmin, TOTP: in.TOTP,
		MaxBytes: in.MaxBytes, MaxConcurrent: in.MaxConcurrent, AllowPayload: in.AllowPayload}
	if in.MaxDurationSeconds != nil {
		d := time.Duration(math.MaxInt64) // beyond any cap: refused by name, not wrapped
		if sec := *in.MaxDurationSeconds; sec < 1<<32 {
			d = time.Duration(sec) * time.Second
		}
		ch.MaxDuration = &d
	}
	c, err := h.capture.SetCaps(r.Context(), ch)
	if err != nil {
		return err
	}
	writeJSON(w, http.StatusOK, wireCaps(c))
	return nil
}

func wireCaps(c capture.Caps) wire.CaptureLimits {
	return wire.CaptureLimits{MaxDurationSeconds: int64(c.MaxDuration / time.Second), MaxBytes: c.MaxBytes, MaxConcurrent: c.MaxConcurrent,
		AllowPayload: c.AllowPayload, HeaderSnaplen: c.HeaderSnaplen}
}

// flushingWriter sends each write at once, so `ferryctl capture -w -`
// into Wireshark shows packets while the capture runs.
type flushingWriter struct {
	w     http.ResponseWriter
	rc    *http.ResponseController
	wrote bool
}

func (f *flushingWriter) Write(p []byte) (int, error) {
	f.wrote = true
	n, err := f.w.Write(p)
	if err == nil {
		err = f.rc.Flush()
	}
	return n, err
}
