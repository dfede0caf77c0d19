package authn

import (
	"strconv"
	"sync"
	"time"
)

// Refusals of unauthenticated requests are evidence, but anyone can cause
// them: at most refusalBudget a minute are recorded per endpoint and node,
// and the next one recorded says how many were not (details "suppressed"),
// so the journal cannot be flooded through the identity provider's push
// endpoints (SCIM, back-channel logout, Shared Signals).
const (
	refusalBudget = 120
	refusalWindow = time.Minute
)

// RefusalBudget counts refusals recorded in the current window. The zero
// value is ready to use. It is safe for concurrent use.
type RefusalBudget struct {
	mu         sync.Mutex // guards the fields below
	start      time.Time
	used       int
	suppressed int
}

// Allow reports whether a refusal at now may be recorded; when it may,
// details receives the count of those suppressed since the last one.
func (b *RefusalBudget) Allow(now time.Time, details map[string]string) bool {
	b.mu.Lock()
	defer b.mu.Unlock()
	if now.Sub(b.start) >= refusalWindow {
		b.start, b.used = now, 0
	}
	if b.used >= refusalBudget {
		b.suppressed++
		return false
	}
	b.used++
	if b.suppressed > 0 {
		details["suppressed"] = strconv.Itoa(b.suppressed)
		b.suppressed = 0
	}
	return true
}
