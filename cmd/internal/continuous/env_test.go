package continuous_test

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"net"
	"net/http"
	"net/netip"
	"net/url"
	"os"
	"path/filepath"
	"regexp"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/coreos/go-oidc/v3/oidc"
	"golang.org/x/oauth2"
	"golang.zx2c4.com/wireguard/wgctrl/wgtypes"

	"github.com/ferryvpn/ferry/authn"
	"github.com/ferryvpn/ferry/authn/devop"
	"github.com/ferryvpn/ferry/cluster/clustertest"
	"github.com/ferryvpn/ferry/cluster/seal"
	"github.com/ferryvpn/ferry/profiles"
	"github.com/ferryvpn/ferry/tunnel/tunneltest"
)

func TestMain(m *testing.M) {
	tunneltest.RegisterExtension(extName, startAccess)
	tunneltest.MaybeRunAgent()
	os.Exit(m.Run())
}

// The OP's registration, and the address it answers at (over a unix
// socket, whatever the host: the nodes run in other namespaces).
const (
	opIssuer   = "http://127.0.0.1:1"
	opClient   = "ferry"
	opSecret   = "continuous-secret"
	opRedirect = "http://127.0.0.1/callback"
	adminGroup = "ferry-admins"
	poolCIDR   = "100.64.0.0/16"
)

// env is three ferry nodes in network namespaces behind one switch, a VPC
// with an echo service, a client namespace, and the development OP served
// by the test process.
type env struct {
	t       testing.TB
	net     *tunneltest.Net
	op      *devop.Provider
	opHTTP  *http.Client
	nodes   []*tunneltest.Agent
	vpc     *tunneltest.Agent
	client  *tunneltest.Agent
	cliNS   string
	cliIf   string
	srvKey  wgtypes.Key
	opUsers []devop.User
}

func startEnv(t testing.TB, users []devop.User) *env {
	t.Helper()
	tunneltest.Require(t, "nft", "sysctl")
	e := &env{t: t, net: tunneltest.NewNet(t), opUsers: users}
	dir := t.TempDir()

	// The OP, on a unix socket every agent dials.
	sock := filepath.Join(dir, "op.sock")
	op, err := devop.New(devop.Config{Issuer: opIssuer, ClientID: opClient, ClientSecret: opSecret,
		RedirectURIs: []string{opRedirect}, Users: users})
	if err != nil {
		t.Fatal(err)
	}
	e.op = op
	ln, err := net.Listen("unix", sock)
	if err != nil {
		t.Fatal(err)
	}
	srv := &http.Server{Handler: op.Handler(), ReadHeaderTimeout: 10 * time.Second}
	go srv.Serve(ln)
	t.Cleanup(func() { srv.Close() })
	e.opHTTP = &http.Client{
		Timeout: 10 * time.Second,
		Transport: &http.Transport{DialContext: func(ctx context.Context, _, _ string) (net.Conn, error) {
			return (&net.Dialer{}).DialContext(ctx, "unix", sock)
		}},
		CheckRedirect: func(*http.Request, []*http.Request) error { return http.ErrUseLastResponse },
	}
	key, err := seal.GenerateKey()
	if err != nil {
		t.Fatal(err)
	}
	keyFile := filepath.Join(dir, "master.key")
	if err := seal.WriteKeyFile(keyFile, key); err != nil {
		t.Fatal(err)
	}
	ext, err := json.Marshal(accessConfig{MasterKey: keyFile, Issuer: opIssuer, ClientID: opClient, ClientSecret: opSecret,
		OPSocket: sock, AdminGroups: []string{adminGroup}, Pool: poolCIDR})
	if err != nil {
		t.Fatal(err)
	}

	// The network: a switch, three nodes, a VPC behind every node, a client.
	n := e.net
	sw := n.NS("fasw")
	n.Must("ip", "-n", sw, "link", "add", "br0", "type", "bridge")
	n.Must("ip", "-n", sw, "link", "set", "br0", "up")
	vpc := n.NS("fav")
	n.Must("ip", "-n", vpc, "addr", "add", "10.99.0.1/32", "dev", "lo")
	var srvNS []string
	for i := 1; i <= 4; i++ {
		base := fmt.Sprintf("fas%d", i)
		addr := fmt.Sprintf("10.210.0.%d/24", i)
		if i == 4 {
			base, addr = "fac", "10.210.0.11/24"
		}
		ns := n.NS(base)
		n.Veth(ns, "u0", addr, sw, n.Name("fa"+base[2:]+"-"), "")
		n.Must("ip", "-n", sw, "link", "set", n.Name("fa"+base[2:]+"-"), "master", "br0")
		if i == 4 {
			e.cliNS = ns
			break
		}
		srvNS = append(srvNS, ns)
		n.Veth(ns, "v0", fmt.Sprintf("10.211.%d.2/24", i), vpc, fmt.Sprintf("s%d", i), fmt.Sprintf("10.211.%d.1/24", i))
		n.Must("ip", "-n", ns, "route", "add", "10.99.0.0/24", "via", fmt.Sprintf("10.211.%d.1", i))
	}
	e.vpc = tunneltest.StartAgent(t, n, vpc, "vpc", tunneltest.AgentConfig{Echo: []string{"tcp:0.0.0.0:7001", "tcp:0.0.0.0:7002"}})

	ca := clustertest.NewCA(t)
	caKey, err := ca.KeyPEM()
	if err != nil {
		t.Fatal(err)
	}
	if e.srvKey, err = wgtypes.GeneratePrivateKey(); err != nil {
		t.Fatal(err)
	}
	for i, ns := range srvNS {
		id := fmt.Sprintf("n%d", i+1)
		bind := fmt.Sprintf("10.210.0.%d:7946", i+1)
		a := tunneltest.StartAgent(t, n, ns, "s"+id, tunneltest.AgentConfig{Server: &tunneltest.ServerConfig{
			NodeID: id, DataDir: filepath.Join(t.TempDir(), id), Bind: bind, Bootstrap: i == 0,
			CACert: ca.CertPEM(), CAKey: caKey, Interface: n.Name(fmt.Sprintf("faw%d-", i+1)), PrivateKey: e.srvKey.String(),
			Address: "100.64.0.1/16", PollInterval: 200 * time.Millisecond, DenyInterval: time.Second, FlowWindow: time.Second,
			NoFlows: true, Extension: extName, ExtensionConfig: ext,
		}})
		if i == 0 {
			a.Must(t, tunneltest.Request{Op: "leader"})
		} else {
			e.nodes[0].Must(t, tunneltest.Request{Op: "addvoter", ID: id, Addr: bind})
		}
		e.nodes = append(e.nodes, a)
	}
	e.client = tunneltest.StartAgent(t, n, e.cliNS, "client", tunneltest.AgentConfig{})
	e.cliIf = n.Name("facw-")

	// The profile: group eng reaches 10.99.0.1:7001.
	prof := profiles.Profile{Name: "eng", MaxSession: time.Hour, MaxDevices: 5, Groups: []string{"eng"},
		Rules: []profiles.Rule{{CIDR: netip.MustParsePrefix("10.99.0.1/32"), Protocol: "tcp", Ports: []profiles.PortRange{{From: 7001, To: 7001}}}}}
	data, err := json.Marshal(prof)
	if err != nil {
		t.Fatal(err)
	}
	e.nodes[0].Must(t, tunneltest.Request{Op: "put", Key: profiles.ProfilePrefix + "eng", Value: data})
	return e
}

var hiddenRequestID = regexp.MustCompile(`name="authRequestID" value="([^"]+)"`)

// signIn runs the OP's authorization code flow for username with
// offline_access, as ferry's sign-in does, and stores the user and their
// refresh token through node; it returns the user's identity (with ferry's
// user ID).
func (e *env) signIn(username string, node int) authn.Identity {
	t := e.t
	t.Helper()
	ctx := oidc.ClientContext(context.Background(), e.opHTTP)
	p, err := oidc.NewProvider(ctx, opIssuer)
	if err != nil {
		t.Fatal(err)
	}
	oc := &oauth2.Config{ClientID: opClient, ClientSecret: opSecret, Endpoint: p.Endpoint(), RedirectURL: opRedirect,
		Scopes: []string{oidc.ScopeOpenID, "email", "profile", oidc.ScopeOfflineAccess}}
	get := func(u string) *http.Response {
		t.Helper()
		resp, err := e.opHTTP.Get(u)
		if err != nil {
			t.Fatal(err)
		}
		return resp
	}
	resp := get(oc.AuthCodeURL("state", oidc.Nonce("nonce")))
	resp.Body.Close()
	form := get(abs(resp.Header.Get("Location")))
	body := new(strings.Builder)
	_, _ = fmt.Fprint(body, readAll(form))
	m := hiddenRequestID.FindStringSubmatch(body.String())
	if m == nil {
		t.Fatalf("no login form at the OP:\n%s", body)
	}
	pass := ""
	for _, u := range e.opUsers {
		if u.Username == username {
			pass = u.Password
		}
	}
	resp, err = e.opHTTP.PostForm(opIssuer+"/ui/login", url.Values{"authRequestID": {m[1]}, "username": {username}, "password": {pass}})
	if err != nil {
		t.Fatal(err)
	}
	resp.Body.Close()
	resp = get(abs(resp.Header.Get("Location")))
	resp.Body.Close()
	cb, err := url.Parse(resp.Header.Get("Location"))
	if err != nil || cb.Query().Get("code") == "" {
		t.Fatalf("no code from the OP: %v %q", err, resp.Header.Get("Location"))
	}
	tok, err := oc.Exchange(ctx, cb.Query().Get("code"))
	if err != nil {
		t.Fatal(err)
	}
	raw, _ := tok.Extra("id_token").(string)
	idt, err := p.Verifier(&oidc.Config{ClientID: opClient}).Verify(ctx, raw)
	if err != nil {
		t.Fatal(err)
	}
	var claims struct {
		Email  string   `json:"email"`
		Name   string   `json:"name"`
		Groups []string `json:"groups"`
	}
	if err := idt.Claims(&claims); err != nil {
		t.Fatal(err)
	}
	if tok.RefreshToken == "" {
		t.Fatal("the OP granted no refresh token")
	}
	id := authn.Identity{Issuer: opIssuer, Subject: idt.Subject, Email: claims.Email, EmailVerified: true, Name: claims.Name, Groups: claims.Groups}
	b, _ := json.Marshal(id)
	id.UserID = e.nodes[node].Must(t, tunneltest.Request{Op: "access.upsert", Value: b}).Text
	e.nodes[node].Must(t, tunneltest.Request{Op: "access.keep", ID: id.UserID, Value: []byte(tok.RefreshToken)})
	return id
}

func abs(loc string) string {
	if strings.HasPrefix(loc, "/") {
		return opIssuer + loc
	}
	return loc
}

func readAll(r *http.Response) string {
	defer r.Body.Close()
	var b strings.Builder
	buf := make([]byte, 4096)
	for {
		n, err := r.Body.Read(buf)
		b.Write(buf[:n])
		if err != nil {
			return b.String()
		}
	}
}

// issue gives id a peer through node and returns it with its private key.
func (e *env) issue(id authn.Identity, node int, device string) (profiles.Peer, wgtypes.Key) {
	t := e.t
	t.Helper()
	k, err := wgtypes.GeneratePrivateKey()
	if err != nil {
		t.Fatal(err)
	}
	b, _ := json.Marshal(issueReq{Identity: id, PublicKey: k.PublicKey().String(), Device: device})
	var p profiles.Peer
	if err := json.Unmarshal([]byte(e.nodes[node].Must(t, tunneltest.Request{Op: "access.issue", Value: b}).Text), &p); err != nil {
		t.Fatal(err)
	}
	return p, k
}

// goneEverywhere waits, on every node at once, until addr leaves the
// client map, and returns the longest wait measured from start.
func (e *env) goneEverywhere(addr string, start time.Time) (time.Duration, error) {
	var mu sync.Mutex
	var worst time.Duration
	var errs []error
	var wg sync.WaitGroup
	for i, a := range e.nodes {
		wg.Add(1)
		go func() {
			defer wg.Done()
			_, err := a.Do(tunneltest.Request{Op: "access.waitgone", Addr: addr, Timeout: 10 * time.Second})
			mu.Lock()
			defer mu.Unlock()
			if err != nil {
				errs = append(errs, fmt.Errorf("node %d: %w", i+1, err))
			}
			worst = max(worst, time.Since(start))
		}()
	}
	wg.Wait()
	return worst, errors.Join(errs...)
}
