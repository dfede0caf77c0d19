package api_test

import (
	"bytes"
	"crypto/rand"
	"crypto/x509"
	"crypto/x509/pkix"
	"encoding/base64"
	"net/http"
	"strings"
	"testing"
	"time"

	"github.com/ferryvpn/ferry/authn"
	"github.com/ferryvpn/ferry/cluster/admit"
	"github.com/ferryvpn/ferry/cluster/pki"
	"github.com/ferryvpn/ferry/cmd/internal/apitest"
	"github.com/ferryvpn/ferry/cmd/internal/client"
	"github.com/ferryvpn/ferry/cmd/internal/wire"
)

func TestClusterAPI(t *testing.T) {
	s := apitest.Start(t)
	admin := clientFor(t, s, s.Admin(t))
	alice := clientFor(t, s, s.Token(t, authn.Identity{UserID: "alice"}))
	if _, err := alice.ClusterStatus(bg(t)); status(err) != http.StatusForbidden {
		t.Fatalf("non-admin status: %v", err)
	}
	if err := alice.Backup(bg(t), &bytes.Buffer{}); status(err) != http.StatusForbidden {
		t.Fatalf("non-admin backup: %v", err)
	}
	st, err := admin.ClusterStatus(bg(t))
	if err != nil || !st.Ready || len(st.Members) != 1 || !st.Members[0].Leader {
		t.Fatalf("status: %+v %v", st, err)
	}
	if err := admin.RemoveMember(bg(t), "nobody"); status(err) != http.StatusNotFound {
		t.Fatalf("removing a stranger: %v", err)
	}
	// A backup, then changes, then the backup restored: the changes are gone.
	if _, err := admin.CreateProfile(bg(t), engProfile); err != nil {
		t.Fatal(err)
	}
	var backup bytes.Buffer
	if err := admin.Backup(bg(t), &backup); err != nil || backup.Len() == 0 {
		t.Fatalf("backup: %d bytes, %v", backup.Len(), err)
	}
	if err := admin.DeleteProfile(bg(t), "eng"); err != nil {
		t.Fatal(err)
	}
	damaged := append([]byte(nil), backup.Bytes()...)
	damaged[len(damaged)/2] ^= 1
	if err := admin.Restore(bg(t), bytes.NewReader(damaged)); status(err) != http.StatusBadRequest {
		t.Fatalf("damaged backup: %v", err)
	}
	if _, err := admin.Profile(bg(t), "eng"); status(err) != http.StatusNotFound {
		t.Fatalf("a damaged backup changed state: %v", err)
	}
	if err := admin.Restore(bg(t), bytes.NewReader(backup.Bytes())); err != nil {
		t.Fatal(err)
	}
	if p, err := admin.Profile(bg(t), "eng"); err != nil || p.Name != "eng" {
		t.Fatalf("after restore: %+v %v", p, err)
	}
}

// A join token minted through the API admits a node; only admins get one,
// its lifetime is bounded, and the audit log records it without its text.
func TestJoinTokenAPI(t *testing.T) {
	s := apitest.Start(t)
	admin := clientFor(t, s, s.Admin(t))
	alice := clientFor(t, s, s.Token(t, authn.Identity{UserID: "alice"}))
	if _, err := admin.JoinToken(bg(t), 0, ""); status(err) != http.StatusServiceUnavailable {
		t.Fatalf("join token before the CA is stored: %v", err)
	}
	ca := s.PublishCA(t)
	if _, err := alice.JoinToken(bg(t), 0, ""); status(err) != http.StatusForbidden {
		t.Fatalf("non-admin join token: %v", err)
	}
	for _, ttl := range []time.Duration{-time.Minute, 25 * time.Hour} {
		if _, err := admin.JoinToken(bg(t), ttl, ""); status(err) != http.StatusBadRequest || !strings.Contains(err.Error(), "ttl_seconds") {
			t.Fatalf("ttl %s: %v", ttl, err)
		}
	}
	for _, tc := range []struct {
		ttl, want time.Duration
	}{{0, admit.DefaultTokenTTL}, {time.Minute, time.Minute}, {admit.MaxTokenTTL, admit.MaxTokenTTL}} {
		start := time.Now()
		tok, err := admin.JoinToken(bg(t), tc.ttl, "")
		if err != nil {
			t.Fatal(err)
		}
		if lo, hi := start.Add(tc.want-time.Second), time.Now().Add(tc.want); tok.Expires.Before(lo) || tok.Expires.After(hi) {
			t.Errorf("ttl %s: expires %s, want between %s and %s", tc.ttl, tok.Expires, lo, hi)
		}
	}
	tok, err := admin.JoinToken(bg(t), 0, "")
	if err != nil {
		t.Fatal(err)
	}

	// The token admits a node: the join endpoint issues its certificates.
	nodeKey, err := pki.NewKey()
	if err != nil {
		t.Fatal(err)
	}
	csr, err := pki.NewCSR(nodeKey, "n2")
	if err != nil {
		t.Fatal(err)
	}
	apiKey, err := pki.NewKey()
	if err != nil {
		t.Fatal(err)
	}
	apiCSR, err := x509.CreateCertificateRequest(rand.Reader, &x509.CertificateRequest{Subject: pkix.Name{CommonName: "n2"}, DNSNames: []string{"localhost"}}, apiKey)
	if err != nil {
		t.Fatal(err)
	}
	resp, err := clientFor(t, s, "").Join(bg(t), wire.JoinRequest{
		Token: tok.Token, NodeID: "n2", Addr: "127.0.0.1:1", CSR: base64.StdEncoding.EncodeToString(csr), APICSR: base64.StdEncoding.EncodeToString(apiCSR),
	})
	if err != nil || resp.CAPEM != string(ca.CertPEM()) {
		t.Fatalf("joining with the minted token: %v", err)
	}

	var records bytes.Buffer
	if err := admin.AuditRecords(bg(t), client.AuditQuery{Types: []string{"cluster.*"}}, &records); err != nil {
		t.Fatal(err)
	}
	if n := strings.Count(records.String(), `"join_token.create"`); n != 4 {
		t.Errorf("%d join token records, want 4:\n%s", n, records.String())
	}
	if !strings.Contains(records.String(), `"user_id":"admin"`) {
		t.Errorf("join token records lack the admin:\n%s", records.String())
	}
	// The redemption and both certificates are on record, with serials.
	for _, want := range []string{`"join_token.redeem"`, `"kind":"node"`, `"kind":"api"`, `"serial":`} {
		if !strings.Contains(records.String(), want) {
			t.Errorf("audit records lack %s:\n%s", want, records.String())
		}
	}
	recs, err := s.Cluster.Node(0).JournalRange(1, ^uint64(0), 1<<20)
	if err != nil {
		t.Fatal(err)
	}
	for _, r := range recs {
		if bytes.Contains(r.Data, []byte(tok.Token)) {
			t.Fatalf("audit record %d holds the join token", r.Seq)
		}
	}
}

// A restore sent to a follower's API, as a load balancer may, reaches the
// leader; every node ends with the backup's state, and the restore is on
// record.
func TestRestoreThroughFollowerAPI(t *testing.T) {
	ss := apitest.StartCluster(t, 3)
	c := ss[0].Cluster
	leader := c.Leader(5 * time.Second)
	f := ss[(leader+1)%3]
	tok := ss[leader].Admin(t)
	admin := clientFor(t, f, tok)
	if _, err := admin.CreateProfile(bg(t), engProfile); err != nil {
		t.Fatal(err)
	}
	c.WaitConverged(15 * time.Second) // the backup is of the follower's applied state
	var backup bytes.Buffer
	if err := admin.Backup(bg(t), &backup); err != nil {
		t.Fatal(err)
	}
	if err := admin.DeleteProfile(bg(t), "eng"); err != nil {
		t.Fatal(err)
	}
	if err := admin.Restore(bg(t), bytes.NewReader(flipByte(backup.Bytes(), backup.Len()/2))); status(err) != http.StatusBadRequest {
		t.Fatalf("damaged backup through a follower: %v", err)
	}
	if err := clientFor(t, f, ss[leader].Token(t, authn.Identity{UserID: "alice"})).Restore(bg(t), bytes.NewReader(backup.Bytes())); status(err) != http.StatusForbidden {
		t.Fatalf("non-admin restore: %v", err)
	}
	if err := admin.Restore(bg(t), bytes.NewReader(backup.Bytes())); err != nil {
		t.Fatalf("restore through follower %s: %v", c.ID(f.Node), err)
	}
	c.WaitConverged(15 * time.Second)
	for i, s := range ss {
		if p, err := clientFor(t, s, tok).Profile(bg(t), "eng"); err != nil || p.Name != "eng" {
			t.Fatalf("node %s after restore: %+v %v", c.ID(i), p, err)
		}
	}
	// The record is committed before the answer, but the follower may
	// apply it a moment later.
	c.WaitConverged(15 * time.Second)
	var records bytes.Buffer
	if err := admin.AuditRecords(bg(t), client.AuditQuery{Types: []string{"cluster.*"}}, &records); err != nil {
		t.Fatal(err)
	}
	if !strings.Contains(records.String(), `"restore"`) {
		t.Errorf("no restore record:\n%s", records.String())
	}
}

func flipByte(b []byte, i int) []byte {
	out := append([]byte(nil), b...)
	out[i] ^= 0x40
	return out
}

// The clients' idea of a join token's lifetime is the cluster's.
func TestJoinTokenLimitsAgree(t *testing.T) {
	if wire.DefaultJoinTokenTTL != admit.DefaultTokenTTL || wire.MaxJoinTokenTTL != admit.MaxTokenTTL {
		t.Fatalf("wire says %s (max %s), admit %s (max %s)", wire.DefaultJoinTokenTTL, wire.MaxJoinTokenTTL, admit.DefaultTokenTTL, admit.MaxTokenTTL)
	}
}

// POST /v1/cluster/members is for administrators only, and refuses an
// address that does not answer with the named node's certificate: the
// membership stays as it was and the cluster keeps its quorum.
func TestAddMemberAPI(t *testing.T) {
	s := apitest.Start(t)
	node := s.Cluster.Node(0)
	before := len(node.Status().Members)
	alice := clientFor(t, s, s.Token(t, authn.Identity{UserID: "alice"}))
	if _, err := alice.AddMember(bg(t), wire.MembersRequest{NodeID: "n9", Addr: "127.0.0.1:1"}); status(err) != http.StatusForbidden {
		t.Fatalf("non-admin: %v", err)
	}
	if _, err := clientFor(t, s, "").AddMember(bg(t), wire.MembersRequest{NodeID: "n9", Addr: "127.0.0.1:1"}); status(err) != http.StatusUnauthorized {
		t.Fatalf("anonymous: %v", err)
	}
	admin := clientFor(t, s, s.Admin(t))
	for _, addr := range []string{"127.0.0.1:1", node.Addr()} {
		if _, err := admin.AddMember(bg(t), wire.MembersRequest{NodeID: "n9", Addr: addr}); status(err) != http.StatusBadRequest || !strings.Contains(err.Error(), "does not answer as that node") {
			t.Fatalf("admin adding n9 at %s: %v", addr, err)
		}
	}
	if n := len(node.Status().Members); n != before {
		t.Fatalf("%d members after refusals, want %d", n, before)
	}
	if _, err := node.Put(bg(t), "still", []byte("writable")); err != nil {
		t.Fatal(err)
	}
}
