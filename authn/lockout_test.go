package authn_test

import (
	"errors"
	"strconv"
	"sync"
	"testing"
	"time"

	"github.com/ferryvpn/ferry/audit"
	"github.com/ferryvpn/ferry/authn"
)

// TestLockout spreads failures over every node: the count is cluster-wide,
// the lock refuses even the right code, and it ends after LockoutDuration
// by the injected clock.
func TestLockout(t *testing.T) {
	e := newStateEnv(t)
	ctx := t.Context()
	alice := authn.Identity{UserID: "alice"}
	uri, recovery := e.enroll(alice)

	for i := range authn.MaxFailures {
		err := e.mfa[i%3].Verify(ctx, alice, e.wrong(uri), testSrc)
		if !errors.Is(err, authn.ErrBadCode) {
			t.Fatalf("failure %d on node %d: %v, want ErrBadCode", i+1, i%3, err)
		}
		if got := len(e.rec.OfType(audit.TypeLockout, "alice")); (i+1 < authn.MaxFailures && got != 0) || (i+1 == authn.MaxFailures && got != 1) {
			t.Fatalf("after %d failures: %d auth.lockout events", i+1, got)
		}
	}
	lockedAt := e.clock.Now()
	lock := e.rec.OfType(audit.TypeLockout, "alice")[0]
	if lock.Details["failures"] != strconv.Itoa(authn.MaxFailures) ||
		lock.Details["locked_until"] != lockedAt.Add(authn.LockoutDuration).Format(time.RFC3339) {
		t.Errorf("auth.lockout details = %v", lock.Details)
	}

	for _, tc := range []struct {
		name    string
		at      time.Duration // after the lock started
		attempt func(node int) error
		want    error
	}{
		{"right code at once", 0, func(n int) error { return e.mfa[n].Verify(ctx, alice, e.code(uri), testSrc) }, authn.ErrLocked},
		{"wrong code", time.Minute, func(n int) error { return e.mfa[n].Verify(ctx, alice, e.wrong(uri), testSrc) }, authn.ErrLocked},
		{"recovery code", 2 * time.Minute, func(n int) error { return e.mfa[n].VerifyRecovery(ctx, alice, recovery[0], testSrc) }, authn.ErrLocked},
		{"right code just before the end", authn.LockoutDuration - time.Second,
			func(n int) error { return e.mfa[n].Verify(ctx, alice, e.code(uri), testSrc) }, authn.ErrLocked},
		{"right code at the end", authn.LockoutDuration, func(n int) error { return e.mfa[n].Verify(ctx, alice, e.code(uri), testSrc) }, nil},
	} {
		t.Run(tc.name, func(t *testing.T) {
			e.clock.Set(lockedAt.Add(tc.at))
			for n := range 3 {
				if tc.want == nil && n > 0 {
					break // a right code is accepted once
				}
				err := tc.attempt(n)
				if !errors.Is(err, tc.want) || (tc.want == nil && err != nil) {
					t.Fatalf("node %d: %v, want %v", n, err, tc.want)
				}
			}
		})
	}
	if n := len(e.rec.OfType(audit.TypeLockout, "alice")); n != 1 {
		t.Errorf("%d auth.lockout events, want 1", n)
	}
	locked := e.rec.Filter(func(ev audit.Event) bool { return ev.Reason == authn.ReasonLocked })
	if len(locked) != 12 {
		t.Errorf("%d attempts recorded as refused for the lock, want 12", len(locked))
	}
}

// TestLockoutCountsConsecutiveFailures checks that a success resets the
// count and that an expired lock starts a fresh one.
func TestLockoutCountsConsecutiveFailures(t *testing.T) {
	e := newStateEnv(t)
	ctx := t.Context()
	alice := authn.Identity{UserID: "alice"}
	uri, recovery := e.enroll(alice)
	fail := func(n int) {
		t.Helper()
		for i := range n {
			if err := e.mfa[i%3].Verify(ctx, alice, e.wrong(uri), testSrc); !errors.Is(err, authn.ErrBadCode) {
				t.Fatalf("failure %d: %v", i+1, err)
			}
		}
	}
	step := func() { e.clock.Advance(30 * time.Second) }

	fail(authn.MaxFailures - 1)
	if err := e.mfa[1].Verify(ctx, alice, e.code(uri), testSrc); err != nil {
		t.Fatalf("right code after %d failures: %v", authn.MaxFailures-1, err)
	}
	step()
	fail(authn.MaxFailures - 1)
	if err := e.mfa[2].VerifyRecovery(ctx, alice, recovery[0], testSrc); err != nil {
		t.Fatalf("recovery code after %d failures: %v", authn.MaxFailures-1, err)
	}
	fail(authn.MaxFailures - 1)
	if err := e.mfa[0].Verify(ctx, alice, e.code(uri), testSrc); err != nil {
		t.Fatalf("the count was not reset by the recovery code: %v", err)
	}
	step()
	fail(authn.MaxFailures)
	if err := e.mfa[0].Verify(ctx, alice, e.code(uri), testSrc); !errors.Is(err, authn.ErrLocked) {
		t.Fatalf("after %d failures: %v, want ErrLocked", authn.MaxFailures, err)
	}
	// After the lock runs out, one failure does not lock again.
	e.clock.Advance(authn.LockoutDuration)
	fail(1)
	if err := e.mfa[0].Verify(ctx, alice, e.code(uri), testSrc); err != nil {
		t.Fatalf("one failure after the lock ran out: %v", err)
	}
	if n := len(e.rec.OfType(audit.TypeLockout, "alice")); n != 1 {
		t.Errorf("%d auth.lockout events, want 1", n)
	}
}

// TestLockoutConcurrentFailures sends failures to every node at once: none
// is lost, and exactly one of them starts the lock.
func TestLockoutConcurrentFailures(t *testing.T) {
	e := newStateEnv(t)
	ctx := t.Context()
	alice := authn.Identity{UserID: "alice"}
	uri, _ := e.enroll(alice)
	bad := e.wrong(uri)

	const attempts = 15
	errs := make([]error, attempts)
	start := make(chan struct{})
	var wg sync.WaitGroup
	for i := range attempts {
		wg.Add(1)
		go func() {
			defer wg.Done()
			<-start
			errs[i] = e.mfa[i%3].Verify(ctx, alice, bad, testSrc)
		}()
	}
	close(start)
	wg.Wait()
	bads := 0
	for i, err := range errs {
		switch {
		case errors.Is(err, authn.ErrBadCode):
			bads++
		case errors.Is(err, authn.ErrLocked):
		default:
			t.Fatalf("attempt %d: %v", i, err)
		}
	}
	if bads < authn.MaxFailures {
		t.Errorf("only %d attempts were checked before the lock, want at least %d", bads, authn.MaxFailures)
	}
	if n := len(e.rec.OfType(audit.TypeLockout, "alice")); n != 1 {
		t.Errorf("%d auth.lockout events, want exactly 1", n)
	}
	// Every checked failure was counted: the last count recorded equals
	// the number of wrong-code results.
	max := 0
	for _, ev := range e.rec.Filter(func(ev audit.Event) bool { return ev.Reason == authn.ReasonWrongCode }) {
		if n, _ := strconv.Atoi(ev.Details["failures"]); n > max {
			max = n
		}
	}
	if max != bads {
		t.Errorf("failure count reached %d, want %d (one per wrong-code result)", max, bads)
	}
	if err := e.mfa[0].Verify(ctx, alice, e.code(uri), testSrc); !errors.Is(err, authn.ErrLocked) {
		t.Errorf("right code after concurrent failures: %v, want ErrLocked", err)
	}
}
