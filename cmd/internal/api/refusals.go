package api

import (
	"context"
	"errors"
	"log/slog"
	"math"
	"net/http"
	"strconv"
	"sync"
	"time"

	"github.com/ferryvpn/ferry/audit"
	"github.com/ferryvpn/ferry/authn"
	"github.com/ferryvpn/ferry/cluster/admit"
	"github.com/ferryvpn/ferry/cluster/pki"
	"github.com/ferryvpn/ferry/profiles"
)

// Refusals configures how refused calls become evidence and how a source
// that keeps failing is slowed down. Zero values take the defaults.
type Refusals struct {
	// Interval is the folding window: the first refusal of a source in a
	// window is recorded at once, the rest of that window in one record
	// with a count when it ends. Default 1 minute.
	Interval time.Duration
	// FailLimit is how many refused calls (401, 403) one source may make
	// per Interval; after that it gets 429 with Retry-After until the
	// window ends. Default 30.
	FailLimit int
	// UnauthRate and UnauthBurst limit requests without a bearer token
	// (sign-in pages, joining, probes) per source: a token bucket of
	// UnauthBurst refilled at UnauthRate per second. Defaults 10/s, 60.
	UnauthRate  float64
	UnauthBurst int
	// MaxSources bounds the sources tracked at once; default 10000.
	// Beyond it, new sources share one bucket.
	MaxSources int
}

func (c *Refusals) setDefaults() {
	if c.Interval <= 0 {
		c.Interval = time.Minute
	}
	if c.FailLimit <= 0 {
		c.FailLimit = 30
	}
	if c.UnauthRate <= 0 {
		c.UnauthRate = 10
	}
	if c.UnauthBurst <= 0 {
		c.UnauthBurst = 60
	}
	if c.MaxSources <= 0 {
		c.MaxSources = 10000
	}
}

// refusals records refused calls as audit events and rate-limits sources.
// Every refused API call is evidence (PCI DSS 10.2.1.4), but evidence must
// not be a way to flood a journal kept for months on every node: the first
// refusal per source and window is recorded in full, later ones are folded
// into one record per window with a count, and a source past FailLimit
// gets 429 without reaching any handler.
type refusals struct {
	cfg Refusals
	rec func() audit.Recorder // nil result: no audit log
	now func() time.Time
	log *slog.Logger

	mu      sync.Mutex // guards sources
	sources map[string]*sourceState
}

// sourceState is one source's window.
type sourceState struct {
	start    time.Time // window start
	fails    int       // refused calls in the window (recorded or folded)
	folded   int       // refusals not recorded one by one
	limited  int       // 429s answered in the window
	first    audit.Event
	timer    *time.Timer // flushes the folded record at the window's end
	tokens   float64     // unauthenticated request bucket
	refilled time.Time
}

func newRefusals(cfg Refusals, rec func() audit.Recorder, now func() time.Time, log *slog.Logger) *refusals {
	cfg.setDefaults()
	return &refusals{cfg: cfg, rec: rec, now: now, log: log, sources: map[string]*sourceState{}}
}

// stateLocked returns src's state, starting a new window when the old one
// ended (its folded record was flushed by its timer).
func (f *refusals) stateLocked(src string, now time.Time) *sourceState {
	st, ok := f.sources[src]
	if !ok {
		if len(f.sources) >= f.cfg.MaxSources {
			f.pruneLocked(now)
		}
		if len(f.sources) >= f.cfg.MaxSources {
			src = "*" // too many sources at once: they share a bucket
			if st, ok = f.sources[src]; ok {
				return f.rollLocked(src, st, now)
			}
		}
		st = &sourceState{start: now, tokens: float64(f.cfg.UnauthBurst), refilled: now}
		f.sources[src] = st
		return st
	}
	return f.rollLocked(src, st, now)
}

func (f *refusals) rollLocked(src string, st *sourceState, now time.Time) *sourceState {
	if now.Sub(st.start) >= f.cfg.Interval {
		f.flushLocked(src, st)
		st.start, st.fails, st.folded, st.limited = now, 0, 0, 0
	}
	return st
}

// pruneLocked forgets sources whose window ended and whose bucket is full.
func (f *refusals) pruneLocked(now time.Time) {
	for k, st := range f.sources {
		if now.Sub(st.start) >= f.cfg.Interval && now.Sub(st.refilled) >= time.Duration(float64(f.cfg.UnauthBurst)/f.cfg.UnauthRate*float64(time.Second)) {
			f.flushLocked(k, st)
			delete(f.sources, k)
		}
	}
}

// flushLocked records the folded refusals of st's window, if any.
func (f *refusals) flushLocked(src string, st *sourceState) {
	if st.timer != nil {
		st.timer.Stop()
		st.timer = nil
	}
	if st.folded == 0 && st.limited == 0 {
		return
	}
	e := st.first
	e.ID, e.Time = "", time.Time{}
	e.Reason = "repeated refusals from one source, folded"
	e.Details = map[string]string{
		"count":        strconv.Itoa(st.folded + st.limited),
		"refused":      strconv.Itoa(st.folded),
		"rate_limited": strconv.Itoa(st.limited),
		"window_start": st.start.UTC().Format(time.RFC3339),
		"window":       f.cfg.Interval.String(),
		"source":       src,
	}
	st.folded, st.limited = 0, 0
	f.record(e)
}

func (f *refusals) record(e audit.Event) {
	rec := f.rec()
	if rec == nil {
		return
	}
	// The request may be gone; the record must not be.
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	if err := rec.Record(ctx, e); err != nil {
		f.log.Warn("recording a refused call failed", "err", err)
	}
}

// refused notes a refused call: recorded in full when it is the source's
// first in the window, folded otherwise.
func (f *refusals) refused(r *http.Request, status int, reason string) {
	src := auditSource(r)
	e := audit.Event{Type: audit.TypeAccessDenied, Outcome: audit.Failure, Source: src,
		Reason:  "HTTP " + strconv.Itoa(status) + ": " + reason,
		Details: map[string]string{"method": r.Method, "path": r.URL.Path, "status": strconv.Itoa(status)}}
	now := f.now()
	f.mu.Lock()
	st := f.stateLocked(src.Addr, now)
	st.fails++
	if st.fails == 1 {
		st.first = e
		f.mu.Unlock()
		f.record(e)
		return
	}
	st.folded++
	f.armLocked(src.Addr, st, now)
	f.mu.Unlock()
}

// armLocked makes sure st's folded record is written when its window ends,
// even if the source falls silent.
func (f *refusals) armLocked(src string, st *sourceState, now time.Time) {
	if st.timer != nil {
		return
	}
	st.timer = time.AfterFunc(st.start.Add(f.cfg.Interval).Sub(now), func() {
		f.mu.Lock()
		defer f.mu.Unlock()
		if cur, ok := f.sources[src]; ok && cur == st {
			st.timer = nil
			f.flushLocked(src, st)
		}
	})
}

// admit decides before any handler runs: a source past its failure limit,
// or an unauthenticated caller out of tokens, gets 429. It returns the
// seconds to wait, or 0 to go on.
func (f *refusals) admit(r *http.Request, unauthenticated bool) int {
	src := auditSource(r)
	now := f.now()
	f.mu.Lock()
	defer f.mu.Unlock()
	st := f.stateLocked(src.Addr, now)
	wait := 0.0
	if st.fails >= f.cfg.FailLimit {
		wait = st.start.Add(f.cfg.Interval).Sub(now).Seconds()
	} else if unauthenticated {
		st.tokens = math.Min(float64(f.cfg.UnauthBurst), st.tokens+now.Sub(st.refilled).Seconds()*f.cfg.UnauthRate)
		st.refilled = now
		if st.tokens < 1 {
			wait = (1 - st.tokens) / f.cfg.UnauthRate
		} else {
			st.tokens--
		}
	}
	if wait <= 0 {
		return 0
	}
	st.limited++
	if st.fails == 0 && st.limited == 1 {
		st.first = audit.Event{Type: audit.TypeAccessDenied, Outcome: audit.Failure, Source: src,
			Details: map[string]string{"method": r.Method, "path": r.URL.Path, "status": "429"}}
	}
	f.armLocked(src.Addr, st, now)
	return max(1, int(math.Ceil(wait)))
}

// guard wraps the whole API: it puts the client in the request context
// (so every audit record of the request names it), answers 429 to sources
// over their limits, and counts the refusals (401, 403) that handlers and
// the sign-in pages answer, for the failure limit.
func (h *handler) guard(next http.Handler) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		switch r.URL.Path {
		case "/healthz", "/readyz":
			next.ServeHTTP(w, r)
			return
		}
		if wait := h.refusals.admit(r, bearer(r) == ""); wait > 0 {
			w.Header().Set("Retry-After", strconv.Itoa(wait))
			writeError(w, http.StatusTooManyRequests, "too many requests: retry after "+strconv.Itoa(wait)+"s")
			return
		}
		r = r.WithContext(audit.WithSource(r.Context(), auditSource(r)))
		sw := &statusWriter{ResponseWriter: w}
		next.ServeHTTP(sw, r)
		refused := sw.status == http.StatusUnauthorized || sw.status == http.StatusForbidden ||
			sw.status == http.StatusBadRequest && signInPath(r.URL.Path)
		if refused && !sw.counted {
			// A refusal recorded elsewhere (sign-in, MFA, joining):
			// counted for the limit only. The sign-in pages answer most
			// refused steps (a forged or replayed state, a bad code
			// exchange) with 400, and record each: counted too, or a
			// source could fill the journal with them at the rate of
			// the unauthenticated bucket.
			h.refusals.count(r)
		}
	})
}

// signInPaths are the paths of the sign-in pages (authn.FlowPaths).
var signInPaths = func() map[string]bool {
	m := map[string]bool{}
	for _, p := range authn.FlowPaths() {
		m[p] = true
	}
	return m
}()

// signInPath reports whether path is one of the sign-in pages.
func signInPath(path string) bool { return signInPaths[path] }

// count adds a refusal another package recorded to its source's window.
func (f *refusals) count(r *http.Request) {
	now := f.now()
	f.mu.Lock()
	defer f.mu.Unlock()
	f.stateLocked(auditSource(r).Addr, now).fails++
}

// statusWriter remembers the status a handler wrote.
type statusWriter struct {
	http.ResponseWriter
	status  int
	counted bool // the refusal was already recorded and counted
}

func (w *statusWriter) WriteHeader(code int) {
	if w.status == 0 {
		w.status = code
	}
	w.ResponseWriter.WriteHeader(code)
}

func (w *statusWriter) Write(b []byte) (int, error) {
	if w.status == 0 {
		w.status = http.StatusOK
	}
	return w.ResponseWriter.Write(b)
}

// Flush passes through, for streaming answers (audit tail -f).
func (w *statusWriter) Flush() {
	if f, ok := w.ResponseWriter.(http.Flusher); ok {
		f.Flush()
	}
}

// Unwrap lets http.ResponseController reach the connection.
func (w *statusWriter) Unwrap() http.ResponseWriter { return w.ResponseWriter }

// refuse records a refusal the API itself decided (401, 403), unless the
// domain package that refused already recorded it.
func (h *handler) refuse(w http.ResponseWriter, r *http.Request, status int, msg string, err error) {
	if status != http.StatusUnauthorized && status != http.StatusForbidden {
		return
	}
	if sw, ok := w.(*statusWriter); ok {
		sw.counted = true
	}
	if err != nil && recordedByDomain(err) {
		h.refusals.count(r)
		return
	}
	h.refusals.refused(r, status, msg)
}

// recordedByDomain reports whether the package that returned err records
// the refusal itself (wrong codes, join tokens, issuance), so the API does
// not record it twice.
func recordedByDomain(err error) bool {
	for _, e := range []error{authn.ErrBadCode, authn.ErrReplayed, authn.ErrLocked, authn.ErrUserDisabled,
		pki.ErrTokenMalformed, pki.ErrTokenInvalid, pki.ErrTokenExpired, admit.ErrTokenUsed, admit.ErrNameNotAllowed,
		profiles.ErrNotAllowed, profiles.ErrRevokedByAdmin} {
		if errors.Is(err, e) {
			return true
		}
	}
	return false
}
