package authn_test

import (
	"encoding/base64"
	"errors"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/ferryvpn/ferry/audit"
	"github.com/ferryvpn/ferry/authn"
	"github.com/ferryvpn/ferry/authn/authntest"
	"github.com/ferryvpn/ferry/cluster/clustertest"
)

var admin = audit.Actor{UserID: "root", Role: authn.RoleAdmin, Session: "admin-session"}

// validEverywhere fails the test unless tok is valid on every node.
func (e *stateEnv) validEverywhere(tok authn.SessionToken) {
	e.t.Helper()
	for i := range e.sess {
		if _, err := e.sess[i].Validate(e.t.Context(), tok); err != nil {
			e.t.Fatalf("node %d: Validate = %v, want valid", i, err)
		}
	}
}

// invalidEverywhere fails the test unless tok is refused on every node,
// with ErrSessionInvalid and a message containing why.
func (e *stateEnv) invalidEverywhere(tok authn.SessionToken, why string) {
	e.t.Helper()
	for i := range e.sess {
		_, err := e.sess[i].Validate(e.t.Context(), tok)
		if !errors.Is(err, authn.ErrSessionInvalid) || !strings.Contains(err.Error(), why) {
			e.t.Fatalf("node %d: Validate = %v, want ErrSessionInvalid (%s)", i, err, why)
		}
	}
}

func TestSessionCreate(t *testing.T) {
	e := newStateEnv(t)
	ctx := t.Context()
	alice := authn.Identity{UserID: "alice", Email: "alice@example.com", Groups: []string{"eng", "vpn-admins"}}
	tok, s, err := e.sess[0].Create(ctx, alice, authn.MethodTOTP, testSrc)
	if err != nil {
		t.Fatal(err)
	}
	raw, err := base64.RawURLEncoding.DecodeString(tok.Reveal())
	if err != nil || len(raw) != 32 {
		t.Fatalf("token is not 32 bytes of base64url: %d bytes, %v", len(raw), err)
	}
	if s.ID == "" || strings.Contains(tok.Reveal(), s.ID) {
		t.Errorf("session ID %q looks related to the token", s.ID)
	}
	if s.Role != authn.RoleAdmin || s.MFAMethod != authn.MethodTOTP || !s.Expires.Equal(stateEpoch.Add(12*time.Hour)) ||
		!s.AuthTime.Equal(stateEpoch) || s.SourceIP != testSrc.Addr || s.UserAgent != testSrc.UserAgent {
		t.Errorf("session = %+v", s)
	}
	e.validEverywhere(tok)

	bob := authn.Identity{UserID: "bob", Groups: []string{"eng"}}
	_, sb, err := e.sess[1].Create(ctx, bob, authn.MethodRecovery, testSrc)
	if err != nil {
		t.Fatal(err)
	}
	if sb.Role != authn.RoleUser || sb.MFAMethod != authn.MethodRecovery {
		t.Errorf("bob's session = %+v", sb)
	}

	t.Run("auth.login event", func(t *testing.T) {
		ev := e.rec.OfType(audit.TypeLogin, "alice")
		if len(ev) != 1 || ev[0].Outcome != audit.Success || ev[0].Action != authn.ActionLoginSession || ev[0].Details["mfa_method"] != authn.MethodTOTP ||
			ev[0].Actor.Session != s.ID || ev[0].Actor.Role != authn.RoleAdmin || ev[0].Source.Addr != testSrc.Addr {
			t.Errorf("auth.login events = %+v", ev)
		}
	})
	t.Run("list", func(t *testing.T) {
		for i, tc := range []struct {
			user string
			want []string
		}{{"", sortedIDs(s.ID, sb.ID)}, {"alice", []string{s.ID}}, {"bob", []string{sb.ID}}, {"carol", nil}} {
			got, err := e.sess[i%3].List(ctx, tc.user)
			if err != nil {
				t.Fatal(err)
			}
			var ids []string
			for _, g := range got {
				ids = append(ids, g.ID)
			}
			if strings.Join(ids, ",") != strings.Join(tc.want, ",") {
				t.Errorf("List(%q) = %v, want %v", tc.user, ids, tc.want)
			}
		}
	})
	t.Run("unknown mfa method", func(t *testing.T) {
		if _, _, err := e.sess[0].Create(ctx, alice, "", testSrc); !errors.Is(err, authn.ErrInvalidInput) {
			t.Errorf("Create without an MFA method: %v, want ErrInvalidInput", err)
		}
	})
	t.Run("token never prints", func(t *testing.T) {
		if out := sprintAll(tok); strings.Contains(out, tok.Reveal()) {
			t.Errorf("token printed: %s", out)
		}
	})
	t.Run("store holds only the token hash", func(t *testing.T) {
		e.c.WaitConverged(10 * time.Second)
		for i := 0; i < e.c.Len(); i++ {
			scanDir(t, e.c.Dir(i), []byte(tok.Reveal()))
		}
	})
}

// sortedIDs returns ids in List's order for sessions created at the same
// instant.
func sortedIDs(ids ...string) []string {
	slices.Sort(ids)
	return ids
}

func TestSessionCreateRefusesDisabledUser(t *testing.T) {
	e := newStateEnv(t)
	ctx := t.Context()
	alice := authn.Identity{UserID: "alice"}
	if _, err := e.users[0].Upsert(ctx, alice); err != nil {
		t.Fatal(err)
	}
	if err := e.users[1].SetDisabled(ctx, "alice", true, admin, testSrc); err != nil {
		t.Fatal(err)
	}
	if _, _, err := e.sess[2].Create(ctx, alice, authn.MethodTOTP, testSrc); !errors.Is(err, authn.ErrUserDisabled) {
		t.Fatalf("Create for a disabled user: %v, want ErrUserDisabled", err)
	}
	ev := e.rec.OfType(audit.TypeLogin, "alice")
	if len(ev) != 1 || ev[0].Outcome != audit.Failure || ev[0].Reason != authn.ReasonUserDisabled {
		t.Errorf("auth.login events = %+v", ev)
	}
}

// TestSessionInvalid covers every way a session ends, each checked on
// every node right after the change.
func TestSessionInvalid(t *testing.T) {
	e := newStateEnv(t)
	ctx := t.Context()
	for i, tc := range []struct {
		name string
		end  func(tok authn.SessionToken, s authn.Session, user string) // ends the session
		why  string
	}{
		{"absolute lifetime", func(tok authn.SessionToken, _ authn.Session, _ string) {
			// Used every 50 minutes it never idles, but it ends at 12h.
			for e.clock.Now().Before(stateEpoch.Add(12*time.Hour - 50*time.Minute)) {
				e.clock.Advance(50 * time.Minute)
				e.validEverywhere(tok)
			}
			e.clock.Set(stateEpoch.Add(12 * time.Hour))
		}, "expired"},
		{"idle", func(authn.SessionToken, authn.Session, string) { e.clock.Advance(time.Hour) }, "idle"},
		{"revoked through another node", func(_ authn.SessionToken, s authn.Session, _ string) {
			if err := e.sess[2].Revoke(ctx, s.ID, admin); err != nil {
				t.Fatal(err)
			}
		}, "revoked"},
		{"all of the user's sessions revoked", func(_ authn.SessionToken, _ authn.Session, user string) {
			if err := e.sess[1].RevokeUser(ctx, user, admin); err != nil {
				t.Fatal(err)
			}
		}, "revoked"},
		{"user disabled through another node", func(_ authn.SessionToken, _ authn.Session, user string) {
			if err := e.users[2].SetDisabled(ctx, user, true, admin, testSrc); err != nil {
				t.Fatal(err)
			}
		}, "revoked"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			e.clock.Set(stateEpoch)
			user := "user-" + string(rune('a'+i))
			id := authn.Identity{UserID: user}
			if _, err := e.users[0].Upsert(ctx, id); err != nil {
				t.Fatal(err)
			}
			tok, s, err := e.sess[i%3].Create(ctx, id, authn.MethodTOTP, testSrc)
			if err != nil {
				t.Fatal(err)
			}
			e.validEverywhere(tok)
			tc.end(tok, s, user)
			e.invalidEverywhere(tok, tc.why)
		})
	}
	t.Run("unknown and malformed tokens", func(t *testing.T) {
		for _, tok := range []authn.SessionToken{"", "short", authn.SessionToken(strings.Repeat("A", 43)), authn.SessionToken(strings.Repeat("A", 4096))} {
			if _, err := e.sess[0].Validate(ctx, tok); !errors.Is(err, authn.ErrSessionInvalid) {
				t.Errorf("Validate(len %d) = %v, want ErrSessionInvalid", len(tok), err)
			}
		}
	})
}

func TestSessionRevoke(t *testing.T) {
	e := newStateEnv(t)
	ctx := t.Context()
	alice := authn.Identity{UserID: "alice"}
	tok1, s1, _ := e.sess[0].Create(ctx, alice, authn.MethodTOTP, testSrc)
	tok2, s2, _ := e.sess[1].Create(ctx, alice, authn.MethodTOTP, testSrc)
	tokB, _, _ := e.sess[2].Create(ctx, authn.Identity{UserID: "alice/b"}, authn.MethodTOTP, testSrc)

	// alice signs out of one session herself.
	if err := e.sess[1].Revoke(ctx, s1.ID, audit.Actor{UserID: "alice", Session: s2.ID}); err != nil {
		t.Fatal(err)
	}
	e.invalidEverywhere(tok1, "revoked")
	e.validEverywhere(tok2)
	if ev := e.rec.OfType(audit.TypeLogout, "alice"); len(ev) != 1 || ev[0].Details["session"] != s1.ID {
		t.Errorf("auth.logout events = %+v", ev)
	}
	if err := e.sess[2].Revoke(ctx, s1.ID, admin); !errors.Is(err, authn.ErrUnknownSession) {
		t.Errorf("revoking twice: %v, want ErrUnknownSession", err)
	}
	for _, bad := range []string{"", "../x", "a/b", strings.Repeat("x", 100)} {
		if err := e.sess[0].Revoke(ctx, bad, admin); !errors.Is(err, authn.ErrInvalidInput) {
			t.Errorf("Revoke(%q) = %v, want ErrInvalidInput", bad, err)
		}
	}
	// Revoking every session of "alice" leaves "alice/b" alone.
	if err := e.sess[0].RevokeUser(ctx, "alice", admin); err != nil {
		t.Fatal(err)
	}
	e.invalidEverywhere(tok2, "revoked")
	e.validEverywhere(tokB)
	adm := e.rec.Filter(func(ev audit.Event) bool { return ev.Type == audit.TypeAdmin && ev.Action == authn.ActionRevoke })
	if len(adm) != 2 || adm[1].Details["sessions_ended"] != "1" || adm[1].Actor.UserID != "root" || adm[1].Outcome != audit.Success {
		t.Errorf("admin revoke events = %+v", adm)
	}
}

func TestSessionLastSeen(t *testing.T) {
	e := newStateEnv(t)
	ctx := t.Context()
	tok, _, err := e.sess[0].Create(ctx, authn.Identity{UserID: "alice"}, authn.MethodTOTP, testSrc)
	if err != nil {
		t.Fatal(err)
	}
	for i, tc := range []struct {
		name    string
		advance time.Duration
		want    time.Duration // LastSeen after Validate, from the epoch
	}{
		{"within a minute: not written", 30 * time.Second, 0},
		{"still within a minute", 29 * time.Second, 0},
		{"a minute on: written", 31 * time.Second, 90 * time.Second},
		{"59 minutes later: still valid, written", 59 * time.Minute, 59*time.Minute + 90*time.Second},
	} {
		t.Run(tc.name, func(t *testing.T) {
			e.clock.Advance(tc.advance)
			s, err := e.sess[i%3].Validate(ctx, tok)
			if err != nil {
				t.Fatal(err)
			}
			if !s.LastSeen.Equal(stateEpoch.Add(tc.want)) {
				t.Errorf("Validate returned LastSeen epoch+%s, want epoch+%s", s.LastSeen.Sub(stateEpoch), tc.want)
			}
			stored, _ := e.sess[(i+1)%3].List(ctx, "alice")
			if len(stored) != 1 || !stored[0].LastSeen.Equal(stateEpoch.Add(tc.want)) {
				t.Fatalf("stored LastSeen = %v, want epoch+%s", stored, tc.want)
			}
		})
	}
}

func TestSessionSweep(t *testing.T) {
	e := newStateEnv(t)
	ctx := t.Context()
	old, _, _ := e.sess[0].Create(ctx, authn.Identity{UserID: "alice"}, authn.MethodTOTP, testSrc)
	e.clock.Advance(50 * time.Minute)
	fresh, _, _ := e.sess[1].Create(ctx, authn.Identity{UserID: "bob"}, authn.MethodTOTP, testSrc)
	e.clock.Advance(20 * time.Minute) // alice's session is idle now, bob's is not
	n, err := e.sess[2].Sweep(ctx)
	if err != nil || n != 1 {
		t.Fatalf("Sweep = %d, %v; want 1", n, err)
	}
	e.invalidEverywhere(old, "revoked")
	e.validEverywhere(fresh)
	if all, _ := e.sess[0].List(ctx, ""); len(all) != 1 || all[0].Identity.UserID != "bob" {
		t.Errorf("sessions after sweep = %+v", all)
	}
}

func TestSessionAuditFailureUndoesSession(t *testing.T) {
	e := newStateEnv(t)
	ctx := t.Context()
	e.rec.Fail(errors.New("journal unavailable"))
	if _, _, err := e.sess[0].Create(ctx, authn.Identity{UserID: "alice"}, authn.MethodTOTP, testSrc); err == nil {
		t.Fatal("Create succeeded without an audit record")
	}
	e.rec.Fail(nil)
	if all, err := e.sess[1].List(ctx, ""); err != nil || len(all) != 0 {
		t.Errorf("sessions left behind: %v, %v", all, err)
	}
}

func TestSessionConfig(t *testing.T) {
	c := clustertest.Start(t, 1, clustertest.Options{Fast: true})
	rec := &authntest.Recorder{}
	for _, tc := range []struct {
		name     string
		cfg      authn.SessionConfig
		want     string        // substring of the error; "" for none
		lifetime time.Duration // the lifetime in effect
		idle     time.Duration // the idle timeout in effect
	}{
		{"defaults", authn.SessionConfig{Store: c.Node(0), Recorder: rec}, "", 12 * time.Hour, time.Hour},
		{"custom", authn.SessionConfig{Store: c.Node(0), Recorder: rec, Lifetime: time.Hour, IdleTimeout: 10 * time.Minute}, "", time.Hour, 10 * time.Minute},
		{"no store", authn.SessionConfig{Recorder: rec}, "store", 0, 0},
		{"no recorder", authn.SessionConfig{Store: c.Node(0)}, "recorder", 0, 0},
		{"negative lifetime", authn.SessionConfig{Store: c.Node(0), Recorder: rec, Lifetime: -1}, "lifetime", 0, 0},
		{"negative idle", authn.SessionConfig{Store: c.Node(0), Recorder: rec, IdleTimeout: -1}, "idle_timeout", 0, 0},
		{"empty admin group", authn.SessionConfig{Store: c.Node(0), Recorder: rec, AdminGroups: []string{" "}}, "admin_groups[0]", 0, 0},
	} {
		t.Run(tc.name, func(t *testing.T) {
			clock := authntest.NewClock(stateEpoch)
			tc.cfg.Now = clock.Now
			s, err := authn.NewSessions(tc.cfg)
			if (err == nil) != (tc.want == "") || (err != nil && !strings.Contains(err.Error(), tc.want)) {
				t.Fatalf("NewSessions = %v, want error containing %q", err, tc.want)
			}
			if err != nil {
				return
			}
			tok, sess, err := s.Create(t.Context(), authn.Identity{UserID: "u-" + tc.name}, authn.MethodTOTP, testSrc)
			if err != nil {
				t.Fatal(err)
			}
			if !sess.Expires.Equal(stateEpoch.Add(tc.lifetime)) {
				t.Errorf("session expires at epoch+%s, want epoch+%s", sess.Expires.Sub(stateEpoch), tc.lifetime)
			}
			clock.Advance(tc.idle - time.Second)
			if _, err := s.Validate(t.Context(), tok); err != nil {
				t.Fatalf("just under the idle timeout: %v", err)
			}
			clock.Advance(tc.idle)
			if _, err := s.Validate(t.Context(), tok); !errors.Is(err, authn.ErrSessionInvalid) {
				t.Fatalf("after the idle timeout: %v, want ErrSessionInvalid", err)
			}
		})
	}
}
