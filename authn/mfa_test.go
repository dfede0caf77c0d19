package authn_test

import (
	"bytes"
	"encoding/json"
	"errors"
	"fmt"
	"image/png"
	"net/url"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/ferryvpn/ferry/audit"
	"github.com/ferryvpn/ferry/authn"
	"github.com/ferryvpn/ferry/authn/authntest"
	"github.com/ferryvpn/ferry/cluster/clustertest"
	"github.com/ferryvpn/ferry/cluster/seal"
)

func TestEnroll(t *testing.T) {
	e := newStateEnv(t)
	ctx := t.Context()
	alice := authn.Identity{UserID: "alice", Email: "alice@example.com", Groups: []string{"eng"}}

	if ok, err := e.mfa[2].Enrolled(ctx, "alice"); err != nil || ok {
		t.Fatalf("Enrolled before enrollment = %v, %v; want false", ok, err)
	}
	first, err := e.mfa[0].BeginEnroll(ctx, alice)
	if err != nil {
		t.Fatal(err)
	}
	t.Run("uri and QR codes", func(t *testing.T) {
		u, err := url.Parse(first.URI)
		if err != nil {
			t.Fatal(err)
		}
		q := u.Query()
		if u.Scheme != "otpauth" || u.Host != "totp" || q.Get("issuer") != "ferry" || q.Get("algorithm") != "SHA1" ||
			q.Get("digits") != "6" || q.Get("period") != "30" || !strings.Contains(u.Path, "alice@example.com") {
			t.Errorf("unexpected otpauth URI shape: scheme=%s host=%s path=%s issuer=%s alg=%s digits=%s period=%s",
				u.Scheme, u.Host, u.Path, q.Get("issuer"), q.Get("algorithm"), q.Get("digits"), q.Get("period"))
		}
		if _, err := png.Decode(bytes.NewReader(first.QRPNG)); err != nil {
			t.Errorf("QRPNG is not a PNG: %v", err)
		}
		if !strings.ContainsAny(first.QRText, "▀▄█") {
			t.Errorf("QRText has no half blocks")
		}
	})
	t.Run("enrollment never prints", func(t *testing.T) {
		secret, _ := authntest.TOTPSecret(first.URI)
		for _, s := range []string{first.String(), strings.TrimSpace(sprintAll(first))} {
			if strings.Contains(s, secret) || strings.Contains(s, "otpauth") {
				t.Errorf("enrollment printed its secret: %q", s)
			}
		}
	})
	t.Run("second begin replaces the pending secret", func(t *testing.T) {
		second, err := e.mfa[1].BeginEnroll(ctx, alice)
		if err != nil {
			t.Fatal(err)
		}
		if second.URI == first.URI {
			t.Fatal("second BeginEnroll returned the same secret")
		}
		if _, err := e.mfa[2].ConfirmEnroll(ctx, alice, e.code(first.URI), testSrc); !errors.Is(err, authn.ErrBadCode) {
			t.Fatalf("confirm with the replaced secret: %v, want ErrBadCode", err)
		}
		first = second
	})
	t.Run("verify before confirmation", func(t *testing.T) {
		if err := e.mfa[0].Verify(ctx, alice, e.code(first.URI), testSrc); !errors.Is(err, authn.ErrNotEnrolled) {
			t.Fatalf("Verify of a pending enrollment: %v, want ErrNotEnrolled", err)
		}
	})
	var recovery []string
	code := e.code(first.URI)
	t.Run("confirm", func(t *testing.T) {
		recovery, err = e.mfa[2].ConfirmEnroll(ctx, alice, code, testSrc)
		if err != nil {
			t.Fatal(err)
		}
		if len(recovery) != authn.RecoveryCodeCount {
			t.Fatalf("got %d recovery codes, want %d", len(recovery), authn.RecoveryCodeCount)
		}
		for i := 0; i < e.c.Len(); i++ {
			if ok, err := e.mfa[i].Enrolled(ctx, "alice"); err != nil || !ok {
				t.Errorf("node %d: Enrolled = %v, %v; want true", i, ok, err)
			}
		}
	})
	t.Run("confirming code counts as used", func(t *testing.T) {
		if err := e.mfa[0].Verify(ctx, alice, code, testSrc); !errors.Is(err, authn.ErrReplayed) {
			t.Fatalf("Verify with the confirming code: %v, want ErrReplayed", err)
		}
	})
	t.Run("begin or confirm again refuses", func(t *testing.T) {
		if _, err := e.mfa[0].BeginEnroll(ctx, alice); !errors.Is(err, authn.ErrAlreadyEnrolled) {
			t.Errorf("BeginEnroll when enrolled: %v, want ErrAlreadyEnrolled", err)
		}
		e.clock.Advance(30 * time.Second)
		if _, err := e.mfa[0].ConfirmEnroll(ctx, alice, e.code(first.URI), testSrc); !errors.Is(err, authn.ErrAlreadyEnrolled) {
			t.Errorf("ConfirmEnroll when enrolled: %v, want ErrAlreadyEnrolled", err)
		}
	})
	t.Run("confirm without begin", func(t *testing.T) {
		bob := authn.Identity{UserID: "bob"}
		if _, err := e.mfa[0].ConfirmEnroll(ctx, bob, "123456", testSrc); !errors.Is(err, authn.ErrNotEnrolled) {
			t.Errorf("ConfirmEnroll without BeginEnroll: %v, want ErrNotEnrolled", err)
		}
	})
}

func sprintAll(v any) string {
	var b strings.Builder
	for _, f := range []string{"%v", "%+v", "%#v", "%s", "%q", "%x"} {
		b.WriteString(fmt.Sprintf(f, v))
		b.WriteString(" ")
	}
	return b.String()
}

func TestVerify(t *testing.T) {
	e := newStateEnv(t)
	ctx := t.Context()
	alice := authn.Identity{UserID: "alice"}
	uri, _ := e.enroll(alice)
	pending := authn.Identity{UserID: "pending"}
	if _, err := e.mfa[0].BeginEnroll(ctx, pending); err != nil {
		t.Fatal(err)
	}
	var lastCode string
	// Each case runs on the clock left by the one before.
	for i, tc := range []struct {
		name    string
		advance time.Duration
		id      authn.Identity
		code    func() string
		want    error
	}{
		{"right code", 0, alice, func() string { return e.code(uri) }, nil},
		{"same code again", 0, alice, func() string { return lastCode }, authn.ErrReplayed},
		{"same code next step (within skew)", 30 * time.Second, alice, func() string { return lastCode }, authn.ErrReplayed},
		{"code from two steps ago", 0, alice, func() string {
			c, _ := authntest.TOTPCode(uri, e.clock.Now().Add(-60*time.Second))
			return c
		}, authn.ErrBadCode},
		{"code typed with a space", 0, alice, func() string { c := e.code(uri); return c[:3] + " " + c[3:] }, nil},
		{"next step's code (clock behind)", 30 * time.Second, alice, func() string {
			c, _ := authntest.TOTPCode(uri, e.clock.Now().Add(30*time.Second))
			return c
		}, nil},
		{"current code after the next step's was used", 0, alice, func() string { return e.code(uri) }, authn.ErrReplayed},
		{"code two steps ahead", 30 * time.Second, alice, func() string {
			c, _ := authntest.TOTPCode(uri, e.clock.Now().Add(90*time.Second))
			return c
		}, authn.ErrBadCode},
		{"previous step's code (clock ahead)", 60 * time.Second, alice, func() string {
			c, _ := authntest.TOTPCode(uri, e.clock.Now().Add(-30*time.Second))
			return c
		}, nil},
		{"wrong code", 30 * time.Second, alice, func() string { return e.wrong(uri) }, authn.ErrBadCode},
		{"letters", 0, alice, func() string { return "12a456" }, authn.ErrBadCode},
		{"too long", 0, alice, func() string { return e.code(uri) + "0" }, authn.ErrBadCode},
		{"empty", 0, alice, func() string { return "" }, authn.ErrBadCode},
		{"unknown user", 0, authn.Identity{UserID: "nobody"}, func() string { return "123456" }, authn.ErrNotEnrolled},
		{"pending enrollment only", 0, pending, func() string { return "123456" }, authn.ErrNotEnrolled},
	} {
		t.Run(tc.name, func(t *testing.T) {
			e.clock.Advance(tc.advance)
			code := tc.code()
			err := e.mfa[i%3].Verify(ctx, tc.id, code, testSrc)
			if !errors.Is(err, tc.want) || (tc.want == nil && err != nil) {
				t.Fatalf("Verify = %v, want %v", err, tc.want)
			}
			lastCode = code
		})
	}
	t.Run("invalid user ID", func(t *testing.T) {
		for _, id := range []string{"", strings.Repeat("x", 513), "a\nb", "\xff"} {
			if err := e.mfa[0].Verify(ctx, authn.Identity{UserID: id}, "123456", testSrc); !errors.Is(err, authn.ErrInvalidInput) {
				t.Errorf("Verify(user %q) = %v, want ErrInvalidInput", id, err)
			}
		}
	})
}

// TestVerifySameCodeOnTwoNodes sends one code to two (then three) nodes at
// the same moment, many times: exactly one must accept, the others must
// say ErrReplayed.
func TestVerifySameCodeOnTwoNodes(t *testing.T) {
	e := newStateEnv(t)
	ctx := t.Context()
	alice := authn.Identity{UserID: "alice"}
	uri, _ := e.enroll(alice)
	for _, tc := range []struct {
		name   string
		nodes  func(round int) []int
		rounds int
	}{
		{"two nodes", func(r int) []int { return []int{r % 3, (r + 1) % 3} }, 60},
		{"three nodes", func(int) []int { return []int{0, 1, 2} }, 30},
		{"same node twice and another", func(r int) []int { return []int{r % 3, r % 3, (r + 2) % 3} }, 15},
	} {
		t.Run(tc.name, func(t *testing.T) {
			for r := 0; r < tc.rounds; r++ {
				e.clock.Advance(30 * time.Second)
				code := e.code(uri)
				nodes := tc.nodes(r)
				errs := make([]error, len(nodes))
				start := make(chan struct{})
				var wg sync.WaitGroup
				for i, n := range nodes {
					wg.Add(1)
					go func() {
						defer wg.Done()
						<-start
						errs[i] = e.mfa[n].Verify(ctx, alice, code, testSrc)
					}()
				}
				close(start)
				wg.Wait()
				accepted := 0
				for i, err := range errs {
					switch {
					case err == nil:
						accepted++
					case !errors.Is(err, authn.ErrReplayed):
						t.Fatalf("round %d, node %d: %v, want nil or ErrReplayed", r, nodes[i], err)
					}
				}
				if accepted != 1 {
					t.Fatalf("round %d: %d nodes accepted the same code, want exactly 1 (%v)", r, accepted, errs)
				}
			}
		})
	}
	succ := e.rec.Filter(func(ev audit.Event) bool {
		return ev.Type == audit.TypeMFA && ev.Action == authn.ActionVerify && ev.Outcome == audit.Success
	})
	if want := 60 + 30 + 15; len(succ) != want {
		t.Errorf("recorded %d successful verifications, want %d", len(succ), want)
	}
}

func TestReset(t *testing.T) {
	e := newStateEnv(t)
	ctx := t.Context()
	alice := authn.Identity{UserID: "alice"}
	uri, recovery := e.enroll(alice)
	for range authn.MaxFailures - 1 {
		if err := e.mfa[0].Verify(ctx, alice, e.wrong(uri), testSrc); !errors.Is(err, authn.ErrBadCode) {
			t.Fatal(err)
		}
	}
	admin := audit.Actor{UserID: "root", Role: authn.RoleAdmin, Session: "s1"}
	if err := e.mfa[1].Reset(ctx, "alice", admin, testSrc); err != nil {
		t.Fatal(err)
	}
	for i := range 3 {
		if ok, err := e.mfa[i].Enrolled(ctx, "alice"); err != nil || ok {
			t.Errorf("node %d: Enrolled after reset = %v, %v", i, ok, err)
		}
	}
	if err := e.mfa[2].Verify(ctx, alice, e.code(uri), testSrc); !errors.Is(err, authn.ErrNotEnrolled) {
		t.Errorf("Verify after reset: %v, want ErrNotEnrolled", err)
	}
	if err := e.mfa[2].VerifyRecovery(ctx, alice, recovery[0], testSrc); !errors.Is(err, authn.ErrNotEnrolled) {
		t.Errorf("VerifyRecovery after reset: %v, want ErrNotEnrolled", err)
	}
	ev := e.rec.OfType(audit.TypeMFAReset, "alice")
	if len(ev) != 1 || ev[0].Outcome != audit.Success || ev[0].Actor.UserID != "root" || ev[0].Source.Addr != testSrc.Addr {
		t.Errorf("user.mfa_reset events = %+v", ev)
	}

	// Enrolling again works at once (the old replay guard is gone too), the
	// failure count starts afresh, and the old recovery codes are dead.
	uri2, _ := e.enroll(alice)
	for range authn.MaxFailures - 1 {
		if err := e.mfa[0].Verify(ctx, alice, e.wrong(uri2), testSrc); !errors.Is(err, authn.ErrBadCode) {
			t.Fatal(err)
		}
	}
	if err := e.mfa[0].Verify(ctx, alice, e.code(uri2), testSrc); err != nil {
		t.Errorf("Verify after re-enrollment: %v", err)
	}
	if err := e.mfa[0].VerifyRecovery(ctx, alice, recovery[1], testSrc); !errors.Is(err, authn.ErrBadCode) {
		t.Errorf("old recovery code after re-enrollment: %v, want ErrBadCode", err)
	}

	if err := e.mfa[0].Reset(ctx, "never", admin, testSrc); !errors.Is(err, authn.ErrNotEnrolled) {
		t.Errorf("Reset of a user without MFA: %v, want ErrNotEnrolled", err)
	}
	if ev := e.rec.OfType(audit.TypeMFAReset, "never"); len(ev) != 1 || ev[0].Outcome != audit.Failure || ev[0].Reason != authn.ReasonNotEnrolled {
		t.Errorf("failed reset events = %+v", ev)
	}
}

func TestMFAConfigValidate(t *testing.T) {
	c := clustertest.Start(t, 1, clustertest.Options{Fast: true})
	key, _ := seal.GenerateKey()
	rec := &authntest.Recorder{}
	for _, tc := range []struct {
		name string
		cfg  authn.MFAConfig
		want string // substring of the error; "" for none
	}{
		{"valid", authn.MFAConfig{Store: c.Node(0), Key: key, Recorder: rec}, ""},
		{"no store", authn.MFAConfig{Key: key, Recorder: rec}, "store"},
		{"zero key", authn.MFAConfig{Store: c.Node(0), Recorder: rec}, "key"},
		{"no recorder", authn.MFAConfig{Store: c.Node(0), Key: key}, "recorder"},
		{"issuer with colon", authn.MFAConfig{Store: c.Node(0), Key: key, Recorder: rec, Issuer: "a:b"}, "issuer"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			_, err := authn.NewMFA(tc.cfg)
			if (err == nil) != (tc.want == "") || (err != nil && !strings.Contains(err.Error(), tc.want)) {
				t.Fatalf("NewMFA = %v, want error containing %q", err, tc.want)
			}
		})
	}
}

// TestMFAAuditEvents checks that every outcome leaves an auth.mfa event
// with the exact reason, and that no event carries a code or secret.
func TestMFAAuditEvents(t *testing.T) {
	e := newStateEnv(t)
	ctx := t.Context()
	alice := authn.Identity{UserID: "alice", Email: "alice@example.com"}
	uri, recovery := e.enroll(alice)
	secret, _ := authntest.TOTPSecret(uri)
	var codes []string

	check := func(t *testing.T, user, method, reason string, outcome audit.Outcome) {
		t.Helper()
		last, ok := e.rec.Last()
		if !ok || last.Type != audit.TypeMFA || last.Outcome != outcome || last.Reason != reason ||
			last.Details["method"] != method || last.Target.User != user || last.Actor.UserID != user ||
			last.Source.Addr != testSrc.Addr || last.Source.Port != testSrc.Port || last.Source.UserAgent != testSrc.UserAgent {
			t.Fatalf("last event = %+v, want auth.mfa %s %q method %s about %s from %v", last, outcome, reason, method, user, testSrc)
		}
	}
	for _, tc := range []struct {
		name    string
		attempt func() error
		user    string
		method  string
		reason  string
		outcome audit.Outcome
	}{
		{"totp success", func() error {
			c := e.code(uri)
			codes = append(codes, c)
			return e.mfa[0].Verify(ctx, alice, c, testSrc)
		},
			"alice", authn.MethodTOTP, "", audit.Success},
		{"totp replayed", func() error { return e.mfa[1].Verify(ctx, alice, codes[0], testSrc) },
			"alice", authn.MethodTOTP, authn.ReasonReplayed, audit.Failure},
		{"totp wrong code", func() error {
			c := e.wrong(uri)
			codes = append(codes, c)
			return e.mfa[2].Verify(ctx, alice, c, testSrc)
		},
			"alice", authn.MethodTOTP, authn.ReasonWrongCode, audit.Failure},
		{"totp not enrolled", func() error { return e.mfa[0].Verify(ctx, authn.Identity{UserID: "carol"}, "123456", testSrc) },
			"carol", authn.MethodTOTP, authn.ReasonNotEnrolled, audit.Failure},
		{"recovery not enrolled", func() error {
			return e.mfa[0].VerifyRecovery(ctx, authn.Identity{UserID: "carol"}, "AAAAA-AAAAA", testSrc)
		}, "carol", authn.MethodRecovery, authn.ReasonNotEnrolled, audit.Failure},
		{"recovery success", func() error { return e.mfa[1].VerifyRecovery(ctx, alice, recovery[0], testSrc) },
			"alice", authn.MethodRecovery, "", audit.Success},
		{"recovery replayed", func() error { return e.mfa[2].VerifyRecovery(ctx, alice, recovery[0], testSrc) },
			"alice", authn.MethodRecovery, authn.ReasonReplayed, audit.Failure},
		{"recovery wrong code", func() error { return e.mfa[0].VerifyRecovery(ctx, alice, "AAAAA-AAAAA", testSrc) },
			"alice", authn.MethodRecovery, authn.ReasonWrongCode, audit.Failure},
	} {
		t.Run(tc.name, func(t *testing.T) {
			e.clock.Advance(30 * time.Second)
			err := tc.attempt()
			if (err == nil) != (tc.outcome == audit.Success) {
				t.Fatalf("attempt = %v, want outcome %s", err, tc.outcome)
			}
			check(t, tc.user, tc.method, tc.reason, tc.outcome)
		})
	}
	t.Run("locked and lockout", func(t *testing.T) {
		for range authn.MaxFailures {
			e.mfa[0].Verify(ctx, alice, e.wrong(uri), testSrc)
		}
		lock := e.rec.OfType(audit.TypeLockout, "alice")
		if len(lock) != 1 || lock[0].Reason != authn.ReasonTooManyFailures || lock[0].Details["locked_until"] == "" {
			t.Fatalf("auth.lockout events = %+v", lock)
		}
		c := e.code(uri)
		codes = append(codes, c)
		if err := e.mfa[1].Verify(ctx, alice, c, testSrc); !errors.Is(err, authn.ErrLocked) {
			t.Fatalf("Verify while locked: %v", err)
		}
		check(t, "alice", authn.MethodTOTP, authn.ReasonLocked, audit.Failure)
	})
	t.Run("no secrets in events", func(t *testing.T) {
		all, err := json.Marshal(e.rec.Events())
		if err != nil {
			t.Fatal(err)
		}
		for _, s := range append([]string{secret, strings.ToLower(secret)}, recovery...) {
			if bytes.Contains(all, []byte(s)) {
				t.Errorf("an audit event contains a secret or recovery code")
			}
		}
		for _, ev := range e.rec.Events() {
			for k, v := range ev.Details {
				for _, c := range codes {
					if v == c || ev.Reason == c {
						t.Errorf("event %s detail %s holds a submitted code", ev.Type, k)
					}
				}
			}
		}
	})
}
