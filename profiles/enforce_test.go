package profiles_test

import (
	"context"
	"errors"
	"fmt"
	"net/netip"
	"strings"
	"testing"
	"time"

	"github.com/ferryvpn/ferry/audit"
	"github.com/ferryvpn/ferry/authn"
	"github.com/ferryvpn/ferry/cluster/clustertest"
	"github.com/ferryvpn/ferry/profiles"
)

const testIssuer = "https://idp.example.com"

// entEnv is a three-node cluster with users, sessions and profiles on
// every node and the entitlement watcher running on each, as ferryd runs
// them.
type entEnv struct {
	*env
	users []*authn.Users
	sess  []*authn.Sessions
}

func newEntEnv(t testing.TB, policy authn.Policy) *entEnv {
	t.Helper()
	e := &entEnv{env: &env{c: clustertest.Start(t, 3, clustertest.Options{Fast: true, WriteTimeout: 10 * time.Second}), rec: &recorder{}, clock: newClock()}}
	for i := 0; i < 3; i++ {
		node := e.c.Node(i)
		u := authn.NewUsers(node, e.clock.Now, e.rec)
		ss, err := authn.NewSessions(authn.SessionConfig{Store: node, Recorder: e.rec, Now: e.clock.Now,
			AdminGroups: policy.AdminGroups, RequiredGroups: policy.RequiredGroups})
		if err != nil {
			t.Fatal(err)
		}
		s, err := profiles.New(profiles.Config{Cluster: node, Pool: netip.MustParsePrefix("100.64.0.0/16"), Recorder: e.rec,
			Now: e.clock.Now, Policy: ss.Policy(), Users: u})
		if err != nil {
			t.Fatal(err)
		}
		ctx, cancel := context.WithCancel(context.Background())
		done := make(chan struct{})
		go func() {
			defer close(done)
			if err := s.RunEntitlements(ctx); err != nil {
				t.Errorf("entitlement watcher: %v", err)
			}
		}()
		t.Cleanup(func() { cancel(); <-done })
		e.users, e.sess, e.stores = append(e.users, u), append(e.sess, ss), append(e.stores, s)
	}
	return e
}

// signIn stores the user as a sign-in would and returns their session.
func (e *entEnv) signIn(t testing.TB, sub string, groups ...string) (authn.Session, authn.SessionToken) {
	t.Helper()
	u, err := e.users[0].Upsert(context.Background(), authn.Identity{Issuer: testIssuer, Subject: sub, Email: sub + "@example.com", Groups: groups})
	if err != nil {
		t.Fatal(err)
	}
	tok, sess, err := e.sess[0].Create(context.Background(), u.Identity(), authn.MethodTOTP, authn.Source{})
	if err != nil {
		t.Fatal(err)
	}
	return sess, tok
}

func (e *entEnv) issue(t testing.TB, sess authn.Session, device, profile string) profiles.Peer {
	t.Helper()
	p, _, err := e.stores[1].Issue(context.Background(), sess, profiles.IssueRequest{PublicKey: pubkey(t), Device: device, Profile: profile})
	if err != nil {
		t.Fatal(err)
	}
	return p
}

// waitRevoked waits until every node sees the peer revoked, and returns
// the reason.
func (e *entEnv) waitRevoked(t testing.TB, id string) string {
	t.Helper()
	var reason string
	clustertest.WaitFor(t, 10*time.Second, "peer "+id+" revoked on every node", func() error {
		for i, s := range e.stores {
			ps, err := s.Peers(context.Background(), profiles.PeerFilter{})
			if err != nil {
				return err
			}
			for _, p := range ps {
				if p.ID == id && p.Revoked == nil {
					return fmt.Errorf("node %d: still active", i)
				}
				if p.ID == id {
					reason = p.RevokedReason
				}
			}
		}
		return nil
	})
	return reason
}

func (e *entEnv) mustActive(t testing.TB, id string) {
	t.Helper()
	p, err := e.stores[2].Peer(context.Background(), id)
	if err != nil || p.Revoked != nil {
		t.Errorf("peer %s: %v, revoked %v (%s): want active", id, err, p.Revoked, p.RevokedReason)
	}
}

// A profile edit that removes a group revokes that group's peers, with the
// edit and its author as the reason, and leaves everyone else's alone.
func TestProfileEditRevokesRemovedGroup(t *testing.T) {
	e := newEntEnv(t, authn.Policy{})
	ctx := context.Background()
	prof, err := e.stores[0].Put(ctx, profiles.Profile{Name: "eng", Rules: []profiles.Rule{{CIDR: netip.MustParsePrefix("10.20.0.0/16")}},
		Groups: []string{"eng", "ops"}}, nil, admin)
	if err != nil {
		t.Fatal(err)
	}
	alice, _ := e.signIn(t, "alice", "eng")
	bob, _ := e.signIn(t, "bob", "ops")
	pa, pb := e.issue(t, alice, "laptop", "eng"), e.issue(t, bob, "laptop", "eng")

	editor := audit.Actor{UserID: "root", Email: "root@example.com", Role: authn.RoleAdmin}
	prof.Groups = []string{"ops"}
	if _, err := e.stores[2].Put(ctx, prof, &prof.Version, editor); err != nil {
		t.Fatal(err)
	}
	reason := e.waitRevoked(t, pa.ID)
	if !strings.Contains(reason, `profile "eng" edited`) || !strings.Contains(reason, "root@example.com") {
		t.Errorf("revoked reason %q: want the edit and who made it", reason)
	}
	e.mustActive(t, pb.ID)
	// And alice cannot issue again under it.
	if _, _, err := e.stores[0].Issue(ctx, alice, profiles.IssueRequest{PublicKey: pubkey(t), Device: "phone", Profile: "eng"}); !errors.Is(err, profiles.ErrNotAllowed) {
		t.Errorf("issue after the edit: %v, want ErrNotAllowed", err)
	}
}

// A group removed at the identity provider (seen at revalidation or a
// later sign-in) revokes the peers it granted; other users keep theirs.
func TestGroupRemovalRevokes(t *testing.T) {
	e := newEntEnv(t, authn.Policy{})
	ctx := context.Background()
	if _, err := e.stores[0].Put(ctx, profiles.Profile{Name: "eng", Rules: []profiles.Rule{{CIDR: netip.MustParsePrefix("10.20.0.0/16")}},
		Groups: []string{"eng"}}, nil, admin); err != nil {
		t.Fatal(err)
	}
	alice, _ := e.signIn(t, "alice", "eng", "staff")
	carol, _ := e.signIn(t, "carol", "eng")
	pa, pc := e.issue(t, alice, "laptop", "eng"), e.issue(t, carol, "laptop", "eng")

	e.clock.Advance(time.Minute)
	if _, err := e.users[2].Provision(ctx, authn.Identity{Issuer: testIssuer, Subject: "alice", Email: "alice@example.com", Groups: []string{"staff"}}, "revalidation"); err != nil {
		t.Fatal(err)
	}
	reason := e.waitRevoked(t, pa.ID)
	if !strings.Contains(reason, "removed: eng") || !strings.Contains(reason, "identity provider") {
		t.Errorf("revoked reason %q: want the group change and its source", reason)
	}
	e.mustActive(t, pc.ID)
}

// With required_groups, a sign-in refused because the user left them
// updates the stored groups, revokes the user's peers and ends the use of
// their sessions.
func TestRequiredGroupsRefusalRevokes(t *testing.T) {
	e := newEntEnv(t, authn.Policy{RequiredGroups: []string{"staff"}})
	ctx := context.Background()
	if _, err := e.stores[0].Put(ctx, profiles.Profile{Name: "eng", Rules: []profiles.Rule{{CIDR: netip.MustParsePrefix("10.20.0.0/16")}},
		Groups: []string{"eng"}}, nil, admin); err != nil {
		t.Fatal(err)
	}
	alice, tok := e.signIn(t, "alice", "eng", "staff")
	pa := e.issue(t, alice, "laptop", "eng")

	u, ok, err := e.users[1].Refused(ctx, authn.Identity{Issuer: testIssuer, Subject: "alice", Email: "alice@example.com", Groups: []string{"eng"}})
	if err != nil || !ok || strings.Join(u.Groups, ",") != "eng" {
		t.Fatalf("Refused = %+v, %v, %v: want the stored groups updated", u, ok, err)
	}
	reason := e.waitRevoked(t, pa.ID)
	if !strings.Contains(reason, "required groups") {
		t.Errorf("revoked reason %q", reason)
	}
	for i, s := range e.sess {
		if _, err := s.Validate(ctx, tok); !errors.Is(err, authn.ErrSessionInvalid) {
			t.Errorf("node %d: session after the refusal: %v, want ErrSessionInvalid", i, err)
		}
	}
	// Refused creates no record for someone never admitted.
	if _, ok, err := e.users[0].Refused(ctx, authn.Identity{Issuer: testIssuer, Subject: "stranger"}); ok || err != nil {
		t.Errorf("Refused(stranger) = %v, %v", ok, err)
	}
}

// An administrator removed from the admin group loses the role on the
// session she already has, on every node, at the next request.
func TestAdminDemotedOnLiveSession(t *testing.T) {
	e := newEntEnv(t, authn.Policy{AdminGroups: []string{"ferry-admins"}})
	ctx := context.Background()
	sess, tok := e.signIn(t, "root", "ferry-admins")
	if sess.Role != authn.RoleAdmin {
		t.Fatalf("role %q", sess.Role)
	}
	if _, err := e.users[1].Provision(ctx, authn.Identity{Issuer: testIssuer, Subject: "root", Email: "root@example.com"}, "revalidation"); err != nil {
		t.Fatal(err)
	}
	for i, s := range e.sess {
		got, err := s.Validate(ctx, tok)
		if err != nil || got.Role != authn.RoleUser || len(got.Identity.Groups) != 0 {
			t.Errorf("node %d: session after demotion: role %q groups %v, %v; want user", i, got.Role, got.Identity.Groups, err)
		}
	}
}

// Disabling is one domain operation: sessions end and devices are revoked
// before it returns.
func TestSetUserDisabledRevokes(t *testing.T) {
	e := newEntEnv(t, authn.Policy{})
	ctx := context.Background()
	if _, err := e.stores[0].Put(ctx, profiles.Profile{Name: "eng", Rules: []profiles.Rule{{CIDR: netip.MustParsePrefix("10.20.0.0/16")}},
		Groups: []string{"eng"}}, nil, admin); err != nil {
		t.Fatal(err)
	}
	alice, tok := e.signIn(t, "alice", "eng")
	pa := e.issue(t, alice, "laptop", "eng")
	// The count may be 0: the watcher on the leader can get there first.
	if _, err := e.stores[2].SetUserDisabled(ctx, alice.Identity.UserID, true, admin, authn.Source{}); err != nil {
		t.Fatal(err)
	}
	p, err := e.stores[2].Peer(ctx, pa.ID)
	if err != nil || p.Revoked == nil || !strings.Contains(p.RevokedReason, "disabled by admin") {
		t.Errorf("peer after disable: %+v, %v", p, err)
	}
	if _, err := e.sess[1].Validate(ctx, tok); !errors.Is(err, authn.ErrSessionInvalid) {
		t.Errorf("session after disable: %v", err)
	}
}
