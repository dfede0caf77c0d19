package api

import (
	"context"
	"crypto/x509"
	"encoding/json"
	"fmt"
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
	req := wire.JoinRequest{Token: tok, NodeID: "n2", Addr: "127.0.0.1:1", CSR: csr, APICSR: apiCSR}
	b, _ := json.Marshal(req)
	return req, string(b)
}

func TestJoinIssuesCertificates(t *testing.T) {
	tc := newTestCluster(t)
	tok := tc.token(t, time.Now().Add(time.Hour), "")
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
	if life := node.NotAfter.Sub(node.NotBefore); life > 8*24*time.Hour {
		t.Errorf("node certificate valid for %s; node certificates are short-lived", life)
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
	// Admitted as a non-voter in the same step: it does not vote, so a
	// node that never starts costs the cluster no quorum.
	var n2 *cluster.Member
	for _, m := range tc.node.Status().Members {
		if m.ID == "n2" {
			n2 = &m
		}
	}
	if n2 == nil || n2.Voter || n2.Addr != "127.0.0.1:1" {
		t.Errorf("n2 after join: %+v, want a non-voter at 127.0.0.1:1", n2)
	}
	if strings.Contains(tc.logs.String(), tok) {
		t.Errorf("the log holds the join token")
	}
	// A token buys one join.
	_, again := joinBody(t, tok)
	if status, out := tc.post(t, wire.PathJoin, "application/json", strings.Replace(again, `"n2"`, `"n3"`, 1)); status != 401 || !strings.Contains(out, "already used") {
		t.Errorf("second use of the token: %d %s, want 401 already used", status, out)
	}
}

func TestJoinRefusals(t *testing.T) {
	tc := newTestCluster(t)
	good := tc.token(t, time.Now().Add(time.Hour), "")
	otherCA, err := pki.NewCA("other CA", time.Hour, time.Now())
	if err != nil {
		t.Fatal(err)
	}
	otherMaster, _ := seal.GenerateKey()
	wrongCA, _ := pki.NewJoinTokenFor(seal.DeriveKey(tc.master, "join-token"), pki.Fingerprint(otherCA.Cert), time.Now().Add(time.Hour), "")
	wrongKey, _ := pki.NewJoinTokenFor(seal.DeriveKey(otherMaster, "join-token"), pki.Fingerprint(tc.ca.Cert), time.Now().Add(time.Hour), "")
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
		{"tampered token", "", with(func(r *wire.JoinRequest) { r.Token = tampered }), 401, "signature does not verify"},
		{"expired token", "", with(func(r *wire.JoinRequest) { r.Token = tc.token(t, time.Now().Add(-time.Second), "") }), 401, "join token expired"},
		{"token for another cluster", "", with(func(r *wire.JoinRequest) { r.Token = wrongCA }), 401, "made for another cluster"},
		{"token of another master key", "", with(func(r *wire.JoinRequest) { r.Token = wrongKey }), 401, "signature does not verify"},
		{"token bound to another node", "", with(func(r *wire.JoinRequest) { r.Token = tc.token(t, time.Now().Add(time.Hour), "n7") }), 401, "signature does not verify"},
		{"malformed token", "", with(func(r *wire.JoinRequest) { r.Token = "let me in" }), 401, "malformed join token"},
		{"no token", "", with(func(r *wire.JoinRequest) { r.Token = "" }), 401, "malformed join token"},
		{"invalid node id", "", with(func(r *wire.JoinRequest) { r.NodeID = "N2" }), 400, "node_id: pki: invalid node ID"},
		{"existing member", "", with(func(r *wire.JoinRequest) { r.NodeID = "n1" }), 409, `node_id "n1"`},
		{"no address", "", with(func(r *wire.JoinRequest) { r.Addr = "" }), 400, "addr"},
		{"unspecified address", "", with(func(r *wire.JoinRequest) { r.Addr = "0.0.0.0:7946" }), 400, "addr"},
		{"address of a member", "", with(func(r *wire.JoinRequest) { r.Addr = tc.node.Addr() }), 409, `is the address of member "n1"`},
		{"csr not base64", "", with(func(r *wire.JoinRequest) { r.CSR = "!!" }), 400, "csr: want a DER certificate request"},
		{"csr for another node", "", with(func(r *wire.JoinRequest) { _, r.CSR = csrB64(t, "n3", nil, nil) }), 400, `certificate request is for common name "n3"`},
		{"api csr without names", "", with(func(r *wire.JoinRequest) { _, r.APICSR = csrB64(t, "", nil, nil) }), 400, "api_csr: want 1 to 16 DNS names"},
		{"api csr with the node name", "", with(func(r *wire.JoinRequest) { _, r.APICSR = csrB64(t, "", []string{cluster.DefaultServerName}, nil) }), 403, "reserved for node certificates"},
		{"api csr with the node name in capitals", "", with(func(r *wire.JoinRequest) { _, r.APICSR = csrB64(t, "", []string{"FERRY-CLUSTER"}, nil) }), 403, "reserved for node certificates"},
		{"api csr with the node name mixed case", "", with(func(r *wire.JoinRequest) { _, r.APICSR = csrB64(t, "", []string{"Ferry-Cluster"}, nil) }), 403, "reserved for node certificates"},
		{"api csr for an unconfigured name", "", with(func(r *wire.JoinRequest) { _, r.APICSR = csrB64(t, "", []string{"vpn.example.com"}, nil) }), 403, "not one of the cluster's API names"},
		{"api csr for an unconfigured address", "", with(func(r *wire.JoinRequest) { _, r.APICSR = csrB64(t, "", nil, []net.IP{net.IPv4(10, 9, 9, 9)}) }), 403, "not one of the cluster's API names"},
		{"api csr bad name", "", with(func(r *wire.JoinRequest) { _, r.APICSR = csrB64(t, "", []string{"*.example.com"}, nil) }), 403, "is not a host name"},
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

// TestJoinThenPromotion runs a whole join: the token admits n2 as a
// non-voter with its certificates; n2 starts with them, catches up and is
// promoted to voter with no further call.
func TestJoinThenPromotion(t *testing.T) {
	tc := newTestCluster(t)
	tok := tc.token(t, time.Now().Add(time.Hour), "n2")
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	key, csr := csrB64(t, "n2", nil, nil)
	_, apiCSR := csrB64(t, "", []string{"localhost"}, nil)
	b, _ := json.Marshal(wire.JoinRequest{Token: tok, NodeID: "n2", Addr: ln.Addr().String(), CSR: csr, APICSR: apiCSR})
	status, out := tc.post(t, wire.PathJoin, "application/json", string(b))
	if status != 200 {
		ln.Close()
		t.Fatalf("join: %d %s", status, out)
	}
	var jr wire.JoinResponse
	if err := json.Unmarshal([]byte(out), &jr); err != nil {
		t.Fatal(err)
	}
	n2 := startNodeOn(t, tc.ca, "n2", keyPair(t, []byte(jr.CertPEM), key), false, ln)
	waitFor(t, "n2 promoted to voter", 20*time.Second, func() error {
		for _, m := range tc.node.Status().Members {
			if m.ID == "n2" && m.Voter {
				return nil
			}
		}
		return fmt.Errorf("members %+v", tc.node.Status().Members)
	})
	waitFor(t, "n2 ready", 20*time.Second, n2.Ready)
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	if _, ok, err := n2.Get(ctx, "sys/ca/cert", cluster.Linearizable); err != nil || !ok {
		t.Errorf("n2 does not see the replicated CA: ok=%v err=%v", ok, err)
	}
	if status, out := tc.post(t, wire.PathJoin, "application/json", string(b)); status != 401 && status != 409 {
		t.Errorf("join again with the same token: %d %s, want a refusal", status, out)
	}
}
