package continuous_test

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"io"
	"log/slog"
	"net"
	"net/http"
	"net/http/httptest"
	"net/netip"
	"os"
	"strconv"
	"strings"
	"sync/atomic"
	"time"

	"github.com/google/nftables"

	"github.com/ferryvpn/ferry/audit"
	"github.com/ferryvpn/ferry/authn"
	"github.com/ferryvpn/ferry/authn/authntest"
	"github.com/ferryvpn/ferry/authn/scim"
	"github.com/ferryvpn/ferry/cluster"
	"github.com/ferryvpn/ferry/cluster/seal"
	"github.com/ferryvpn/ferry/cmd/internal/assembly"
	"github.com/ferryvpn/ferry/cmd/internal/console"
	"github.com/ferryvpn/ferry/profiles"
	"github.com/ferryvpn/ferry/tunnel"
	"github.com/ferryvpn/ferry/tunnel/tunneltest"
)

// extName is the tunneltest extension that runs authn and profiles on a
// server agent's node.
const extName = "access"

// accessConfig configures the extension on every node.
type accessConfig struct {
	MasterKey    string   `json:"master_key_file"`
	Issuer       string   `json:"issuer"`
	ClientID     string   `json:"client_id"`
	ClientSecret string   `json:"client_secret"`
	OPSocket     string   `json:"op_socket"` // the test serves the OP here
	AdminGroups  []string `json:"admin_groups"`
	Pool         string   `json:"pool"`
}

// issueReq asks the extension for a peer.
type issueReq struct {
	Identity  authn.Identity `json:"identity"`
	PublicKey string         `json:"public_key"`
	Device    string         `json:"device"`
	// KeepExisting is the portal's issuance before the person agreed to
	// replace a device of the same name.
	KeepExisting bool `json:"keep_existing,omitempty"`
}

// accessExt is a node's services beside the agent's gateway, built by the
// one assembly ferryd uses (cmd/internal/assembly) with the data plane
// left to the agent: users, sessions, profiles with the entitlement
// watcher, SCIM, and revalidation, on a clock the test can move forward.
type accessExt struct {
	svc    *assembly.Services // set before ready closes; nil if err
	err    error
	ready  chan struct{}
	offset atomic.Int64 // added to the services' clock
	cancel context.CancelFunc
	done   chan struct{}
	dir    string
}

// startAccess starts the services in the background: like ferryd, they
// need a leader and membership, and a joining node becomes a member only
// after its agent has started. Handle waits for them.
func startAccess(ctx context.Context, node *cluster.Node, raw json.RawMessage) (tunneltest.Extension, error) {
	var cfg accessConfig
	if err := json.Unmarshal(raw, &cfg); err != nil {
		return nil, err
	}
	key, err := seal.LoadKeyFile(cfg.MasterKey)
	if err != nil {
		return nil, err
	}
	dir, err := os.MkdirTemp("", "ferry-access-")
	if err != nil {
		return nil, err
	}
	e := &accessExt{ready: make(chan struct{}), done: make(chan struct{}), dir: dir}
	op := &http.Client{Timeout: 10 * time.Second, Transport: &http.Transport{
		DialContext: func(ctx context.Context, _, _ string) (net.Conn, error) {
			return (&net.Dialer{}).DialContext(ctx, "unix", cfg.OPSocket)
		},
	}}
	ac := assembly.Config{
		Node: node, NodeID: node.ID(), MasterKey: key, DataDir: dir,
		Logger: slog.New(slog.NewTextHandler(io.Discard, nil)),
		Now:    func() time.Time { return time.Now().Add(time.Duration(e.offset.Load())) },
		SignIn: assembly.SignIn{
			Session: authn.SessionConfig{AdminGroups: cfg.AdminGroups},
			OIDC: &authn.OIDCConfig{Issuer: cfg.Issuer, ClientID: cfg.ClientID, ClientSecret: authn.ClientSecret(cfg.ClientSecret),
				RedirectURL: "http://127.0.0.1/callback", HTTPClient: op},
		},
		Profiles:       assembly.Profiles{Pool: netip.MustParsePrefix(cfg.Pool)},
		IdP:            assembly.IdP{Issuer: cfg.Issuer, SCIM: &scim.Config{Issuer: cfg.Issuer}},
		SecretsTimeout: 2 * time.Minute,
	}
	sctx, cancel := context.WithCancel(ctx)
	e.cancel = cancel
	go func() {
		defer close(e.done)
		e.svc, e.err = assembly.Start(sctx, ac)
		close(e.ready)
		if e.err != nil {
			return
		}
		<-sctx.Done()
		e.svc.Close()
	}()
	return e, nil
}

func (e *accessExt) Close() {
	e.cancel()
	<-e.done
	os.RemoveAll(e.dir)
}

// services waits for the services to be up.
func (e *accessExt) services(ctx context.Context) (*assembly.Services, error) {
	select {
	case <-ctx.Done():
		return nil, ctx.Err()
	case <-e.ready:
		return e.svc, e.err
	}
}

func (e *accessExt) Handle(ctx context.Context, req tunneltest.Request) (tunneltest.Response, bool, error) {
	var resp tunneltest.Response
	if !strings.HasPrefix(req.Op, "access.") {
		return resp, false, nil
	}
	svc, err := e.services(ctx)
	if err != nil {
		return resp, true, fmt.Errorf("starting the node's services: %w", err)
	}
	switch req.Op {
	case "access.upsert", "access.provision":
		var id authn.Identity
		if err = json.Unmarshal(req.Value, &id); err != nil {
			break
		}
		var u authn.User
		if req.Op == "access.upsert" {
			u, err = svc.Users.Upsert(ctx, id)
		} else {
			u, err = svc.Users.Provision(ctx, id, req.Key)
		}
		resp.Text = u.ID
	case "access.keep":
		err = svc.Revalidator.Keep(ctx, req.ID, string(req.Value))
	case "access.session":
		var id authn.Identity
		if err = json.Unmarshal(req.Value, &id); err != nil {
			break
		}
		var tok authn.SessionToken
		tok, _, err = svc.Sessions.Create(ctx, id, authn.MethodTOTP, authn.Source{})
		resp.Text = tok.Reveal()
	case "access.enroll":
		// Enrolls the identity in Value for TOTP, confirming with the
		// code of the step before the node's clock; the answer is the
		// otpauth URI, from which the test computes later codes.
		var id authn.Identity
		if err = json.Unmarshal(req.Value, &id); err != nil {
			break
		}
		var en authn.Enrollment
		if en, err = svc.MFA.BeginEnroll(ctx, id); err != nil {
			break
		}
		var code string
		if code, err = authntest.TOTPCode(en.URI, time.Now().Add(time.Duration(e.offset.Load())-30*time.Second)); err != nil {
			break
		}
		if _, err = svc.MFA.ConfirmEnroll(ctx, id, code, authn.Source{Addr: "127.0.0.1"}); err == nil {
			resp.Text = en.URI
		}
	case "access.profile":
		var p profiles.Profile
		p, err = svc.Profiles.Get(ctx, req.Key)
		b, _ := json.Marshal(p)
		resp.Text = string(b)
	case "access.validate":
		var s authn.Session
		s, err = svc.Sessions.Validate(ctx, authn.SessionToken(req.Key))
		resp.Text = s.Role
	case "access.issue":
		var in issueReq
		if err = json.Unmarshal(req.Value, &in); err != nil {
			break
		}
		tok, s, cerr := svc.Sessions.Create(ctx, in.Identity, authn.MethodTOTP, authn.Source{})
		if cerr != nil {
			err = cerr
			break
		}
		_ = tok
		var p profiles.Peer
		if p, _, err = svc.Profiles.Issue(ctx, s, profiles.IssueRequest{PublicKey: in.PublicKey, Device: in.Device, KeepExisting: in.KeepExisting}); err == nil {
			b, _ := json.Marshal(p)
			resp.Text = string(b)
		}
	case "access.revokeown":
		// The portal's Revoke: ID is the peer, Key its owner.
		_, err = svc.Profiles.RevokeOwn(ctx, req.Key, req.ID, "revoked in the portal", audit.Actor{UserID: req.Key})
	case "access.advance":
		e.offset.Add(int64(req.Timeout))
	case "access.revalidate":
		var rep authn.RevalidateReport
		rep, err = svc.Revalidator.RunOnce(ctx)
		b, _ := json.Marshal(rep)
		resp.Text = string(b)
	case "access.peer":
		var p profiles.Peer
		p, err = svc.Profiles.Peer(ctx, req.ID)
		b, _ := json.Marshal(p)
		resp.Text = string(b)
	case "access.scimtoken":
		var tok scim.Token
		tok, err = svc.SCIM.RotateToken(ctx, audit.Actor{UserID: "admin"})
		resp.Text = tok.Reveal()
	case "access.scim":
		// Key is "METHOD PATH", ID the bearer token, Value the body; the
		// answer is the status, a newline and the body.
		method, path, _ := strings.Cut(req.Key, " ")
		r := httptest.NewRequestWithContext(ctx, method, path, bytes.NewReader(req.Value))
		r.Header.Set("Authorization", "Bearer "+req.ID)
		r.Header.Set("Content-Type", "application/scim+json")
		w := httptest.NewRecorder()
		svc.SCIM.ServeHTTP(w, r)
		resp.Text = strconv.Itoa(w.Code) + "\n" + w.Body.String()
	case "access.console":
		// The admin console on this node: Key is "METHOD PATH", ID the
		// browser's session token, Value a form body; the request comes
		// from the console's own origin. The answer is the status, a
		// newline and the page.
		var c *console.Console
		if c, err = console.New(svc.ConsoleConfig(nil)); err != nil {
			break
		}
		method, path, _ := strings.Cut(req.Key, " ")
		r := httptest.NewRequestWithContext(ctx, method, "https://ferry.test"+path, bytes.NewReader(req.Value))
		r.AddCookie(&http.Cookie{Name: authn.SessionCookie, Value: req.ID})
		if method == http.MethodPost {
			r.Header.Set("Content-Type", "application/x-www-form-urlencoded")
			r.Header.Set("Origin", "https://ferry.test")
		}
		w := httptest.NewRecorder()
		c.ServeHTTP(w, r)
		resp.Text = strconv.Itoa(w.Code) + "\n" + w.Body.String()
	case "access.waitgone", "access.waitpresent":
		start := time.Now()
		err = waitClient(ctx, req.Addr, req.Op == "access.waitpresent", req.Timeout)
		resp.Elapsed = time.Since(start)
	default:
		return resp, false, nil
	}
	return resp, true, err
}

// waitClient polls this node's client map over netlink until addr is in
// it (want) or has left it: the moment the kernel stops accepting the
// client.
func waitClient(ctx context.Context, addr string, want bool, within time.Duration) error {
	a, err := netip.ParseAddr(addr)
	if err != nil {
		return err
	}
	conn, err := nftables.New()
	if err != nil {
		return err
	}
	set := &nftables.Set{Table: &nftables.Table{Name: tunnel.DefaultTable, Family: nftables.TableFamilyINet}, Name: "clients"}
	tick := time.NewTicker(time.Millisecond)
	defer tick.Stop()
	deadline := time.Now().Add(within)
	for time.Now().Before(deadline) {
		els, err := conn.GetSetElements(set)
		if err != nil {
			return err
		}
		present := false
		for _, e := range els {
			if b, ok := netip.AddrFromSlice(e.Key); ok && b == a {
				present = true
				break
			}
		}
		if present == want {
			return nil
		}
		select {
		case <-ctx.Done():
			return ctx.Err()
		case <-tick.C:
		}
	}
	return fmt.Errorf("client %s: in the client map is still %v after %s", addr, !want, within)
}

var _ audit.Recorder = (*tunneltest.Recorder)(nil)
