// Package authntest helps test code that uses authn: an audit Recorder that
// keeps events for the test to read, a clock the test moves by hand, and
// TOTP codes for an enrollment, so tests never sleep and never mock the
// store (use cluster/clustertest for that).
package authntest

import (
	"context"
	"errors"
	"fmt"
	"slices"
	"strconv"
	"sync"
	"time"

	"github.com/ferryvpn/ferry/audit"
	"github.com/pquerna/otp"
	"github.com/pquerna/otp/totp"
)

// Recorder is an audit.Recorder that keeps every event in memory, in the
// order recorded. It fills in ID, Time (from Now, or time.Now) and Node as
// the real recorder does. It is safe for concurrent use.
type Recorder struct {
	// Now stamps events with no Time; default time.Now.
	Now func() time.Time
	// Node is set on events with no Node.
	Node string

	mu     sync.Mutex // guards events, seq and err
	events []audit.Event
	seq    int
	err    error
}

var _ audit.Recorder = (*Recorder)(nil)

// Record keeps e, or returns the error set with Fail.
func (r *Recorder) Record(ctx context.Context, e audit.Event) error {
	r.mu.Lock()
	defer r.mu.Unlock()
	if r.err != nil {
		return r.err
	}
	r.seq++
	if e.ID == "" {
		e.ID = "test-" + strconv.Itoa(r.seq)
	}
	if e.Time.IsZero() {
		now := time.Now
		if r.Now != nil {
			now = r.Now
		}
		e.Time = now()
	}
	if e.Node == "" {
		e.Node = r.Node
	}
	e.Details = cloneMap(e.Details)
	r.events = append(r.events, e)
	return nil
}

// Fail makes every later Record return err (nil: succeed again), to test
// what callers do when the audit log is unavailable.
func (r *Recorder) Fail(err error) {
	r.mu.Lock()
	defer r.mu.Unlock()
	r.err = err
}

// Events returns a copy of every event recorded so far.
func (r *Recorder) Events() []audit.Event {
	r.mu.Lock()
	defer r.mu.Unlock()
	return slices.Clone(r.events)
}

// Filter returns the events for which keep reports true.
func (r *Recorder) Filter(keep func(audit.Event) bool) []audit.Event {
	var out []audit.Event
	for _, e := range r.Events() {
		if keep(e) {
			out = append(out, e)
		}
	}
	return out
}

// OfType returns the events of type t about target user (any user for "").
func (r *Recorder) OfType(t audit.Type, user string) []audit.Event {
	return r.Filter(func(e audit.Event) bool {
		return e.Type == t && (user == "" || e.Target.User == user)
	})
}

// Last returns the last event, or false if there is none.
func (r *Recorder) Last() (audit.Event, bool) {
	r.mu.Lock()
	defer r.mu.Unlock()
	if len(r.events) == 0 {
		return audit.Event{}, false
	}
	return r.events[len(r.events)-1], true
}

// Len returns how many events were recorded.
func (r *Recorder) Len() int {
	r.mu.Lock()
	defer r.mu.Unlock()
	return len(r.events)
}

// Reset forgets every event.
func (r *Recorder) Reset() {
	r.mu.Lock()
	defer r.mu.Unlock()
	r.events = nil
}

func cloneMap(m map[string]string) map[string]string {
	if m == nil {
		return nil
	}
	out := make(map[string]string, len(m))
	for k, v := range m {
		out[k] = v
	}
	return out
}

// Clock is a clock that moves only when told. Pass its Now method as a
// Config's Now. It is safe for concurrent use.
type Clock struct {
	mu sync.Mutex // guards t
	t  time.Time
}

// NewClock returns a Clock reading start.
func NewClock(start time.Time) *Clock { return &Clock{t: start} }

// Now returns the clock's time.
func (c *Clock) Now() time.Time {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.t
}

// Advance moves the clock by d and returns the new time.
func (c *Clock) Advance(d time.Duration) time.Time {
	c.mu.Lock()
	defer c.mu.Unlock()
	c.t = c.t.Add(d)
	return c.t
}

// Set moves the clock to t.
func (c *Clock) Set(t time.Time) {
	c.mu.Lock()
	defer c.mu.Unlock()
	c.t = t
}

// TOTPCode returns the code an authenticator app holding the otpauth://
// URI of an authn.Enrollment shows at time at.
func TOTPCode(uri string, at time.Time) (string, error) {
	key, err := otp.NewKeyFromURL(uri)
	if err != nil {
		return "", fmt.Errorf("parsing otpauth URI: %w", err)
	}
	if key.Type() != "totp" {
		return "", errors.New("authntest: not a TOTP URI")
	}
	return totp.GenerateCodeCustom(key.Secret(), at, totp.ValidateOpts{
		Period: uint(key.Period()), Digits: key.Digits(), Algorithm: key.Algorithm(),
	})
}

// TOTPSecret returns the base32 secret inside an otpauth:// URI.
func TOTPSecret(uri string) (string, error) {
	key, err := otp.NewKeyFromURL(uri)
	if err != nil {
		return "", fmt.Errorf("parsing otpauth URI: %w", err)
	}
	return key.Secret(), nil
}
