package admit

import (
	"context"
	"crypto/x509"
	"encoding/json"
	"errors"
	"fmt"
	"log/slog"
	"net"
	"strings"
	"time"

	"github.com/ferryvpn/ferry/cluster"
	"github.com/ferryvpn/ferry/cluster/pki"
	"github.com/ferryvpn/ferry/cluster/seal"
)

// Certificate lifetimes. Node certificates are short, so a stolen one ages
// out even if nobody revokes it; members renew theirs when a third of the
// lifetime is left (cluster.Node). API certificates are served to clients
// and are not renewed yet.
const (
	DefaultNodeCertTTL = 7 * 24 * time.Hour
	DefaultAPICertTTL  = 365 * 24 * time.Hour
)

// Errors returned by the Admitter. Token errors are those of package pki
// (pki.ErrTokenMalformed, pki.ErrTokenInvalid, pki.ErrTokenExpired), with
// messages that say what is wrong and never contain the token.
var (
	// ErrTokenUsed is returned when a join token has already admitted a
	// node.
	ErrTokenUsed = errors.New("admit: join token already used")
	// ErrInvalid is returned for a malformed request; it wraps a message
	// naming the field.
	ErrInvalid = errors.New("admit: invalid request")
	// ErrNameNotAllowed is returned when an API certificate request names
	// a host the cluster is not configured for, or a reserved name.
	ErrNameNotAllowed = errors.New("admit: name not allowed in an API certificate")
	// ErrAlreadyMember is returned when the joining node's ID is a current
	// member.
	ErrAlreadyMember = errors.New("admit: node is already a member")
	// ErrNotRecorded is returned when a certificate could not be recorded
	// in the audit log; it is not handed out.
	ErrNotRecorded = errors.New("admit: could not record the issuance")
)

// Event is something the audit log must hold: a token minted or used or
// refused, a certificate issued.
type Event struct {
	// Action is join_token.create, join_token.redeem, join_token.refused,
	// cert.issue or cert.refused.
	Action string
	// NodeID is the node concerned; TokenID the token (not secret).
	NodeID  string
	TokenID string
	// Kind is node or api for certificates; Serial (hex) and NotAfter
	// describe the certificate issued, Names the API certificate's names.
	Kind     string
	Serial   string
	NotAfter time.Time
	Names    []string
	// Remote is where the request came from; By who asked (an
	// administrator's user ID, or the node itself for renewals).
	Remote string
	By     string
	// Failed reports a refusal, Reason why.
	Failed bool
	Reason string
}

// Config configures an Admitter.
type Config struct {
	// Node is this node of the cluster. Required.
	Node *cluster.Node
	// MasterKey unseals the CA key and derives the token key. Required.
	MasterKey seal.Key
	// APINames are the names API certificates may carry: the host of
	// api.public_url and api.names. Compared case-insensitively.
	APINames []string
	// NodeCertTTL and APICertTTL are the lifetimes of issued
	// certificates; defaults DefaultNodeCertTTL and DefaultAPICertTTL.
	NodeCertTTL time.Duration
	APICertTTL  time.Duration
	// Record takes the audit events; a certificate whose issuance it
	// cannot record is not handed out. Required.
	Record func(ctx context.Context, e Event) error
	// Now is the clock; default time.Now.
	Now func() time.Time
	// Logger; default slog.Default().
	Logger *slog.Logger
}

// Admitter admits nodes. Its methods are safe for concurrent use.
type Admitter struct {
	cfg      Config
	tokenKey []byte
	names    namePolicy
}

// New returns an Admitter.
func New(cfg Config) (*Admitter, error) {
	switch {
	case cfg.Node == nil:
		return nil, errors.New("admit config: node is required")
	case cfg.MasterKey.IsZero():
		return nil, errors.New("admit config: master key is required")
	case cfg.Record == nil:
		return nil, errors.New("admit config: record is required")
	case cfg.NodeCertTTL < 0 || cfg.APICertTTL < 0:
		return nil, errors.New("admit config: certificate lifetimes must not be negative")
	}
	names, err := newNamePolicy(cfg.APINames)
	if err != nil {
		return nil, fmt.Errorf("admit config: api names: %w", err)
	}
	if cfg.NodeCertTTL == 0 {
		cfg.NodeCertTTL = DefaultNodeCertTTL
	}
	if cfg.APICertTTL == 0 {
		cfg.APICertTTL = DefaultAPICertTTL
	}
	if cfg.Now == nil {
		cfg.Now = time.Now
	}
	if cfg.Logger == nil {
		cfg.Logger = slog.Default()
	}
	return &Admitter{cfg: cfg, tokenKey: seal.DeriveKey(cfg.MasterKey, tokenPurpose), names: names}, nil
}

// Mint makes a join token, as MintToken does, and records it as minted by
// by (never its text) before returning it.
func (a *Admitter) Mint(ctx context.Context, ttl time.Duration, nodeID, by, remote string) (Token, error) {
	caCert, err := CACert(ctx, a.cfg.Node, cluster.Local)
	if err != nil {
		return Token{}, err
	}
	tok, err := MintToken(a.cfg.MasterKey, caCert, ttl, nodeID, a.cfg.Now())
	if err != nil {
		return Token{}, err
	}
	if err := a.cfg.Record(ctx, Event{Action: "join_token.create", TokenID: tok.ID, NodeID: nodeID, NotAfter: tok.Expires, By: by, Remote: remote}); err != nil {
		return Token{}, fmt.Errorf("%w: %v", ErrNotRecorded, err)
	}
	return tok, nil
}

// JoinRequest is a new node's request to join.
type JoinRequest struct {
	Token  string
	NodeID string
	// Addr is the cluster address (host:port) other nodes will dial.
	Addr string
	// CSR is the node certificate request (DER), APICSR the API's.
	CSR    []byte
	APICSR []byte
	// Remote is where the request came from, for the audit log.
	Remote string
}

// JoinResult carries the new node's certificates, in PEM.
type JoinResult struct {
	CAPEM, CertPEM, APICertPEM []byte
}

// usedToken is the record of a redeemed token, at usedPrefix+ID.
type usedToken struct {
	NodeID  string    `json:"node_id"`
	At      time.Time `json:"at"`
	Expires time.Time `json:"expires"`
}

// certRecord is the last node certificate issued to a node, at
// certPrefix+nodeID.
type certRecord struct {
	Serial   string    `json:"serial"`
	NotAfter time.Time `json:"not_after"`
}

// Store keys of this package.
const (
	usedPrefix = "sys/admit/used/"
	certPrefix = "sys/admit/certs/"
)

// Join admits a node: it checks the token (authentic, unexpired, bound to
// this node if bound at all, unused), the node ID (not a current member),
// the certificate requests and the API names; issues both certificates;
// consumes the token and records the node certificate in one
// compare-and-swap; and adds the node as a non-voter. Each step that
// refuses changes nothing; a refusal and each certificate are recorded.
func (a *Admitter) Join(ctx context.Context, req JoinRequest) (JoinResult, error) {
	res, tokenID, err := a.join(ctx, req)
	if err != nil {
		a.cfg.Record(context.WithoutCancel(ctx), Event{Action: "join_token.refused", NodeID: req.NodeID, TokenID: tokenID, Remote: req.Remote, Failed: true, Reason: err.Error()})
		a.cfg.Logger.Warn("join refused", "node_id", truncate(req.NodeID, 64), "remote", req.Remote, "err", err)
	}
	return res, err
}

func (a *Admitter) join(ctx context.Context, req JoinRequest) (JoinResult, string, error) {
	n := a.cfg.Node
	// The token first, with the public certificate: the CA key is unsealed
	// for authenticated requests only.
	caCert, err := CACert(ctx, n, cluster.Local)
	if err != nil {
		return JoinResult{}, "", err
	}
	now := a.cfg.Now()
	info, err := pki.VerifyJoinTokenFor(a.tokenKey, pki.Fingerprint(caCert), req.Token, req.NodeID, now)
	if err != nil {
		return JoinResult{}, "", err
	}
	if err := pki.ValidNodeID(req.NodeID); err != nil {
		return JoinResult{}, info.ID, fmt.Errorf("%w: node_id: %v", ErrInvalid, err)
	}
	if _, ok, err := n.Get(ctx, usedPrefix+info.ID, cluster.Linearizable); err != nil {
		return JoinResult{}, info.ID, err
	} else if ok {
		return JoinResult{}, info.ID, ErrTokenUsed
	}
	if err := checkAddr(req.Addr); err != nil {
		return JoinResult{}, info.ID, err
	}
	for _, m := range n.Status().Members {
		switch {
		case m.ID == req.NodeID:
			return JoinResult{}, info.ID, fmt.Errorf("%w: node_id %q; remove it first or choose another ID", ErrAlreadyMember, req.NodeID)
		case m.Addr == req.Addr:
			return JoinResult{}, info.ID, fmt.Errorf("%w: addr %s is the address of member %q", ErrAlreadyMember, req.Addr, m.ID)
		}
	}
	apiCSR, err := parseCSR(req.APICSR, "api_csr")
	if err != nil {
		return JoinResult{}, info.ID, err
	}
	if n := len(apiCSR.DNSNames) + len(apiCSR.IPAddresses); n == 0 || n > maxAPINames {
		return JoinResult{}, info.ID, fmt.Errorf("%w: api_csr: want 1 to %d DNS names and IP addresses, found %d", ErrInvalid, maxAPINames, n)
	}
	if err := a.names.check(apiCSR.DNSNames, apiCSR.IPAddresses); err != nil {
		return JoinResult{}, info.ID, err
	}

	ca, err := LoadCA(ctx, n, a.cfg.MasterKey)
	if err != nil {
		return JoinResult{}, info.ID, err
	}
	certPEM, nodeCert, err := a.issueNode(ca, req.NodeID, req.CSR, now)
	if err != nil {
		return JoinResult{}, info.ID, err
	}
	apiPEM, err := ca.IssueServer(apiCSR.PublicKey, lower(apiCSR.DNSNames), apiCSR.IPAddresses, a.cfg.APICertTTL, now)
	if err != nil {
		return JoinResult{}, info.ID, fmt.Errorf("%w: api_csr: %v", ErrInvalid, err)
	}
	apiCert, err := pki.ParseCertPEM(apiPEM)
	if err != nil {
		return JoinResult{}, info.ID, err
	}

	// One step: the token is consumed and the node certificate recorded,
	// or neither.
	used, _ := json.Marshal(usedToken{NodeID: req.NodeID, At: now.UTC(), Expires: info.Expires})
	rec, _ := json.Marshal(certRecord{Serial: serialHex(nodeCert), NotAfter: nodeCert.NotAfter})
	r, err := n.Txn(ctx, cluster.Txn{
		Compares: []cluster.Compare{cluster.IfAbsent(usedPrefix + info.ID)},
		Ops:      []cluster.Op{cluster.Put(usedPrefix+info.ID, used), cluster.Put(certPrefix+req.NodeID, rec)},
	})
	if err != nil {
		return JoinResult{}, info.ID, fmt.Errorf("consuming the join token: %w", err)
	}
	if !r.Succeeded {
		return JoinResult{}, info.ID, ErrTokenUsed
	}
	for _, e := range []Event{
		{Action: "join_token.redeem", NodeID: req.NodeID, TokenID: info.ID, Remote: req.Remote},
		{Action: "cert.issue", Kind: "node", NodeID: req.NodeID, TokenID: info.ID, Serial: serialHex(nodeCert), NotAfter: nodeCert.NotAfter, Remote: req.Remote},
		{Action: "cert.issue", Kind: "api", NodeID: req.NodeID, TokenID: info.ID, Serial: serialHex(apiCert), NotAfter: apiCert.NotAfter, Names: certNames(apiCert), Remote: req.Remote},
	} {
		if err := a.cfg.Record(ctx, e); err != nil {
			return JoinResult{}, info.ID, fmt.Errorf("%w: %v", ErrNotRecorded, err)
		}
	}
	// Admitted: a non-voter until it has caught up and promotes itself.
	proof := cluster.WithProof(ctx, []byte(joinProofPrefix+req.Token))
	if err := n.AddNonvoter(proof, req.NodeID, req.Addr); err != nil {
		return JoinResult{}, info.ID, fmt.Errorf("adding %s as a non-voter: %w", req.NodeID, err)
	}
	a.cfg.Logger.Info("admitted a node as a non-voter", "node_id", req.NodeID, "addr", req.Addr, "token", info.ID, "remote", req.Remote)
	return JoinResult{CAPEM: ca.CertPEM(), CertPEM: certPEM, APICertPEM: apiPEM}, info.ID, nil
}

// maxAPINames bounds the names in an API certificate request.
const maxAPINames = 16

// joinProofPrefix marks a forwarded AddNonvoter's proof that is the join
// token the node was admitted with.
const joinProofPrefix = "join:"

// Authorize is the part of cluster.Config.Authorize that this package
// answers: a forwarded add_nonvoter whose proof is the join token that
// admitted exactly that node. It reports whether the proof is a join
// token at all (handled), and if so the actor or the error.
func (a *Admitter) Authorize(ctx context.Context, req cluster.AuthRequest) (actor string, handled bool, err error) {
	tok, ok := strings.CutPrefix(string(req.Proof), joinProofPrefix)
	if !ok {
		return "", false, nil
	}
	if req.Op != "add_nonvoter" {
		return "", true, fmt.Errorf("a join token admits non-voters only, not %s", req.Op)
	}
	caCert, err := CACert(ctx, a.cfg.Node, cluster.Local)
	if err != nil {
		return "", true, err
	}
	info, err := pki.VerifyJoinTokenFor(a.tokenKey, pki.Fingerprint(caCert), tok, req.Target, a.cfg.Now())
	if err != nil {
		return "", true, err
	}
	kv, ok, err := a.cfg.Node.Get(ctx, usedPrefix+info.ID, cluster.Local)
	if err != nil {
		return "", true, err
	}
	var u usedToken
	if !ok || json.Unmarshal(kv.Value, &u) != nil || u.NodeID != req.Target {
		return "", true, fmt.Errorf("join token %s was not redeemed by node %q", info.ID, req.Target)
	}
	return "join-token:" + info.ID, true, nil
}

// Renew is cluster.Config.Renew: it signs a renewed node certificate for
// nodeID, a current member that asked with its own certificate over the
// cluster channel, and records it.
func (a *Admitter) Renew(ctx context.Context, nodeID string, csrDER []byte) ([]byte, error) {
	ca, err := LoadCA(ctx, a.cfg.Node, a.cfg.MasterKey)
	if err != nil {
		return nil, err
	}
	certPEM, cert, err := a.issueNode(ca, nodeID, csrDER, a.cfg.Now())
	if err != nil {
		return nil, err
	}
	rec, _ := json.Marshal(certRecord{Serial: serialHex(cert), NotAfter: cert.NotAfter})
	if _, err := a.cfg.Node.Put(ctx, certPrefix+nodeID, rec); err != nil {
		return nil, fmt.Errorf("recording the renewed certificate: %w", err)
	}
	if err := a.cfg.Record(ctx, Event{Action: "cert.issue", Kind: "node", NodeID: nodeID, Serial: serialHex(cert), NotAfter: cert.NotAfter, By: nodeID, Reason: "renewal"}); err != nil {
		return nil, fmt.Errorf("%w: %v", ErrNotRecorded, err)
	}
	a.cfg.Logger.Info("renewed a node certificate", "node_id", nodeID, "serial", serialHex(cert), "not_after", cert.NotAfter)
	return certPEM, nil
}

// issueNode signs a node certificate for csrDER, valid from after the
// node's last revocation, so that a node re-admitted under an old ID is
// not refused with the certificates removed before it.
func (a *Admitter) issueNode(ca *pki.CA, nodeID string, csrDER []byte, now time.Time) ([]byte, *x509.Certificate, error) {
	if len(csrDER) == 0 {
		return nil, nil, fmt.Errorf("%w: csr: want a DER certificate request", ErrInvalid)
	}
	at := now
	if t, ok := a.cfg.Node.RevokedAt(nodeID); ok {
		// pki backdates NotBefore by a minute for clock skew.
		if floor := t.Add(time.Minute + time.Second); at.Before(floor) {
			at = floor
		}
	}
	certPEM, err := ca.IssueNode(csrDER, nodeID, []string{cluster.DefaultServerName}, nil, a.cfg.NodeCertTTL, at)
	if err != nil {
		return nil, nil, fmt.Errorf("%w: csr: %v", ErrInvalid, err)
	}
	cert, err := pki.ParseCertPEM(certPEM)
	if err != nil {
		return nil, nil, err
	}
	return certPEM, cert, nil
}

// CertExpiry returns when the last node certificate issued to each node
// expires, as this node's state knows it.
func (a *Admitter) CertExpiry(ctx context.Context) (map[string]time.Time, error) {
	kvs, _, err := a.cfg.Node.List(ctx, certPrefix, cluster.Local)
	if err != nil {
		return nil, err
	}
	out := make(map[string]time.Time, len(kvs))
	for _, kv := range kvs {
		var r certRecord
		if json.Unmarshal(kv.Value, &r) == nil {
			out[strings.TrimPrefix(kv.Key, certPrefix)] = r.NotAfter
		}
	}
	return out, nil
}

func parseCSR(der []byte, field string) (*x509.CertificateRequest, error) {
	if len(der) == 0 {
		return nil, fmt.Errorf("%w: %s: want a DER certificate request", ErrInvalid, field)
	}
	csr, err := x509.ParseCertificateRequest(der)
	if err != nil {
		return nil, fmt.Errorf("%w: %s: %v", ErrInvalid, field, err)
	}
	if err := csr.CheckSignature(); err != nil {
		return nil, fmt.Errorf("%w: %s: signature is invalid: %v", ErrInvalid, field, err)
	}
	return csr, nil
}

// checkAddr checks the cluster address of a joining node.
func checkAddr(addr string) error {
	host, port, err := net.SplitHostPort(addr)
	if err != nil || host == "" || port == "" || port == "0" || len(addr) > 300 {
		return fmt.Errorf("%w: addr %.100q: want host:port", ErrInvalid, addr)
	}
	if ip := net.ParseIP(host); ip != nil && ip.IsUnspecified() {
		return fmt.Errorf("%w: addr %q: want an address other nodes can dial", ErrInvalid, addr)
	}
	return nil
}

func serialHex(c *x509.Certificate) string { return c.SerialNumber.Text(16) }

func certNames(c *x509.Certificate) []string {
	out := append([]string(nil), c.DNSNames...)
	for _, ip := range c.IPAddresses {
		out = append(out, ip.String())
	}
	return out
}

func lower(names []string) []string {
	out := make([]string, len(names))
	for i, n := range names {
		out[i] = strings.ToLower(n)
	}
	return out
}

func truncate(s string, n int) string {
	if len(s) > n {
		return s[:n] + "..."
	}
	return s
}

// NoteCert records the node certificate a node runs with, when the store
// does not hold it yet (the first node's, issued offline by ferryd init), so
// that every member's expiry is known.
func (a *Admitter) NoteCert(ctx context.Context, nodeID string, cert *x509.Certificate) error {
	kv, ok, err := a.cfg.Node.Get(ctx, certPrefix+nodeID, cluster.Local)
	if err != nil {
		return err
	}
	var r certRecord
	if ok && json.Unmarshal(kv.Value, &r) == nil && (r.Serial == serialHex(cert) || r.NotAfter.After(cert.NotAfter)) {
		return nil
	}
	rec, _ := json.Marshal(certRecord{Serial: serialHex(cert), NotAfter: cert.NotAfter})
	_, err = a.cfg.Node.Put(ctx, certPrefix+nodeID, rec)
	return err
}
