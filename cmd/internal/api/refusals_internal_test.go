package api

import (
	"context"
	"net/http/httptest"
	"sync"
	"testing"
	"time"

	"github.com/ferryvpn/ferry/audit"
)

type memRecorder struct {
	mu  sync.Mutex
	evs []audit.Event
}

func (m *memRecorder) Record(_ context.Context, e audit.Event) error {
	m.mu.Lock()
	defer m.mu.Unlock()
	m.evs = append(m.evs, e)
	return nil
}

func (m *memRecorder) events() []audit.Event {
	m.mu.Lock()
	defer m.mu.Unlock()
	return append([]audit.Event(nil), m.evs...)
}

// Repeated refusals from one source are folded: the first is recorded at
// once, the rest of the window in one record with a count when the window
// ends; another source is recorded apart.
func TestRefusalsFoldPerSourceAndWindow(t *testing.T) {
	rec := &memRecorder{}
	now := time.Date(2026, 12, 1, 12, 0, 0, 0, time.UTC)
	f := newRefusals(Refusals{Interval: time.Minute, FailLimit: 1000}, func() audit.Recorder { return rec }, func() time.Time { return now }, discardLogger())
	r := httptest.NewRequest("GET", "/v1/me", nil)
	r.RemoteAddr = "198.51.100.7:4000"
	for i := 0; i < 500; i++ {
		f.refused(r, 401, "not signed in")
		now = now.Add(10 * time.Millisecond)
	}
	other := httptest.NewRequest("GET", "/v1/users", nil)
	other.RemoteAddr = "203.0.113.9:5000"
	f.refused(other, 403, "admin role required")
	if evs := rec.events(); len(evs) != 2 {
		t.Fatalf("%d records during the window, want 2 (first of each source): %+v", len(evs), evs)
	}
	now = now.Add(time.Minute)
	f.refused(r, 401, "not signed in") // a new window: flushes the old one
	evs := rec.events()
	if len(evs) != 4 {
		t.Fatalf("%d records, want 4", len(evs))
	}
	fold := evs[2]
	if fold.Details["count"] != "499" || fold.Source.Addr != "198.51.100.7" || fold.Type != audit.TypeAccessDenied {
		t.Fatalf("folded record %+v", fold)
	}
}
