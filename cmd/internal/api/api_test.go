package api

import (
	"context"
	"crypto/x509"
	"encoding/json"
	"io"
	"net"
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"
	"time"

	"github.com/ferryvpn/ferry/cluster"
	"github.com/ferryvpn/ferry/cluster/pki"
	"github.com/ferryvpn/ferry/cluster/seal"
	"github.com/ferryvpn/ferry/cmd/internal/wire"
)

func get(t *testing.T, url string) (*http.Response, string) {
	t.Helper()
	resp, err := http.Get(url)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	b, _ := io.ReadAll(resp.Body)
	return resp, string(b)
}

func TestHealthAndReadiness(t *testing.T) {
	ready := newTestCluster(t)

	// A node that never bootstrapped nor joined knows no leader.
	lone := startNode(t, ready.ca, "n9", nodeCert(t, ready.ca, "n9"), false)
	h, err := New(Config{Node: lone, MasterKey: ready.master})
	if err != nil {
		t.Fatal(err)
	}
	srv := httptest.NewServer(h)
	defer srv.Close()

	tests := []struct {
		name       string
		url        string
		wantStatus int
		wantBody   string
	}{
		{"healthz", ready.url + wire.PathHealthz, 200, "ok\n"},
		{"readyz ready", ready.url + wire.PathReadyz, 200, "ok\n"},
		{"healthz while not ready", srv.URL + wire.PathHealthz, 200, "ok\n"},
		{"readyz without leader", srv.URL + wire.PathReadyz, 503, "not ready: no leader known\n"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			resp, body := get(t, tt.url)
			if resp.StatusCode != tt.wantStatus || body != tt.wantBody {
				t.Errorf("got %d %q, want %d %q", resp.StatusCode, body, tt.wantStatus, tt.wantBody)
			}
		})
	}
}

func TestRoutesAndHeaders(t *testing.T) {
	tc := newTestCluster(t)
	tests := []struct {
		name, method, path string
		wantStatus         int
		wantBody, allow    string
	}{
		{"unknown path", "GET", "/nope", 404, `{"error":"no such endpoint: /nope"}`, ""},
		{"GET on join", "GET", wire.PathJoin, 405, `"method GET not allowed; use POST"`, "POST"},
		{"POST on readyz", "POST", wire.PathReadyz, 405, `use GET, HEAD`, "GET, HEAD"},
		{"HEAD on healthz", "HEAD", wire.PathHealthz, 200, "", ""},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			req, _ := http.NewRequest(tt.method, tc.url+tt.path, nil)
			resp, err := http.DefaultClient.Do(req)
			if err != nil {
				t.Fatal(err)
			}
			defer resp.Body.Close()
			b, _ := io.ReadAll(resp.Body)
			if resp.StatusCode != tt.wantStatus || !strings.Contains(string(b), tt.wantBody) {
				t.Errorf("got %d %s, want %d containing %s", resp.StatusCode, b, tt.wantStatus, tt.wantBody)
			}
			if got := resp.Header.Get("Allow"); got != tt.allow {
				t.Errorf("Allow = %q, want %q", got, tt.allow)
			}
			for _, h := range []string{"Strict-Transport-Security", "X-Content-Type-Options", "X-Frame-Options", "Content-Security-Policy", "Cache-Control"} {
				if resp.Header.Get(h) == "" {
					t.Errorf("header %s missing", h)
				}
			}
		})
	}
}

// joinBody returns a valid join request for n2 as JSON, with the node key.
func joinBody(t testing.TB, tok string) (wire.JoinRequest, string) {
	t.Helper()
	_, csr := csrB64(t, "n2", nil, nil)
	_, apiCSR := csrB64(t, "", []string{"n2.example.com"}, []net.IP{net.IPv4(127, 0, 0, 1)})
	req := wire.JoinRequest{Token: tok, NodeID: "n2", CSR: csr, APICSR: apiCSR}
	b, _ := json.Marshal(req)
	return req, string(b)
}

func TestJoinIssuesCertificates(t *testing.T) {
	tc := newTestCluster(t)
	tok := tc.token(t, time.Now().Add(time.Hour))
	_, body := joinBody(t, tok)
	status, out := tc.post(t, wire.PathJoin, "application/json", body)
	if status != 200 {
		t.Fatalf("join: %d %s", status, out)
	}
	var resp wire.JoinResponse
	if err := json.Unmarshal([]byte(out), &resp); err != nil {
		t.Fatal(err)
	}
	if resp.CAPEM != string(tc.ca.CertPEM()) {
		t.Errorf("ca_pem is not the cluster CA")
	}
	roots := tc.ca.Pool()
	node, err := pki.ParseCertPEM([]byte(resp.CertPEM))
	if err != nil {
		t.Fatal(err)
	}
	if node.Subject.CommonName != "n2" {
		t.Errorf("node cert CN = %q", node.Subject.CommonName)
	}
	for _, ku := range []x509.ExtKeyUsage{x509.ExtKeyUsageClientAuth, x509.ExtKeyUsageServerAuth} {
		if _, err := node.Verify(x509.VerifyOptions{Roots: roots, DNSName: cluster.DefaultServerName, KeyUsages: []x509.ExtKeyUsage{ku}}); err != nil {
			t.Errorf("node cert does not verify for usage %v: %v", ku, err)
		}
	}
	api, err := pki.ParseCertPEM([]byte(resp.APICertPEM))
	if err != nil {
		t.Fatal(err)
	}
	if _, err := api.Verify(x509.VerifyOptions{Roots: roots, DNSName: "n2.example.com"}); err != nil {
		t.Errorf("API cert does not verify as a server: %v", err)
	}
	if _, err := api.Verify(x509.VerifyOptions{Roots: roots, KeyUsages: []x509.ExtKeyUsage{x509.ExtKeyUsageClientAuth}}); err == nil {
		t.Errorf("API cert verifies as a client certificate; it must not pass as a node's")
	}
	if strings.Contains(tc.logs.String(), tok) {
		t.Errorf("the log holds the join token")
	}
}

func TestJoinRefusals(t *testing.T) {
	tc := newTestCluster(t)
	good := tc.token(t, time.Now().Add(time.Hour))
	otherCA, err := pki.NewCA("other CA", time.Hour, time.Now())
	if err != nil {
		t.Fatal(err)
	}
	otherMaster, _ := seal.GenerateKey()
	wrongCA, _ := NewJoinToken(tc.master, otherCA.Cert, time.Now().Add(time.Hour))
	wrongKey, _ := NewJoinToken(otherMaster, tc.ca.Cert, time.Now().Add(time.Hour))
	// Flip one character in the middle of the MAC.
	i := len(good) - 20
	flip := byte('A')
	if good[i] == 'A' {
		flip = 'B'
	}
	tampered := good[:i] + string(flip) + good[i+1:]

	with := func(f func(*wire.JoinRequest)) string {
		req, _ := joinBody(t, good)
		f(&req)
		b, _ := json.Marshal(req)
		return string(b)
	}
	tests := []struct {
		name        string
		contentType string
		body        string
		wantStatus  int
		wantMsg     string
	}{
		{"tampered token", "", with(func(r *wire.JoinRequest) { r.Token = tampered }), 401, "join token refused"},
		{"expired token", "", with(func(r *wire.JoinRequest) { r.Token = tc.token(t, time.Now().Add(-time.Second)) }), 401, "join token refused"},
		{"token for another CA", "", with(func(r *wire.JoinRequest) { r.Token = wrongCA }), 401, "join token refused"},
		{"token of another master key", "", with(func(r *wire.JoinRequest) { r.Token = wrongKey }), 401, "join token refused"},
		{"malformed token", "", with(func(r *wire.JoinRequest) { r.Token = "let me in" }), 401, "join token refused"},
		{"no token", "", with(func(r *wire.JoinRequest) { r.Token = "" }), 401, "join token refused"},
		{"invalid node id", "", with(func(r *wire.JoinRequest) { r.NodeID = "N2" }), 400, "node_id: invalid node ID"},
		{"existing member", "", with(func(r *wire.JoinRequest) { r.NodeID = "n1" }), 409, `node_id "n1" is already a member`},
		{"csr not base64", "", with(func(r *wire.JoinRequest) { r.CSR = "!!" }), 400, "csr: want a DER certificate request"},
		{"csr for another node", "", with(func(r *wire.JoinRequest) { _, r.CSR = csrB64(t, "n3", nil, nil) }), 400, `csr: pki: certificate request is for common name "n3"`},
		{"api csr without names", "", with(func(r *wire.JoinRequest) { _, r.APICSR = csrB64(t, "", nil, nil) }), 400, "api_csr: want 1 to 16 DNS names"},
		{"api csr with the node name", "", with(func(r *wire.JoinRequest) { _, r.APICSR = csrB64(t, "", []string{cluster.DefaultServerName}, nil) }), 400, "reserved for node certificates"},
		{"api csr bad name", "", with(func(r *wire.JoinRequest) { _, r.APICSR = csrB64(t, "", []string{"*.example.com"}, nil) }), 400, "is not a host name"},
		{"truncated JSON", "", `{"token": "x"`, 400, "request body ends inside the JSON object"},
		{"invalid JSON", "", `{"token": x}`, 400, "request body is not valid JSON: invalid character 'x'"},
		{"unknown field", "", `{"tokn": "x"}`, 400, `request body: unknown field "tokn"`},
		{"wrong type", "", `{"token": 5}`, 400, `request body: field "token": want string, found number`},
		{"not an object", "", `[]`, 400, "want a JSON object, found array"},
		{"trailing data", "", `{} {}`, 400, "unexpected data after the JSON object"},
		{"empty body", "", ``, 400, "request body is empty"},
		{"oversized body", "", `{"token": "` + strings.Repeat("a", wire.MaxBodyBytes) + `"}`, 413, "request body is larger than 65536 bytes"},
		{"form content type", "application/x-www-form-urlencoded", with(func(*wire.JoinRequest) {}), 415, "must be application/json"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			before := storeState(t, tc.node)
			ct := tt.contentType
			if ct == "" {
				ct = "application/json; charset=utf-8"
			}
			status, out := tc.post(t, wire.PathJoin, ct, tt.body)
			var e wire.Error
			if err := json.Unmarshal([]byte(out), &e); err != nil {
				t.Fatalf("answer is not a JSON error: %q", out)
			}
			if status != tt.wantStatus || !strings.Contains(e.Error, tt.wantMsg) {
				t.Errorf("got %d %q, want %d containing %q", status, e.Error, tt.wantStatus, tt.wantMsg)
			}
			if after := storeState(t, tc.node); after != before {
				t.Errorf("store changed: %s -> %s", before, after)
			}
		})
	}
	if strings.Contains(tc.logs.String(), good[20:]) {
		t.Errorf("the log holds a join token")
	}
}

// TestJoinAndAddMember runs a whole join: certificates, a second node
// started with them, and its addition as a voter.
func TestJoinAndAddMember(t *testing.T) {
	tc := newTestCluster(t)
	tok := tc.token(t, time.Now().Add(time.Hour))
	key, csr := csrB64(t, "n2", nil, nil)
	_, apiCSR := csrB64(t, "", []string{"localhost"}, nil)
	b, _ := json.Marshal(wire.JoinRequest{Token: tok, NodeID: "n2", CSR: csr, APICSR: apiCSR})
	status, out := tc.post(t, wire.PathJoin, "application/json", string(b))
	if status != 200 {
		t.Fatalf("join: %d %s", status, out)
	}
	var jr wire.JoinResponse
	if err := json.Unmarshal([]byte(out), &jr); err != nil {
		t.Fatal(err)
	}
	n2 := startNode(t, tc.ca, "n2", keyPair(t, []byte(jr.CertPEM), key), false)

	members := func(tok, id, addr string) (int, string) {
		b, _ := json.Marshal(wire.MembersRequest{Token: tok, NodeID: id, Addr: addr})
		return tc.post(t, wire.PathMembers, "application/json", string(b))
	}
	refusals := []struct {
		name, token, id, addr string
		wantStatus            int
		wantMsg               string
	}{
		{"bad token", "ferry-join.nope", "n2", n2.Addr(), 401, "join token refused"},
		{"expired token", tc.token(t, time.Now().Add(-time.Second)), "n2", n2.Addr(), 401, "join token refused"},
		{"invalid node id", tok, "n_2", n2.Addr(), 400, "node_id: invalid node ID"},
		{"address without port", tok, "n2", "127.0.0.1", 400, "addr:"},
		{"unspecified address", tok, "n2", "0.0.0.0:7946", 400, "addr:"},
		{"port zero", tok, "n2", "127.0.0.1:0", 400, "addr:"},
		{"existing member moved", tok, "n1", n2.Addr(), 409, `node_id "n1" is already a member at`},
		{"address of a member", tok, "n2", tc.node.Addr(), 409, `is already the address of member "n1"`},
	}
	for _, tt := range refusals {
		t.Run(tt.name, func(t *testing.T) {
			before := storeState(t, tc.node)
			status, out := members(tt.token, tt.id, tt.addr)
			var e wire.Error
			json.Unmarshal([]byte(out), &e)
			if status != tt.wantStatus || !strings.Contains(e.Error, tt.wantMsg) {
				t.Errorf("got %d %s, want %d containing %q", status, out, tt.wantStatus, tt.wantMsg)
			}
			if after := storeState(t, tc.node); after != before {
				t.Errorf("store or membership changed: %s -> %s", before, after)
			}
		})
	}

	status, out = members(tok, "n2", n2.Addr())
	if status != 200 || !strings.Contains(out, `"id":"n2"`) {
		t.Fatalf("members: %d %s", status, out)
	}
	waitFor(t, "n2 ready", 20*time.Second, n2.Ready)
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	if _, ok, err := n2.Get(ctx, "sys/ca/cert", cluster.Linearizable); err != nil || !ok {
		t.Errorf("n2 does not see the replicated CA: ok=%v err=%v", ok, err)
	}

	if status, out := members(tok, "n2", n2.Addr()); status != 200 {
		t.Errorf("repeated members call: %d %s, want 200 (idempotent)", status, out)
	}
	if status, out := tc.post(t, wire.PathJoin, "application/json", string(b)); status != 409 {
		t.Errorf("join of a member: %d %s, want 409", status, out)
	}
}
