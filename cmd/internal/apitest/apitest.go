// Package apitest runs ferryd's real HTTPS API for tests: real cluster
// nodes and each node's services built by the same assembly as ferryd's
// (cmd/internal/assembly), served by the api package over TLS. It mints sessions directly, so tests of the
// clients need no browser.
package apitest

import (
	"context"
	"encoding/pem"
	"fmt"
	"net/http"
	"net/http/httptest"
	"net/netip"
	"os"
	"path/filepath"
	"sync/atomic"
	"testing"
	"time"

	"github.com/ferryvpn/ferry/audit"
	"github.com/ferryvpn/ferry/authn"
	"github.com/ferryvpn/ferry/authn/devop"
	"github.com/ferryvpn/ferry/authn/scim"
	"github.com/ferryvpn/ferry/cluster"
	"github.com/ferryvpn/ferry/cluster/admit"
	"github.com/ferryvpn/ferry/cluster/clustertest"
	"github.com/ferryvpn/ferry/cluster/pki"
	"github.com/ferryvpn/ferry/cluster/seal"
	"github.com/ferryvpn/ferry/cmd/internal/api"
	"github.com/ferryvpn/ferry/cmd/internal/assembly"
	"github.com/ferryvpn/ferry/cmd/internal/console"
	"github.com/ferryvpn/ferry/profiles"
	"github.com/ferryvpn/ferry/report"
	"github.com/ferryvpn/ferry/tunnel"
	"github.com/ferryvpn/ferry/tunnel/capture"
)

// Issuer is the OIDC issuer SCIM-provisioned users belong to.
const Issuer = "https://idp.example.com"

// AdminGroup is the identity provider group that makes a session admin.
const AdminGroup = "ferry-admins"

// Pool is the clients' address pool; Endpoint what issued configs dial.
const (
	Pool     = "100.64.0.0/16"
	Endpoint = "vpn.example.com:51820"
)

// Server is a running API.
type Server struct {
	URL    string // https://127.0.0.1:PORT
	CAFile string // PEM of the certificate to trust

	Cluster *clustertest.Cluster
	// Services are the node's services as ferryd builds them; the fields
	// below are shortcuts into them.
	Services *assembly.Services
	Audit    *audit.Log
	Sessions *authn.Sessions
	Users    *authn.Users
	MFA      *authn.MFA
	Profiles *profiles.Store
	// SCIM serves /scim/v2 for users of Issuer; mint its token with
	// SCIM.RotateToken.
	SCIM   *scim.Service
	Signer *audit.Signer
	Admit  *admit.Admitter
	// Capture runs packet captures (no data plane here: every node's part
	// is empty), with real step-up against MFA.
	Capture *capture.Service
	// Reports is the node's rollup the report endpoints answer from.
	Reports *report.Rollup
	// Console is the admin console served at /admin, as ferryd serves it.
	Console *console.Console
	// WireGuardPublicKey is the cluster's WireGuard public key, which
	// issued configs name.
	WireGuardPublicKey string
	// MasterKey is the cluster master key the API was started with.
	MasterKey seal.Key
	// Node is the index in Cluster of the node that serves this API.
	Node int
	// OPURL is the development OpenID Provider's issuer, with
	// Options.SignIn; its users are devop.DemoUsers.
	OPURL string
}

// Options tune StartWith.
type Options struct {
	// Nodes is the cluster size; default 1.
	Nodes int
	// SignIn serves the sign-in pages (authn.Flow) on every node, as
	// ferryd does with oidc.issuer set, against the development OpenID
	// Provider (authn/devop) over HTTP on loopback.
	SignIn bool
	// RequiredGroups, with SignIn, admits at sign-in only identities in
	// one of these groups (oidc.required_groups).
	RequiredGroups []string
	// DataPlane, when set, runs a data plane on every node with the
	// gateway settings it returns for node i (see assembly.Config).
	DataPlane func(i int) *tunnel.Config
	// Refusals tunes every node's recording and limiting of refused calls
	// (api.Config.Refusals); zero values take the defaults.
	Refusals api.Refusals
}

// OPClientID and OPClientSecret are ferry's registration at the
// development OpenID Provider of Options.SignIn.
const (
	OPClientID     = "ferry-apitest"
	OPClientSecret = "apitest-secret"
)

// Start runs the API on a one-node cluster until the test ends.
func Start(t testing.TB) *Server {
	t.Helper()
	return StartCluster(t, 1)[0]
}

// StartCluster runs an API on every node of an n-node cluster, all with
// the same master key, until the test ends; the result is indexed like
// the cluster's nodes.
func StartCluster(t testing.TB, n int) []*Server {
	t.Helper()
	return StartWith(t, Options{Nodes: n})
}

// StartWith runs an API on every node of a cluster as o says, until the
// test ends; the result is indexed like the cluster's nodes.
func StartWith(t testing.TB, o Options) []*Server {
	t.Helper()
	n := max(o.Nodes, 1)
	key, err := seal.GenerateKey()
	if err != nil {
		t.Fatal(err)
	}
	// Forwarded membership changes and restores need an administrator's
	// session, checked on the leader as ferryd does.
	refs := map[string]*lateRefs{}
	for i := 0; i < n; i++ {
		refs[fmt.Sprintf("n%d", i+1)] = &lateRefs{}
	}
	c := clustertest.Start(t, n, clustertest.Options{Fast: true, WriteTimeout: 10 * time.Second, Tune: func(cfg *cluster.Config) {
		r := refs[cfg.NodeID]
		cfg.Authorize = api.ClusterAuthorizer(r.admit.Load, r.sessions.Load)
	}})
	// The listeners first: the identity provider must know every node's
	// redirect URI before the nodes' sign-in flows exist.
	srvs := make([]*httptest.Server, n)
	for i := range srvs {
		srvs[i] = httptest.NewUnstartedServer(http.NotFoundHandler())
		t.Cleanup(srvs[i].Close)
	}
	var op *devop.Provider
	var opURL string
	if o.SignIn {
		op, opURL = startOP(t, srvs)
	}
	var out []*Server
	for i := 0; i < n; i++ {
		var oc *authn.OIDCConfig
		if op != nil {
			oc = &authn.OIDCConfig{
				Issuer: opURL, ClientID: OPClientID, ClientSecret: authn.NewClientSecret([]byte(OPClientSecret)),
				RedirectURL: baseURL(srvs[i]) + authn.PathCallback, RequiredGroups: o.RequiredGroups,
			}
		}
		s := serve(t, c, i, key, srvs[i], oc, o)
		s.OPURL = opURL
		r := refs[c.ID(i)]
		r.admit.Store(s.Admit)
		r.sessions.Store(s.Sessions)
		out = append(out, s)
	}
	return out
}

// lateRefs hands a node's authorizer what exists only after it starts.
type lateRefs struct {
	admit    atomic.Pointer[admit.Admitter]
	sessions atomic.Pointer[authn.Sessions]
}

// baseURL is the https URL srv will serve at once started.
func baseURL(srv *httptest.Server) string { return "https://" + srv.Listener.Addr().String() }

// startOP runs the development OpenID Provider over HTTP on loopback, with
// every server of srvs as a redirect URI, and returns it and its issuer.
func startOP(t testing.TB, srvs []*httptest.Server) (*devop.Provider, string) {
	t.Helper()
	var h atomic.Pointer[http.Handler]
	opSrv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) { (*h.Load()).ServeHTTP(w, r) }))
	t.Cleanup(opSrv.Close)
	var redirects []string
	for _, s := range srvs {
		redirects = append(redirects, baseURL(s)+authn.PathCallback)
	}
	op, err := devop.New(devop.Config{Issuer: opSrv.URL, ClientID: OPClientID, ClientSecret: OPClientSecret, RedirectURIs: redirects})
	if err != nil {
		t.Fatalf("starting the development OP: %v", err)
	}
	oh := op.Handler()
	h.Store(&oh)
	return op, opSrv.URL
}

// serve runs the API on node i of c on srv, its services built by the one
// assembly ferryd uses: with the sign-in pages when oc is set (without an
// identity provider tests mint sessions directly), SCIM on as ferryd runs
// it with scim.enabled, and a data plane when o asks for one.
func serve(t testing.TB, c *clustertest.Cluster, i int, key seal.Key, srv *httptest.Server, oc *authn.OIDCConfig, o Options) *Server {
	t.Helper()
	node := c.Node(i)
	cfg := assembly.Config{
		Node: node, NodeID: c.ID(i), MasterKey: key, DataDir: t.TempDir(),
		SignIn:   assembly.SignIn{Session: authn.SessionConfig{AdminGroups: []string{AdminGroup}}, OIDC: oc},
		Profiles: assembly.Profiles{Pool: netip.MustParsePrefix(Pool), Endpoint: Endpoint},
		IdP:      assembly.IdP{Issuer: Issuer, SCIM: &scim.Config{Issuer: Issuer}},
	}
	if o.DataPlane != nil {
		cfg.DataPlane = o.DataPlane(i)
	}
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	svc, err := assembly.Start(ctx, cfg)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(svc.Close)
	s := &Server{Cluster: c, Services: svc, Audit: svc.Audit, Sessions: svc.Sessions, Users: svc.Users, MFA: svc.MFA,
		Profiles: svc.Profiles, SCIM: svc.SCIM, Signer: svc.Signer, Capture: svc.Capture, Reports: svc.Reports,
		WireGuardPublicKey: svc.Server.PublicKey, MasterKey: key, Node: i}
	if s.Admit, err = admit.New(admit.Config{
		Node: node, MasterKey: key, APINames: []string{"localhost", "127.0.0.1"},
		Record: api.AdmitRecorder(func() audit.Recorder { return svc.Audit }),
	}); err != nil {
		t.Fatal(err)
	}
	acfg, err := svc.API(api.Config{Node: node, MasterKey: key, Admit: s.Admit, Refusals: o.Refusals})
	if err != nil {
		t.Fatal(err)
	}
	s.Console, _ = acfg.Console.(*console.Console)
	h, err := api.New(acfg)
	if err != nil {
		t.Fatal(err)
	}
	srv.Config.Handler = h
	srv.StartTLS()
	t.Cleanup(srv.Close) // before the audit log closes (Close is idempotent)
	s.URL = srv.URL
	s.CAFile = filepath.Join(t.TempDir(), "ca.pem")
	if err := os.WriteFile(s.CAFile, pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE", Bytes: srv.Certificate().Raw}), 0o600); err != nil {
		t.Fatal(err)
	}
	return s
}

// ConsoleConfig is the console configuration of s, as ferryd builds it
// (assembly.Services.ConsoleConfig); tests may change it and run a console
// of their own.
func ConsoleConfig(s *Server) console.Config {
	return s.Services.ConsoleConfig(s.Admit)
}

// PublishCA stores a new cluster CA, its key sealed under MasterKey, as the
// first node of a real cluster does: the join endpoints and join tokens
// need it.
func (s *Server) PublishCA(t testing.TB) *pki.CA {
	t.Helper()
	ca := clustertest.NewCA(t)
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	if _, err := admit.PublishCA(ctx, s.Cluster.Node(s.Node), s.MasterKey, ca); err != nil {
		t.Fatal(err)
	}
	return ca
}

// Token signs id in (as if after OIDC and TOTP) and returns its session
// token. Put AdminGroup in id.Groups for an admin session.
func (s *Server) Token(t testing.TB, id authn.Identity) string {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	if _, err := s.Users.Upsert(ctx, id); err != nil {
		t.Fatal(err)
	}
	tok, _, err := s.Sessions.Create(ctx, id, authn.MethodTOTP, authn.Source{Addr: "127.0.0.1"})
	if err != nil {
		t.Fatal(err)
	}
	return tok.Reveal()
}

// Admin returns an admin session token for "admin@example.com".
func (s *Server) Admin(t testing.TB) string {
	return s.Token(t, authn.Identity{UserID: "admin", Email: "admin@example.com", Groups: []string{AdminGroup}})
}
