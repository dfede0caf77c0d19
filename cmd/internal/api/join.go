package api

import (
	"context"
	"encoding/base64"
	"net"
	"net/http"
	"strconv"
	"strings"
	"time"

	"github.com/ferryvpn/ferry/audit"
	"github.com/ferryvpn/ferry/authn"
	"github.com/ferryvpn/ferry/cluster/admit"
	"github.com/ferryvpn/ferry/cmd/internal/wire"
)

// Joining a node (package admit decides; these handlers translate):
//
//  1. POST /v1/cluster/join, authenticated by a single-use join token: the
//     node sends certificate requests and its cluster address; the cluster
//     consumes the token, issues the certificates and adds the node as a
//     non-voter, in one step. The node then starts, catches up and has
//     itself promoted to voter with its own certificate.
//  2. POST /v1/cluster/members (administrators only) adds a node that
//     already runs with a node certificate, through the same non-voter path,
//     after checking that its address answers with that certificate.

// join admits a new node.
func (h *handler) join(w http.ResponseWriter, r *http.Request) error {
	var req wire.JoinRequest
	if err := decode(w, r, &req); err != nil {
		return err
	}
	csr, err := base64.StdEncoding.DecodeString(req.CSR)
	if err != nil {
		return errorf(http.StatusBadRequest, "csr: want a DER certificate request in standard base64")
	}
	apiCSR, err := base64.StdEncoding.DecodeString(req.APICSR)
	if err != nil {
		return errorf(http.StatusBadRequest, "api_csr: want a DER certificate request in standard base64")
	}
	res, err := h.admit.Join(r.Context(), admit.JoinRequest{
		Token: req.Token, NodeID: req.NodeID, Addr: req.Addr, CSR: csr, APICSR: apiCSR, Remote: r.RemoteAddr,
	})
	if err != nil {
		return err
	}
	writeJSON(w, http.StatusOK, wire.JoinResponse{
		CAPEM: string(res.CAPEM), CertPEM: string(res.CertPEM), APICertPEM: string(res.APICertPEM), Settings: h.settings,
	})
	return nil
}

// members adds a running node as a voter, through the non-voter path.
func (h *handler) members(w http.ResponseWriter, r *http.Request, s authn.Session) error {
	var req wire.MembersRequest
	if err := decode(w, r, &req); err != nil {
		return err
	}
	err := h.node.AddVoter(r.Context(), req.NodeID, req.Addr)
	h.recordOp(r, s, actionAdd, audit.Target{Node: req.NodeID}, err, map[string]string{"addr": req.Addr})
	if err != nil {
		return err
	}
	var resp wire.MembersResponse
	for _, m := range h.node.Status().Members {
		resp.Members = append(resp.Members, wire.Member{ID: m.ID, Addr: m.Addr, Voter: m.Voter})
	}
	writeJSON(w, http.StatusOK, resp)
	return nil
}

// joinToken mints a join token, as "ferryd token" does on a node; it is
// recorded as minted (never its text) before it is answered.
func (h *handler) joinToken(w http.ResponseWriter, r *http.Request, s authn.Session) error {
	var in wire.JoinTokenRequest
	if r.ContentLength != 0 {
		if err := decode(w, r, &in); err != nil {
			return err
		}
	}
	if in.TTLSeconds < 0 || in.TTLSeconds > int64(admit.MaxTokenTTL/time.Second) {
		return errorf(http.StatusBadRequest, "ttl_seconds: want 1 to %d (%s)", int64(admit.MaxTokenTTL/time.Second), admit.MaxTokenTTL)
	}
	tok, err := h.admit.Mint(r.Context(), time.Duration(in.TTLSeconds)*time.Second, in.NodeID, s.Identity.UserID, r.RemoteAddr)
	if err != nil {
		return err
	}
	writeJSON(w, http.StatusOK, wire.JoinTokenResponse{Token: tok.Text, ID: tok.ID, Expires: tok.Expires, NodeID: tok.NodeID})
	return nil
}

// AdmitRecorder returns the admit.Config.Record that writes admission
// events to rec as cluster.* audit events; with rec nil it only logs.
func AdmitRecorder(rec func() audit.Recorder) func(context.Context, admit.Event) error {
	return func(ctx context.Context, e admit.Event) error {
		r := rec()
		if r == nil {
			return errNoRecorder
		}
		ae := audit.Event{
			Type: audit.TypeCluster, Action: e.Action, Outcome: audit.Success,
			Actor: audit.Actor{UserID: e.By}, Target: audit.Target{Node: e.NodeID}, Details: map[string]string{},
		}
		if host, port, err := net.SplitHostPort(e.Remote); err == nil {
			ae.Source.Addr = host
			ae.Source.Port, _ = strconv.Atoi(port)
		}
		for k, v := range map[string]string{"token_id": e.TokenID, "kind": e.Kind, "serial": e.Serial, "names": strings.Join(e.Names, ",")} {
			if v != "" {
				ae.Details[k] = v
			}
		}
		if !e.NotAfter.IsZero() {
			ae.Details["not_after"] = e.NotAfter.UTC().Format(time.RFC3339)
		}
		if e.Failed {
			ae.Outcome = audit.Failure
		}
		ae.Reason = e.Reason
		ctx, cancel := context.WithTimeout(context.WithoutCancel(ctx), recordTimeout)
		defer cancel()
		return r.Record(ctx, ae)
	}
}
