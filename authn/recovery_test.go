package authn_test

import (
	"errors"
	"regexp"
	"strings"
	"sync"
	"testing"

	"github.com/ferryvpn/ferry/audit"
	"github.com/ferryvpn/ferry/authn"
)

var recoveryShape = regexp.MustCompile(`^[A-Z2-7]{5}-[A-Z2-7]{5}$`)

func TestRecoveryCodes(t *testing.T) {
	e := newStateEnv(t)
	ctx := t.Context()
	alice := authn.Identity{UserID: "alice"}
	_, codes := e.enroll(alice)

	seen := map[string]bool{}
	for _, c := range codes {
		if !recoveryShape.MatchString(c) {
			t.Errorf("recovery code %q does not look like XXXXX-XXXXX in base32", c)
		}
		if seen[c] {
			t.Errorf("recovery code repeated")
		}
		seen[c] = true
	}
	remaining := func() int {
		t.Helper()
		n, err := e.mfa[2].RecoveryRemaining(ctx, "alice")
		if err != nil {
			t.Fatal(err)
		}
		return n
	}
	if n := remaining(); n != authn.RecoveryCodeCount {
		t.Fatalf("RecoveryRemaining = %d, want %d", n, authn.RecoveryCodeCount)
	}

	for i, tc := range []struct {
		name string
		code string
		want error
	}{
		{"as shown", codes[0], nil},
		{"reused on another node", codes[0], authn.ErrReplayed},
		{"lower case", strings.ToLower(codes[1]), nil},
		{"without the dash", strings.ReplaceAll(codes[2], "-", ""), nil},
		{"with spaces", " " + strings.ReplaceAll(codes[3], "-", " ") + " ", nil},
		{"reused without the dash", strings.ReplaceAll(codes[3], "-", ""), authn.ErrReplayed},
		{"wrong code", "AAAAA-BBBBB", authn.ErrBadCode},
		{"too short", codes[4][:9], authn.ErrBadCode},
		{"not base32", "00000-11111", authn.ErrBadCode},
		{"a TOTP code", "123456", authn.ErrBadCode},
		{"empty", "", authn.ErrBadCode},
	} {
		t.Run(tc.name, func(t *testing.T) {
			err := e.mfa[i%3].VerifyRecovery(ctx, alice, tc.code, testSrc)
			if !errors.Is(err, tc.want) || (tc.want == nil && err != nil) {
				t.Fatalf("VerifyRecovery = %v, want %v", err, tc.want)
			}
		})
	}
	if n := remaining(); n != authn.RecoveryCodeCount-4 {
		t.Errorf("RecoveryRemaining = %d, want %d", n, authn.RecoveryCodeCount-4)
	}
	t.Run("another user's code", func(t *testing.T) {
		bob := authn.Identity{UserID: "bob"}
		_, bobCodes := e.enroll(bob)
		if err := e.mfa[0].VerifyRecovery(ctx, alice, bobCodes[0], testSrc); !errors.Is(err, authn.ErrBadCode) {
			t.Errorf("alice using bob's code: %v, want ErrBadCode", err)
		}
		if err := e.mfa[0].VerifyRecovery(ctx, bob, bobCodes[0], testSrc); err != nil {
			t.Errorf("bob using his code: %v", err)
		}
	})
	t.Run("success events name the method", func(t *testing.T) {
		succ := e.rec.Filter(func(ev audit.Event) bool {
			return ev.Type == audit.TypeMFA && ev.Outcome == audit.Success && ev.Details["method"] == authn.MethodRecovery && ev.Target.User == "alice"
		})
		if len(succ) != 4 {
			t.Errorf("recovery success events = %+v", succ)
		}
	})
}

// TestRecoveryCodeOnTwoNodes spends each code on two nodes at once: exactly
// one accepts.
func TestRecoveryCodeOnTwoNodes(t *testing.T) {
	e := newStateEnv(t)
	ctx := t.Context()
	alice := authn.Identity{UserID: "alice"}
	_, codes := e.enroll(alice)
	for r, code := range codes {
		nodes := []int{r % 3, (r + 1) % 3}
		errs := make([]error, len(nodes))
		start := make(chan struct{})
		var wg sync.WaitGroup
		for i, n := range nodes {
			wg.Add(1)
			go func() {
				defer wg.Done()
				<-start
				errs[i] = e.mfa[n].VerifyRecovery(ctx, alice, code, testSrc)
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
				t.Fatalf("code %d, node %d: %v, want nil or ErrReplayed", r, nodes[i], err)
			}
		}
		if accepted != 1 {
			t.Fatalf("code %d accepted %d times, want exactly once", r, accepted)
		}
	}
	if n, err := e.mfa[0].RecoveryRemaining(ctx, "alice"); err != nil || n != 0 {
		t.Errorf("RecoveryRemaining = %d, %v; want 0", n, err)
	}
}
