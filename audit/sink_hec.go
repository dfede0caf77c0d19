package audit

import (
	"bytes"
	"compress/gzip"
	"context"
	"crypto/rand"
	"crypto/tls"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net/http"
	"net/url"
	"os"
	"strconv"
	"strings"
	"time"
)

// HECSinkConfig configures a Splunk HTTP Event Collector sink. Zero values
// take the documented defaults.
type HECSinkConfig struct {
	// Name identifies the sink and its cursor; default "hec".
	Name string
	// URL is the collector's base URL, e.g. https://splunk.example.com:8088.
	// Required.
	URL string
	// TokenFile holds the HEC token. Required. It is read at start and
	// again after the collector rejects the token, so a rotated token is
	// picked up without a restart.
	TokenFile string
	// Format renders each event; default JSONLines. Output that is a JSON
	// object is sent as the HEC event object, anything else as a string.
	Format Format
	// Index, Source and SourceType fill the HEC metadata; Source defaults
	// to "ferry" and SourceType to "ferry:audit".
	Index, Source, SourceType string
	// NoGzip sends bodies uncompressed.
	NoGzip bool
	// Ack enables indexer acknowledgement: a batch counts as delivered only
	// once /services/collector/ack reports it indexed. The token must have
	// acknowledgement enabled in Splunk.
	Ack bool
	// Channel is the X-Splunk-Request-Channel GUID; default a random one.
	Channel string
	// AckTimeout is how long an unacknowledged batch may wait before it is
	// sent again; default 2 minutes.
	AckTimeout time.Duration
	// MaxBatchBytes splits a Send into several requests; default 1 MiB
	// (before compression).
	MaxBatchBytes int
	// TLS configures HTTPS; nil uses the system roots.
	TLS *tls.Config
	// Client, when set, is used instead of one built from TLS.
	Client *http.Client
	// Timeout bounds each request; default 30s.
	Timeout time.Duration
	// Token is the token itself, when not read from TokenFile (a sink
	// stored in the cluster, its token sealed there).
	Token string
	// Host fills each event's host field; default the event's node.
	Host string
	// HealthEvery is how long the sink may go without hearing from the
	// receiver before it asks /services/collector/health; default 30s.
	HealthEvery time.Duration
}

// HECError is the collector's answer to a failed request.
type HECError struct {
	Status int    // HTTP status
	Code   int    // HEC status code (6: invalid data format, 9: server busy, ...)
	Text   string // HEC's message
}

func (e *HECError) Error() string {
	return fmt.Sprintf("splunk HEC: HTTP %d: %s (code %d)", e.Status, e.Text, e.Code)
}

// HECSink delivers events to Splunk's HTTP Event Collector: batches of
// concatenated event objects posted to /services/collector/event, gzip
// compressed, authenticated with "Authorization: Splunk <token>". Any
// failure (400 bad data, 401/403 bad token, 503 busy, network errors) is
// returned to the exporter, which backs off and resends from its cursor;
// nothing is skipped. With Ack, delivery waits for indexer
// acknowledgement.
type HECSink struct {
	cfg       HECSinkConfig
	client    *http.Client
	token     string
	pending   []pendingBatch // with Ack: sent, not yet acknowledged
	last      uint64
	body      bytes.Buffer
	msg       []byte
	stopped   error     // a configuration error: nothing is sent any more
	answer    string    // the receiver's last answer to a batch
	contacted time.Time // last answer from the receiver
}

// misconfigured stops the sink for good (until it is built again from a
// changed configuration) and returns err.
func (s *HECSink) misconfigured(err error) error {
	s.stopped = err
	s.pending = nil
	return err
}

var _ Sink = (*HECSink)(nil)

// NewHECSink returns an HEC sink, reading the token file.
func NewHECSink(cfg HECSinkConfig) (*HECSink, error) {
	if cfg.Name == "" {
		cfg.Name = "hec"
	}
	if err := checkSinkName(cfg.Name); err != nil {
		return nil, err
	}
	u, err := url.Parse(cfg.URL)
	if err != nil || (u.Scheme != "http" && u.Scheme != "https") || u.Host == "" {
		return nil, fmt.Errorf("audit HEC sink: url %q: want http(s)://host:port", cfg.URL)
	}
	cfg.URL = strings.TrimRight(cfg.URL, "/")
	if cfg.TokenFile == "" && cfg.Token == "" {
		return nil, errors.New("audit HEC sink: token_file: required")
	}
	if cfg.Format == nil {
		cfg.Format = JSONLines{}
	}
	if cfg.Source == "" {
		cfg.Source = "ferry"
	}
	if cfg.SourceType == "" {
		cfg.SourceType = "ferry:audit"
	}
	if cfg.Channel == "" {
		cfg.Channel = newGUID()
	}
	if cfg.AckTimeout <= 0 {
		cfg.AckTimeout = 2 * time.Minute
	}
	if cfg.MaxBatchBytes <= 0 {
		cfg.MaxBatchBytes = 1 << 20
	}
	if cfg.Timeout <= 0 {
		cfg.Timeout = 30 * time.Second
	}
	if cfg.HealthEvery <= 0 {
		cfg.HealthEvery = 30 * time.Second
	}
	s := &HECSink{cfg: cfg, client: cfg.Client}
	if s.client == nil {
		s.client = &http.Client{Timeout: cfg.Timeout, Transport: &http.Transport{TLSClientConfig: cfg.TLS, ForceAttemptHTTP2: true}}
	}
	if err := s.readToken(); err != nil {
		return nil, err
	}
	return s, nil
}

func (s *HECSink) readToken() error {
	if s.cfg.TokenFile == "" {
		s.token = s.cfg.Token
		return nil
	}
	b, err := os.ReadFile(s.cfg.TokenFile)
	if err != nil {
		return fmt.Errorf("audit HEC sink: reading token file: %w", err)
	}
	tok := strings.TrimSpace(string(b))
	if tok == "" || strings.ContainsAny(tok, "\r\n") {
		return fmt.Errorf("audit HEC sink: token file %s: want one non-empty line", s.cfg.TokenFile)
	}
	s.token = tok
	return nil
}

// newGUID returns a random RFC 4122 version 4 UUID.
func newGUID() string {
	var b [16]byte
	rand.Read(b[:])
	b[6] = b[6]&0x0f | 0x40
	b[8] = b[8]&0x3f | 0x80
	return fmt.Sprintf("%x-%x-%x-%x-%x", b[0:4], b[4:6], b[6:8], b[8:10], b[10:])
}

// Name returns the sink's name.
func (s *HECSink) Name() string { return s.cfg.Name }

// Send posts entries in batches and, with Ack, polls for acknowledgements.
func (s *HECSink) Send(ctx context.Context, entries []Entry) (uint64, error) {
	if s.stopped != nil {
		return s.last, s.stopped
	}
	for len(entries) > 0 {
		n, err := s.post(ctx, entries)
		if err != nil {
			return s.last, err
		}
		entries = entries[n:]
	}
	if s.cfg.Ack && len(s.pending) > 0 {
		if err := s.pollAcks(ctx); err != nil {
			return s.last, err
		}
	}
	if time.Since(s.contacted) > s.cfg.HealthEvery {
		// Nothing was exchanged for a while (a quiet cluster): ask the
		// receiver's health endpoint, so a dead one is noticed.
		if err := s.health(ctx); err != nil {
			return s.last, err
		}
	}
	return s.last, nil
}

// health asks HEC's health endpoint whether the receiver takes events.
func (s *HECSink) health(ctx context.Context) error {
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, s.cfg.URL+"/services/collector/health", nil)
	if err != nil {
		return err
	}
	res, err := s.client.Do(req)
	if err != nil {
		return fmt.Errorf("splunk HEC health: %w", err)
	}
	io.Copy(io.Discard, io.LimitReader(res.Body, 64<<10))
	res.Body.Close()
	// Receivers without the endpoint (404) still answered: they live.
	if res.StatusCode >= 500 {
		return &HECError{Status: res.StatusCode, Text: http.StatusText(res.StatusCode)}
	}
	s.contacted = time.Now()
	return nil
}

// hecEvent is one event object of a batch.
type hecEvent struct {
	Time       json.Number     `json:"time"`
	Host       string          `json:"host,omitempty"`
	Source     string          `json:"source"`
	SourceType string          `json:"sourcetype"`
	Index      string          `json:"index,omitempty"`
	Event      json.RawMessage `json:"event"`
}

// post sends as many entries as fit one request and returns how many.
func (s *HECSink) post(ctx context.Context, entries []Entry) (int, error) {
	var raw bytes.Buffer
	n := 0
	for n < len(entries) && (n == 0 || raw.Len() < s.cfg.MaxBatchBytes) {
		e := &entries[n]
		var err error
		if s.msg, err = s.cfg.Format.Append(s.msg[:0], e); err != nil {
			return 0, fmt.Errorf("formatting record %d: %w", e.Seq, err)
		}
		ev := hecEvent{Source: s.cfg.Source, SourceType: s.cfg.SourceType, Index: s.cfg.Index}
		if len(s.msg) > 0 && s.msg[0] == '{' && json.Valid(s.msg) {
			ev.Event = s.msg
		} else if ev.Event, err = json.Marshal(string(s.msg)); err != nil {
			return 0, err
		}
		switch {
		case e.Event != nil:
			ev.Time, ev.Host = hecTime(e.Event.Time), e.Event.Node
		case e.Checkpoint != nil:
			ev.Time, ev.Host = hecTime(e.Checkpoint.Time), e.Checkpoint.Node
		default:
			ev.Time = "0"
		}
		if s.cfg.Host != "" {
			ev.Host = s.cfg.Host
		}
		b, err := json.Marshal(ev)
		if err != nil {
			return 0, err
		}
		raw.Write(b)
		n++
	}
	var resp hecResponse
	if err := s.do(ctx, "/services/collector/event", raw.Bytes(), &resp); err != nil {
		return 0, err
	}
	s.answer = fmt.Sprintf("HTTP 200: %s (code %d)", resp.Text, resp.Code)
	last := entries[n-1].LastSeq()
	if s.cfg.Ack {
		if resp.AckID == nil {
			// The receiver took the batch but gives no ack ID: it does
			// not implement indexer acknowledgement, so no batch would
			// ever be confirmed. Waiting and re-sending would repeat the
			// backlog forever.
			return 0, s.misconfigured(fmt.Errorf("%w: %s: ack is on, but the receiver answered without an ackId: it does not implement indexer acknowledgement (turn ack off for this sink, or enable acknowledgement on the receiver's token)", ErrSinkMisconfigured, s.cfg.Name))
		}
		s.pending = append(s.pending, pendingBatch{last: last, at: time.Now().UnixNano(), ack: *resp.AckID})
	} else {
		s.last = last
	}
	return n, nil
}

func hecTime(t time.Time) json.Number {
	return json.Number(strconv.FormatFloat(float64(t.UnixMicro())/1e6, 'f', 6, 64))
}

type hecResponse struct {
	Text  string  `json:"text"`
	Code  int     `json:"code"`
	AckID *uint64 `json:"ackId"`
}

// pollAcks asks which batches are indexed and confirms the oldest ones in
// order.
func (s *HECSink) pollAcks(ctx context.Context) error {
	ids := make([]uint64, len(s.pending))
	for i, p := range s.pending {
		ids[i] = p.ack
	}
	body, err := json.Marshal(map[string][]uint64{"acks": ids})
	if err != nil {
		return err
	}
	var resp struct {
		Acks map[string]bool `json:"acks"`
	}
	if err := s.do(ctx, "/services/collector/ack", body, &resp); err != nil {
		var he *HECError
		if errors.As(err, &he) && (he.Status == http.StatusBadRequest || he.Status == http.StatusNotFound) {
			return s.misconfigured(fmt.Errorf("%w: %s: ack is on, but the receiver's ack endpoint answers HTTP %d (%s, code %d): it does not implement indexer acknowledgement (turn ack off for this sink, or enable acknowledgement on the receiver's token)",
				ErrSinkMisconfigured, s.cfg.Name, he.Status, he.Text, he.Code))
		}
		return err
	}
	for len(s.pending) > 0 && resp.Acks[strconv.FormatUint(s.pending[0].ack, 10)] {
		s.last = s.pending[0].last
		s.pending = s.pending[1:]
	}
	if len(s.pending) > 0 && time.Since(time.Unix(0, s.pending[0].at)) > s.cfg.AckTimeout {
		return fmt.Errorf("splunk HEC: batch ending at record %d not acknowledged within %s", s.pending[0].last, s.cfg.AckTimeout)
	}
	return nil
}

// do posts body to path and decodes a successful answer into out.
func (s *HECSink) do(ctx context.Context, path string, body []byte, out any) error {
	var rd io.Reader = bytes.NewReader(body)
	if !s.cfg.NoGzip {
		s.body.Reset()
		zw, _ := gzip.NewWriterLevel(&s.body, gzip.BestSpeed)
		zw.Write(body)
		if err := zw.Close(); err != nil {
			return err
		}
		rd = bytes.NewReader(s.body.Bytes())
	}
	req, err := http.NewRequestWithContext(ctx, http.MethodPost, s.cfg.URL+path, rd)
	if err != nil {
		return err
	}
	req.Header.Set("Authorization", "Splunk "+s.token)
	req.Header.Set("Content-Type", "application/json")
	if !s.cfg.NoGzip {
		req.Header.Set("Content-Encoding", "gzip")
	}
	if s.cfg.Ack {
		req.Header.Set("X-Splunk-Request-Channel", s.cfg.Channel)
	}
	res, err := s.client.Do(req)
	if err != nil {
		return fmt.Errorf("splunk HEC: %w", err)
	}
	defer res.Body.Close()
	b, err := io.ReadAll(io.LimitReader(res.Body, 1<<20))
	if err != nil {
		return fmt.Errorf("splunk HEC: reading answer: %w", err)
	}
	s.contacted = time.Now()
	if res.StatusCode != http.StatusOK {
		he := &HECError{Status: res.StatusCode, Text: http.StatusText(res.StatusCode)}
		var r hecResponse
		if json.Unmarshal(b, &r) == nil && r.Text != "" {
			he.Code, he.Text = r.Code, r.Text
		}
		if res.StatusCode == http.StatusUnauthorized || res.StatusCode == http.StatusForbidden {
			if err := s.readToken(); err != nil {
				return errors.Join(he, err)
			}
		}
		return he
	}
	if err := json.Unmarshal(b, out); err != nil {
		return fmt.Errorf("splunk HEC: undecodable answer: %w", err)
	}
	return nil
}

// LastAnswer returns the receiver's last answer to a batch.
func (s *HECSink) LastAnswer() string { return s.answer }

// Reset forgets unacknowledged batches.
func (s *HECSink) Reset() { s.pending = nil }

// Close releases idle connections.
func (s *HECSink) Close() error {
	s.client.CloseIdleConnections()
	return nil
}
