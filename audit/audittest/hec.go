package audittest

import (
	"bytes"
	"compress/gzip"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net/http"
	"net/http/httptest"
	"strconv"
	"sync"
	"testing"
)

// HECOptions tune an HEC server.
type HECOptions struct {
	// Token is the accepted token; default "test-token".
	Token string
	// Ack requires a request channel and answers with ack IDs; acks
	// become true after AckAfterPolls polls of /services/collector/ack.
	Ack           bool
	AckAfterPolls int
	// AckEndpointStatus, when set, is the status every ack request gets
	// (400 or 404: a receiver without indexer acknowledgement), with
	// {"text":"ACK is disabled","code":14}.
	AckEndpointStatus int
}

// HEC is an HTTP Event Collector that follows Splunk's protocol: batches
// of concatenated JSON event objects posted to /services/collector/event
// (optionally gzip-compressed) with "Authorization: Splunk <token>";
// answers {"text":"Success","code":0} or errors such as 401 {"text":"Token
// is required","code":2}, 403 {"text":"Invalid token","code":4}, 400
// {"text":"Invalid data format","code":6} and 503 {"text":"Server is
// busy","code":9}; indexer acknowledgement through
// /services/collector/ack with X-Splunk-Request-Channel.
type HEC struct {
	URL  string
	opts HECOptions
	srv  *httptest.Server

	mu       sync.Mutex // guards everything below
	events   []json.RawMessage
	metas    []map[string]json.RawMessage
	fail     []failure
	nextAck  uint64
	acks     map[string]map[uint64]int // channel -> ack ID -> polls so far
	pending  map[uint64][]json.RawMessage
	posts    int
	ackPosts int
	gzipped  int
	statuses map[int]int
}

type failure struct {
	status, code int
	text         string
}

// NewHEC starts an HEC server; it stops when the test ends.
func NewHEC(t testing.TB, opts HECOptions) *HEC {
	if opts.Token == "" {
		opts.Token = "test-token"
	}
	h := &HEC{opts: opts, acks: map[string]map[uint64]int{}, pending: map[uint64][]json.RawMessage{}, statuses: map[int]int{}}
	mux := http.NewServeMux()
	mux.HandleFunc("POST /services/collector/event", h.serveEvent)
	mux.HandleFunc("POST /services/collector/ack", h.serveAck)
	h.srv = httptest.NewServer(mux)
	h.URL = h.srv.URL
	t.Cleanup(h.srv.Close)
	return h
}

// Token returns the accepted token.
func (h *HEC) Token() string { return h.opts.Token }

// FailNext makes the next n event posts fail with status and an HEC error
// body of code and text (for example 503, 9, "Server is busy").
func (h *HEC) FailNext(n, status, code int, text string) {
	h.mu.Lock()
	defer h.mu.Unlock()
	for i := 0; i < n; i++ {
		h.fail = append(h.fail, failure{status, code, text})
	}
}

// Events returns the "event" member of every indexed event, in arrival
// order.
func (h *HEC) Events() []json.RawMessage {
	h.mu.Lock()
	defer h.mu.Unlock()
	return append([]json.RawMessage(nil), h.events...)
}

// Meta returns the other members (time, host, source, ...) of indexed
// event i.
func (h *HEC) Meta(i int) map[string]json.RawMessage {
	h.mu.Lock()
	defer h.mu.Unlock()
	return h.metas[i]
}

// Stats reports event posts received, how many were gzip-compressed, and
// the count of each status answered.
func (h *HEC) Stats() (posts, gzipped int, statuses map[int]int) {
	h.mu.Lock()
	defer h.mu.Unlock()
	st := map[int]int{}
	for k, v := range h.statuses {
		st[k] = v
	}
	return h.posts, h.gzipped, st
}

func (h *HEC) reply(w http.ResponseWriter, status, code int, text string, extra map[string]any) {
	h.statuses[status]++
	body := map[string]any{"text": text, "code": code}
	for k, v := range extra {
		body[k] = v
	}
	w.Header().Set("Content-Type", "application/json")
	w.WriteHeader(status)
	json.NewEncoder(w).Encode(body)
}

// auth checks the token; it answers and returns false when it fails.
func (h *HEC) auth(w http.ResponseWriter, r *http.Request) bool {
	a := r.Header.Get("Authorization")
	switch {
	case a == "":
		h.reply(w, http.StatusUnauthorized, 2, "Token is required", nil)
		return false
	case a != "Splunk "+h.opts.Token:
		h.reply(w, http.StatusForbidden, 4, "Invalid token", nil)
		return false
	}
	return true
}

func body(r *http.Request) ([]byte, error) {
	var rd io.Reader = r.Body
	if r.Header.Get("Content-Encoding") == "gzip" {
		zr, err := gzip.NewReader(r.Body)
		if err != nil {
			return nil, err
		}
		rd = zr
	}
	return io.ReadAll(io.LimitReader(rd, 64<<20))
}

func (h *HEC) serveEvent(w http.ResponseWriter, r *http.Request) {
	h.mu.Lock()
	defer h.mu.Unlock()
	h.posts++
	if r.Header.Get("Content-Encoding") == "gzip" {
		h.gzipped++
	}
	if !h.auth(w, r) {
		return
	}
	if len(h.fail) > 0 {
		f := h.fail[0]
		h.fail = h.fail[1:]
		h.reply(w, f.status, f.code, f.text, nil)
		return
	}
	channel := r.Header.Get("X-Splunk-Request-Channel")
	if h.opts.Ack && channel == "" {
		h.reply(w, http.StatusBadRequest, 10, "Data channel is missing", nil)
		return
	}
	b, err := body(r)
	if err != nil {
		h.reply(w, http.StatusBadRequest, 6, "Invalid data format", nil)
		return
	}
	dec := json.NewDecoder(bytes.NewReader(b))
	var evs []json.RawMessage
	var metas []map[string]json.RawMessage
	for i := 0; ; i++ {
		var m map[string]json.RawMessage
		err := dec.Decode(&m)
		if errors.Is(err, io.EOF) {
			break
		}
		if err != nil {
			h.reply(w, http.StatusBadRequest, 6, "Invalid data format", map[string]any{"invalid-event-number": i})
			return
		}
		ev, ok := m["event"]
		if !ok || len(ev) == 0 || string(ev) == `""` || string(ev) == "null" {
			h.reply(w, http.StatusBadRequest, 12, "Event field is required", map[string]any{"invalid-event-number": i})
			return
		}
		delete(m, "event")
		evs = append(evs, ev)
		metas = append(metas, m)
	}
	if len(evs) == 0 {
		h.reply(w, http.StatusBadRequest, 5, "No data", nil)
		return
	}
	if !h.opts.Ack {
		h.events = append(h.events, evs...)
		h.metas = append(h.metas, metas...)
		h.reply(w, http.StatusOK, 0, "Success", nil)
		return
	}
	id := h.nextAck
	h.nextAck++
	if h.acks[channel] == nil {
		h.acks[channel] = map[uint64]int{}
	}
	h.acks[channel][id] = 0
	h.pending[id] = evs
	h.events = append(h.events, evs...)
	h.metas = append(h.metas, metas...)
	h.reply(w, http.StatusOK, 0, "Success", map[string]any{"ackId": id})
}

func (h *HEC) serveAck(w http.ResponseWriter, r *http.Request) {
	h.mu.Lock()
	defer h.mu.Unlock()
	if !h.auth(w, r) {
		return
	}
	h.ackPosts++
	if h.opts.AckEndpointStatus != 0 {
		h.reply(w, h.opts.AckEndpointStatus, 14, "ACK is disabled", nil)
		return
	}
	channel := r.Header.Get("X-Splunk-Request-Channel")
	if channel == "" {
		h.reply(w, http.StatusBadRequest, 10, "Data channel is missing", nil)
		return
	}
	b, err := body(r)
	var req struct {
		Acks []uint64 `json:"acks"`
	}
	if err != nil || json.Unmarshal(b, &req) != nil {
		h.reply(w, http.StatusBadRequest, 6, "Invalid data format", nil)
		return
	}
	out := map[string]bool{}
	for _, id := range req.Acks {
		polls, ok := h.acks[channel][id]
		if !ok {
			out[strconv.FormatUint(id, 10)] = false
			continue
		}
		polls++
		h.acks[channel][id] = polls
		out[strconv.FormatUint(id, 10)] = polls > h.opts.AckAfterPolls
	}
	h.statuses[http.StatusOK]++
	w.Header().Set("Content-Type", "application/json")
	fmt.Fprintf(w, "%s\n", mustJSON(map[string]any{"acks": out}))
}

func mustJSON(v any) []byte {
	b, err := json.Marshal(v)
	if err != nil {
		panic(err)
	}
	return b
}

func jsonUnmarshal(b []byte, v any) error { return json.Unmarshal(b, v) }

// Requests returns how many event posts and ack requests arrived.
func (h *HEC) Requests() (events, acks int) {
	h.mu.Lock()
	defer h.mu.Unlock()
	return h.posts, h.ackPosts
}
