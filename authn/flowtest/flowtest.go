// Package flowtest runs ferry's whole sign-in for tests, with real
// components only: a three-node cluster on loopback, one authn.Flow per node
// on its own node and HTTPS server, a load balancer in front that sends
// each request to the node the test chooses, and the development OpenID
// Provider (authn/devop) over HTTP. A Browser drives the pages as a person
// would, without JavaScript.
//
// Nothing sleeps: time moves by hand (Env.Clock for sign-in state, TOTP and
// sessions; Env.SetRPClockSkew for ID token expiry).
package flowtest

import (
	"crypto/rand"
	"crypto/rsa"
	"crypto/tls"
	"net/http"
	"net/http/httptest"
	"net/http/httputil"
	"net/url"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/ferryvpn/ferry/audit"
	"github.com/ferryvpn/ferry/authn"
	"github.com/ferryvpn/ferry/authn/authntest"
	"github.com/ferryvpn/ferry/authn/devop"
	"github.com/ferryvpn/ferry/cluster/clustertest"
	"github.com/ferryvpn/ferry/cluster/seal"
)

// Client registration at the development OP.
const (
	ClientID     = "ferry-test"
	ClientSecret = "flowtest-secret"
	// AdminGroup makes a session an administrator's; devop's demo user is
	// in it, alice is not.
	AdminGroup = "ferry-admins"
	// UserAgent is what every Browser sends, so audit records can be
	// matched to it.
	UserAgent = "flowtest-browser/1.0"
)

// Options tune an Env.
type Options struct {
	// Nodes is the cluster size; default 3.
	Nodes int
	// OIDC edits the relying party's configuration of every node.
	OIDC func(*authn.OIDCConfig)
	// Users of the OP; default devop.DemoUsers().
	Users []devop.User
	// Revalidate asks for refresh tokens (offline_access) and gives every
	// node's Flow an authn.Revalidator (Env.Revalidators).
	Revalidate bool
	// RequiredGroups and AdminGroups set the sign-in policy of every node
	// (AdminGroups default: AdminGroup).
	RequiredGroups []string
}

// Hit is one request the load balancer passed on.
type Hit struct {
	Method string
	Path   string
	Node   int
}

// Env is a running sign-in setup.
type Env struct {
	t testing.TB

	Cluster  *clustertest.Cluster
	Recorder *authntest.Recorder
	// Clock drives sign-in state, TOTP and sessions on every node.
	Clock *authntest.Clock

	OP      *devop.Provider
	OPURL   string
	OPKey   *rsa.PrivateKey
	OPKeyID string

	Flows        []*authn.Flow
	Revalidators []*authn.Revalidator
	MFA          []*authn.MFA
	Sessions     []*authn.Sessions
	Users        []*authn.Users
	NodeURLs     []string

	// URL is the load balancer: the public address of the service.
	URL string
	// ClientTLS trusts the load balancer's certificate.
	ClientTLS *tls.Config

	rpSkew  atomic.Int64 // nanoseconds added to the RP's ID token clock
	opDown  atomic.Bool  // the RP's connections to the OP fail
	rewrite atomic.Pointer[Rewrite]
	route   atomic.Pointer[func(path string) int]

	mu      sync.Mutex        // guards hits and enrolled
	hits    []Hit             // requests passed on by the load balancer
	enrolls map[string]string // username -> otpauth URI
	nodeSrv []*httptest.Server
}

// DefaultRoute spreads the steps of a sign-in over the nodes: /login on
// the first, /callback on the second, the second-factor pages on the third,
// so every step reads state another node wrote.
func DefaultRoute(n int) func(path string) int {
	return func(path string) int {
		i := 0
		switch {
		case path == authn.PathLogin:
			i = 0
		case path == authn.PathCallback:
			i = 1
		case strings.HasPrefix(path, authn.PathMFA):
			i = 2
		case path == authn.PathToken:
			i = 1
		case path == authn.PathSignedIn:
			i = 0
		case path == authn.PathLogout:
			i = 2
		}
		return i % n
	}
}

// Start runs an Env; everything stops when the test ends.
func Start(t testing.TB, o Options) *Env {
	t.Helper()
	if o.Nodes == 0 {
		o.Nodes = 3
	}
	start := time.Now().UTC().Truncate(30 * time.Second)
	e := &Env{t: t, Clock: authntest.NewClock(start), enrolls: make(map[string]string)}
	e.Recorder = &authntest.Recorder{Now: e.Clock.Now}
	route := DefaultRoute(o.Nodes)
	e.route.Store(&route)

	// The load balancer first: the OP must know the redirect URI.
	lb := httptest.NewTLSServer(http.HandlerFunc(e.balance))
	t.Cleanup(lb.Close)
	e.URL = lb.URL
	e.ClientTLS = lb.Client().Transport.(*http.Transport).TLSClientConfig.Clone()

	// The OP, at an issuer URL that is its own address.
	var opHandler atomic.Pointer[http.Handler]
	opSrv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		(*opHandler.Load()).ServeHTTP(w, r)
	}))
	t.Cleanup(opSrv.Close)
	key, err := rsa.GenerateKey(rand.Reader, 2048)
	if err != nil {
		t.Fatal(err)
	}
	e.OPURL, e.OPKey, e.OPKeyID = opSrv.URL, key, "flowtest-key"
	op, err := devop.New(devop.Config{
		Issuer: opSrv.URL, ClientID: ClientID, ClientSecret: ClientSecret,
		RedirectURIs: []string{lb.URL + authn.PathCallback}, Users: o.Users,
		SigningKey: key, KeyID: e.OPKeyID,
	})
	if err != nil {
		t.Fatalf("starting devop: %v", err)
	}
	h := op.Handler()
	opHandler.Store(&h)
	e.OP = op

	e.Cluster = clustertest.Start(t, o.Nodes, clustertest.Options{Fast: true})
	mkey, err := seal.GenerateKey()
	if err != nil {
		t.Fatal(err)
	}
	rpClient := &http.Client{Timeout: 10 * time.Second, Transport: &rewriter{env: e, next: http.DefaultTransport}}
	for i := 0; i < o.Nodes; i++ {
		node := e.Cluster.Node(i)
		oc := authn.OIDCConfig{
			Issuer: opSrv.URL, ClientID: ClientID, ClientSecret: authn.NewClientSecret([]byte(ClientSecret + "\n")),
			RedirectURL: lb.URL + authn.PathCallback, HTTPClient: rpClient,
			Now: func() time.Time { return time.Now().Add(time.Duration(e.rpSkew.Load())) },
		}
		oc.RequiredGroups = o.RequiredGroups
		if o.Revalidate {
			oc.Scopes = []string{"openid", "email", "profile", "offline_access"}
		}
		if o.OIDC != nil {
			o.OIDC(&oc)
		}
		// The node's sign-in services as ferryd assembles them.
		st, err := authn.NewStack(authn.StackConfig{
			Store: node, Key: mkey, Recorder: e.Recorder, Now: e.Clock.Now,
			Session: authn.SessionConfig{AdminGroups: []string{AdminGroup}, RequiredGroups: o.RequiredGroups},
			OIDC:    &oc, Revalidate: o.Revalidate,
		})
		if err != nil {
			t.Fatalf("sign-in services on node %d: %v", i, err)
		}
		flow, mfa, sess, users := st.Flow, st.MFA, st.Sessions, st.Users
		if st.Revalidator != nil {
			e.Revalidators = append(e.Revalidators, st.Revalidator)
		}
		srv := httptest.NewTLSServer(flow.Handler())
		t.Cleanup(srv.Close)
		e.Flows = append(e.Flows, flow)
		e.MFA = append(e.MFA, mfa)
		e.Sessions = append(e.Sessions, sess)
		e.Users = append(e.Users, users)
		e.NodeURLs = append(e.NodeURLs, srv.URL)
		e.nodeSrv = append(e.nodeSrv, srv)
	}
	return e
}

// balance passes a request to the node the route picks, as the NLB would.
func (e *Env) balance(w http.ResponseWriter, r *http.Request) {
	i := (*e.route.Load())(r.URL.Path)
	e.mu.Lock()
	e.hits = append(e.hits, Hit{Method: r.Method, Path: r.URL.Path, Node: i})
	srv := e.nodeSrv[i]
	e.mu.Unlock()
	target, _ := url.Parse(srv.URL)
	p := httputil.NewSingleHostReverseProxy(target)
	p.Transport = srv.Client().Transport
	p.ServeHTTP(w, r)
}

// SetRoute changes which node serves each path.
func (e *Env) SetRoute(route func(path string) int) { e.route.Store(&route) }

// Hits returns the requests the load balancer passed on so far.
func (e *Env) Hits() []Hit {
	e.mu.Lock()
	defer e.mu.Unlock()
	return append([]Hit(nil), e.hits...)
}

// SetRPClockSkew moves the relying party's ID token clock by d.
func (e *Env) SetRPClockSkew(d time.Duration) { e.rpSkew.Store(int64(d)) }

// Events returns the audit events with the given reason.
func (e *Env) Events(reason string) []audit.Event {
	return e.Recorder.Filter(func(ev audit.Event) bool { return ev.Reason == reason })
}

// WantEvent fails the test unless an event of type typ with outcome
// failure and the given reason was recorded, and returns it.
func (e *Env) WantEvent(typ audit.Type, reason string) audit.Event {
	e.t.Helper()
	evs := e.Recorder.Filter(func(ev audit.Event) bool {
		return ev.Type == typ && ev.Reason == reason && ev.Outcome == audit.Failure
	})
	if len(evs) == 0 {
		var got []string
		for _, ev := range e.Recorder.Events() {
			got = append(got, string(ev.Type)+"/"+string(ev.Outcome)+"/"+ev.Reason)
		}
		e.t.Fatalf("no %s failure event with reason %q; events: %v", typ, reason, got)
	}
	return evs[len(evs)-1]
}

// TOTP returns the current code of username's enrollment, after moving the
// clock to the next 30 s step so the replay guard accepts it.
func (e *Env) TOTP(username string) string {
	e.t.Helper()
	e.mu.Lock()
	uri := e.enrolls[username]
	e.mu.Unlock()
	if uri == "" {
		e.t.Fatalf("flowtest: %s has not enrolled", username)
	}
	e.Clock.Advance(30 * time.Second)
	code, err := authntest.TOTPCode(uri, e.Clock.Now())
	if err != nil {
		e.t.Fatal(err)
	}
	return code
}

// UserID returns ferry's user ID for the OP's subject sub (see
// authn.UserKey).
func (e *Env) UserID(sub string) string { return authn.UserKey(e.OPURL, sub) }

// Enrolled records username's otpauth URI, as an authenticator app would.
func (e *Env) Enrolled(username, uri string) {
	e.mu.Lock()
	defer e.mu.Unlock()
	e.enrolls[username] = uri
}

// Posts returns how many POST requests the load balancer passed on so
// far: a browser that resubmits a form shows up here.
func (e *Env) Posts() int {
	e.mu.Lock()
	defer e.mu.Unlock()
	n := 0
	for _, h := range e.hits {
		if h.Method == http.MethodPost {
			n++
		}
	}
	return n
}
