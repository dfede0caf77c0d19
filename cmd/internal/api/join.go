package api

import (
	"crypto/x509"
	"encoding/base64"
	"errors"
	"fmt"
	"net"
	"net/http"
	"regexp"
	"strconv"
	"strings"
	"time"

	"github.com/ferryvpn/ferry/cluster"
	"github.com/ferryvpn/ferry/cluster/pki"
	"github.com/ferryvpn/ferry/cluster/seal"
	"github.com/ferryvpn/ferry/cmd/internal/clusterca"
	"github.com/ferryvpn/ferry/cmd/internal/wire"
)

// Joining a node takes two calls, each authenticated by a join token:
//
//  1. POST /v1/cluster/join: the node sends certificate requests for its
//     cluster identity and its API; any node answers, signing them with the
//     CA key it unseals from the store.
//  2. POST /v1/cluster/members: once the new node listens with its
//     certificate, it asks to be added as a voter.
//
// A token grants the right to add a node, so both calls refuse node IDs and
// addresses already in use rather than replace a member.

// joinTokenPurpose derives the join token key from the master key.
const joinTokenPurpose = "join-token"

// maxAPINames bounds the names in an API certificate request.
const maxAPINames = 16

// dnsName accepts host names for API certificates; no wildcards.
var dnsName = regexp.MustCompile(`^(?i)[a-z0-9]([a-z0-9-]{0,61}[a-z0-9])?(\.[a-z0-9]([a-z0-9-]{0,61}[a-z0-9])?)*$`)

// NewJoinToken returns a join token for the cluster whose CA is caCert and
// whose master key is master, valid until expires.
func NewJoinToken(master seal.Key, caCert *x509.Certificate, expires time.Time) (string, error) {
	return pki.NewJoinToken(seal.DeriveKey(master, joinTokenPurpose), pki.Fingerprint(caCert), expires)
}

// join issues the certificates of a new node.
func (h *handler) join(w http.ResponseWriter, r *http.Request) error {
	var req wire.JoinRequest
	if err := decode(w, r, &req); err != nil {
		return err
	}
	// Authenticate with the public certificate first: the CA key is
	// unsealed for authenticated requests only.
	caCert, err := clusterca.Cert(r.Context(), h.node, cluster.Local)
	if err != nil {
		return h.caUnavailable(r, "join", err)
	}
	if err := h.verifyToken(r, "join", caCert, req.Token, req.NodeID); err != nil {
		return err
	}
	ca, err := clusterca.Load(r.Context(), h.node, h.master)
	if err != nil {
		return h.caUnavailable(r, "join", err)
	}
	if err := pki.ValidNodeID(req.NodeID); err != nil {
		return errorf(http.StatusBadRequest, "%s", "node_id: "+strings.TrimPrefix(err.Error(), "pki: "))
	}
	if h.isMember(req.NodeID) {
		return errorf(http.StatusConflict, "node_id %q is already a member of the cluster; remove it first or choose another ID", req.NodeID)
	}
	csr, err := base64.StdEncoding.DecodeString(req.CSR)
	if err != nil || len(csr) == 0 {
		return errorf(http.StatusBadRequest, "%s", "csr: want a DER certificate request in standard base64")
	}
	now := h.now()
	certPEM, err := ca.IssueNode(csr, req.NodeID, []string{cluster.DefaultServerName}, nil, h.nodeTTL, now)
	if err != nil {
		return errorf(http.StatusBadRequest, "%s", "csr: "+err.Error())
	}
	apiCSR, err := parseAPICSR(req.APICSR)
	if err != nil {
		return errorf(http.StatusBadRequest, "%s", "api_csr: "+err.Error())
	}
	apiPEM, err := ca.IssueServer(apiCSR.PublicKey, apiCSR.DNSNames, apiCSR.IPAddresses, h.apiTTL, now)
	if err != nil {
		return errorf(http.StatusBadRequest, "%s", "api_csr: "+err.Error())
	}
	h.log.Info("issued certificates to joining node", "node_id", req.NodeID, "remote", r.RemoteAddr,
		"api_dns_names", apiCSR.DNSNames, "api_ips", apiCSR.IPAddresses)
	writeJSON(w, http.StatusOK, wire.JoinResponse{CAPEM: string(ca.CertPEM()), CertPEM: string(certPEM), APICertPEM: string(apiPEM)})
	return nil
}

// members adds a running node as a voter.
func (h *handler) members(w http.ResponseWriter, r *http.Request) error {
	var req wire.MembersRequest
	if err := decode(w, r, &req); err != nil {
		return err
	}
	caCert, err := clusterca.Cert(r.Context(), h.node, cluster.Local)
	if err != nil {
		return h.caUnavailable(r, "members", err)
	}
	if err := h.verifyToken(r, "members", caCert, req.Token, req.NodeID); err != nil {
		return err
	}
	if err := pki.ValidNodeID(req.NodeID); err != nil {
		return errorf(http.StatusBadRequest, "%s", "node_id: "+strings.TrimPrefix(err.Error(), "pki: "))
	}
	if err := checkPeerAddr(req.Addr); err != nil {
		return errorf(http.StatusBadRequest, "%s", "addr: "+err.Error())
	}
	for _, m := range h.node.Status().Members {
		switch {
		case m.ID == req.NodeID && m.Addr != req.Addr:
			return errorf(http.StatusConflict, "node_id %q is already a member at %s; remove it first", m.ID, m.Addr)
		case m.ID != req.NodeID && m.Addr == req.Addr:
			return errorf(http.StatusConflict, "addr %s is already the address of member %q", m.Addr, m.ID)
		}
	}
	ctx := cluster.WithProof(r.Context(), []byte(joinProofPrefix+req.Token))
	if err := h.node.AddVoter(ctx, req.NodeID, req.Addr); err != nil {
		status := http.StatusServiceUnavailable
		if errors.Is(err, cluster.ErrInvalid) {
			status = http.StatusBadRequest
		}
		h.log.Warn("adding voter failed", "node_id", req.NodeID, "addr", req.Addr, "err", err)
		return errorf(status, "%s", "adding the node failed: "+err.Error())
	}
	h.log.Info("added node to the cluster", "node_id", req.NodeID, "addr", req.Addr, "remote", r.RemoteAddr)
	var resp wire.MembersResponse
	for _, m := range h.node.Status().Members {
		resp.Members = append(resp.Members, wire.Member{ID: m.ID, Addr: m.Addr, Voter: m.Voter})
	}
	writeJSON(w, http.StatusOK, resp)
	return nil
}

// verifyToken checks a join token; its error is answered 401. The client
// learns only that the token was refused; the log says why, without the
// token.
func (h *handler) verifyToken(r *http.Request, op string, caCert *x509.Certificate, tok, nodeID string) error {
	err := pki.VerifyJoinToken(h.tokenKey, pki.Fingerprint(caCert), tok, h.now())
	if err == nil {
		return nil
	}
	h.log.Warn("join token refused", "op", op, "remote", r.RemoteAddr, "node_id", truncate(nodeID, 64), "reason", err)
	return errorf(http.StatusUnauthorized, "%s", joinTokenRefused)
}

// caUnavailable is the error answered when this node cannot read or
// unseal the CA; the log keeps the cause.
func (h *handler) caUnavailable(r *http.Request, op string, err error) error {
	h.log.Error("cluster CA unavailable", "op", op, "remote", r.RemoteAddr, "err", err)
	if errors.Is(err, clusterca.ErrNotFound) {
		return errorf(http.StatusServiceUnavailable, "this node does not hold the cluster CA yet; retry, or ask another node")
	}
	return errorf(http.StatusServiceUnavailable, "this node cannot use the cluster CA; see its log")
}

// isMember reports whether id is in the cluster configuration.
func (h *handler) isMember(id string) bool {
	for _, m := range h.node.Status().Members {
		if m.ID == id {
			return true
		}
	}
	return false
}

// parseAPICSR decodes and checks a certificate request for an API server
// certificate.
func parseAPICSR(b64 string) (*x509.CertificateRequest, error) {
	der, err := base64.StdEncoding.DecodeString(b64)
	if err != nil || len(der) == 0 {
		return nil, errors.New("want a DER certificate request in standard base64")
	}
	csr, err := x509.ParseCertificateRequest(der)
	if err != nil {
		return nil, fmt.Errorf("parsing certificate request: %w", err)
	}
	if err := csr.CheckSignature(); err != nil {
		return nil, fmt.Errorf("certificate request signature is invalid: %w", err)
	}
	n := len(csr.DNSNames) + len(csr.IPAddresses)
	if n == 0 || n > maxAPINames {
		return nil, fmt.Errorf("want 1 to %d DNS names and IP addresses, found %d", maxAPINames, n)
	}
	for _, name := range csr.DNSNames {
		if err := CheckAPIName(name); err != nil {
			return nil, err
		}
	}
	return csr, nil
}

// CheckAPIName returns an error unless name may appear in an API server
// certificate. cluster.DefaultServerName is refused: other nodes accept any
// server certificate of the cluster CA with that name as a node's, and an
// API certificate must never pass as one.
func CheckAPIName(name string) error {
	switch {
	case len(name) > 253 || !dnsName.MatchString(name):
		return fmt.Errorf("DNS name %.80q is not a host name", name)
	case name == cluster.DefaultServerName:
		return fmt.Errorf("DNS name %q is reserved for node certificates", name)
	}
	return nil
}

// checkPeerAddr checks the cluster address of a joining node.
func checkPeerAddr(addr string) error {
	host, port, err := net.SplitHostPort(addr)
	if err != nil || host == "" || len(addr) > 300 {
		return fmt.Errorf("%.100q: want host:port", addr)
	}
	if ip := net.ParseIP(host); ip != nil && ip.IsUnspecified() {
		return fmt.Errorf("%q: want an address other nodes can dial", addr)
	}
	if p, err := strconv.ParseUint(port, 10, 16); err != nil || p == 0 {
		return fmt.Errorf("%q: want a port from 1 to 65535", addr)
	}
	return nil
}

func truncate(s string, n int) string {
	if len(s) > n {
		return s[:n] + "..."
	}
	return s
}
