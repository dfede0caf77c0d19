package capture

import (
	"context"
	"crypto/rand"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net/netip"
	"slices"
	"strconv"
	"strings"
	"time"

	"github.com/ferryvpn/ferry/audit"
	"github.com/ferryvpn/ferry/cluster"
	"github.com/ferryvpn/ferry/profiles"
)

// ServiceName is the cluster service (cluster.Node.HandleService) through
// which the node that runs a capture asks every other node for its part.
const ServiceName = "capture"

// Sentinel errors of captures.
var (
	// ErrForbidden is returned when a caller who is not an administrator
	// asks for a capture.
	ErrForbidden = errors.New("capture: administrator role required")
	// ErrStepUp is returned when the fresh TOTP code a capture needs is
	// missing or wrong.
	ErrStepUp = errors.New("capture: a fresh TOTP code is required")
	// ErrInvalid is returned when a capture request is malformed: no
	// reason, not exactly one selector, limits beyond the cluster's caps.
	ErrInvalid = errors.New("capture: invalid request")
	// ErrBusy is returned when the most concurrent captures already run.
	ErrBusy = errors.New("capture: too many captures running")
	// ErrNoClients is returned when the selector matches no valid peer.
	ErrNoClients = errors.New("capture: no client matches")
)

// Caps are the cluster's hard limits on captures (stored in the cluster,
// limits.go); requests beyond them are refused, never silently lowered.
type Caps struct {
	// MaxDuration; default 10 minutes.
	MaxDuration time.Duration `json:"max_duration_ns"`
	// MaxBytes of packet data; default 100 MB.
	MaxBytes int64 `json:"max_bytes"`
	// HeaderSnaplen is the snap length without AllowPayload, enough for
	// IP and transport headers; default 96.
	HeaderSnaplen int `json:"header_snaplen"`
	// AllowPayload lets requests ask for snap lengths up to 65535.
	AllowPayload bool `json:"allow_payload"`
	// MaxConcurrent captures running in the whole cluster at once,
	// counted by replicated leases (slots.go); default 2.
	MaxConcurrent int `json:"max_concurrent"`
}

func (c *Caps) setDefaults() {
	if c.MaxDuration <= 0 {
		c.MaxDuration = 10 * time.Minute
	}
	if c.MaxBytes <= 0 {
		c.MaxBytes = 100 << 20
	}
	if c.HeaderSnaplen <= 0 {
		c.HeaderSnaplen = 96
	}
	if c.MaxConcurrent <= 0 {
		c.MaxConcurrent = 2
	}
}

// check refuses limits beyond the caps.
func (c *Caps) check(lim Limits) error {
	if err := lim.Validate(); err != nil {
		return fmt.Errorf("%w: %v", ErrInvalid, err)
	}
	switch {
	case lim.Duration > c.MaxDuration:
		return fmt.Errorf("%w: duration %s is over the cluster's cap of %s", ErrInvalid, lim.Duration, c.MaxDuration)
	case lim.MaxBytes > c.MaxBytes:
		return fmt.Errorf("%w: max bytes %d is over the cluster's cap of %d", ErrInvalid, lim.MaxBytes, c.MaxBytes)
	case lim.Snaplen > c.HeaderSnaplen && !c.AllowPayload:
		return fmt.Errorf("%w: snap length %d would keep payloads, which this cluster does not allow (at most %d, headers only)", ErrInvalid, lim.Snaplen, c.HeaderSnaplen)
	}
	return nil
}

// Local is this node's data plane, as captures need it (tunnel.Gateway).
type Local interface {
	Capture(f *Filter, snaplen int) (Source, error)
	Interface() string
}

// Config configures a Service.
type Config struct {
	// Node is this node; required.
	Node *cluster.Node
	// Local is this node's data plane; nil on a node without one (it still
	// runs captures of the others).
	Local Local
	// Peers selects the captured clients; required.
	Peers *profiles.Store
	// Recorder receives the capture's audit events; required.
	Recorder audit.Recorder
	// StepUp checks a fresh TOTP code of the requester (with its replay
	// guard and lockout); required.
	StepUp func(ctx context.Context, requester audit.Actor, src audit.Source, code string) error
	// Caps are this node's configured limits: a bootstrap, imported into
	// the cluster by ImportCaps when it has none, and used only until then.
	Caps Caps
	// LeaseTTL is how long a capture's cluster-wide lease outlives its
	// last renewal (renewed every third of it while the capture runs): a
	// capture whose node crashed frees its place after at most this long.
	// Clocks of the nodes must agree to well within it. Default 30s.
	LeaseTTL time.Duration
	// Now is the clock; default time.Now.
	Now func() time.Time
	// Logger; default slog.Default().
	Logger *slog.Logger
}

// Validate checks the configuration.
func (c *Config) Validate() error {
	if c.Node == nil || c.Peers == nil || c.Recorder == nil || c.StepUp == nil {
		return errors.New("capture config: node, peers, recorder and step-up are required")
	}
	return nil
}

// Service runs captures across the cluster and serves this node's part of
// captures other nodes run.
type Service struct {
	cfg Config
	log *slog.Logger
}

// Running describes a capture in progress in the cluster.
type Running struct {
	ID      string    `json:"id"`
	Actor   string    `json:"actor"`
	Reason  string    `json:"reason,omitempty"`
	Clients []string  `json:"clients,omitempty"`
	Filter  string    `json:"filter,omitempty"`
	Started time.Time `json:"started"`
	// Node runs the capture: it merges every node's part.
	Node string `json:"node"`
}

// New returns the service and registers it as the cluster service.
func New(cfg Config) (*Service, error) {
	if err := cfg.Validate(); err != nil {
		return nil, err
	}
	cfg.Caps.setDefaults()
	if cfg.LeaseTTL <= 0 {
		cfg.LeaseTTL = 30 * time.Second
	}
	if cfg.Now == nil {
		cfg.Now = time.Now
	}
	if cfg.Logger == nil {
		cfg.Logger = slog.Default()
	}
	s := &Service{cfg: cfg, log: cfg.Logger.With("component", "capture")}
	cfg.Node.HandleService(ServiceName, s.serve)
	return s, nil
}

// Close unregisters the service.
func (s *Service) Close() error {
	s.cfg.Node.HandleService(ServiceName, nil)
	return nil
}

// Request is an administrator's capture request.
type Request struct {
	Actor  audit.Actor
	Source audit.Source
	// Admin reports whether the requester's session has the admin role.
	Admin bool
	// TOTP is the requester's fresh code (step-up).
	TOTP string
	// Reason is recorded with every event; required.
	Reason string
	// Exactly one selector: a user (ID or email), a peer ID or a profile.
	User, Peer, Profile string
	// Filter is an expression of the filter language.
	Filter string
	// Duration, MaxBytes and Snaplen; zero takes 60s, 50 MB and the
	// headers-only snap length.
	Duration time.Duration
	MaxBytes int64
	Snaplen  int
}

// maxReason bounds a reason's length.
const maxReason = 500

// Run runs the capture on every node of the cluster at once and writes
// the merged pcapng file to w. ctx must carry the requester's proof
// (cluster.WithProof), which every other node checks; ending ctx stops
// the capture on every node. Start, refusal and stop are audit events.
func (s *Service) Run(ctx context.Context, req Request, w io.Writer) (Result, error) {
	id := newID()
	caps, lim, err := s.prepare(ctx, req)
	var clients []netip.Addr
	if err == nil {
		clients, err = s.clients(ctx, req)
	}
	var f *Filter
	if err == nil {
		f, err = CompileFilter(req.Filter, clients)
	}
	run := Running{ID: id, Actor: req.Actor.Email, Reason: req.Reason, Clients: addrStrings(clients), Filter: req.Filter, Started: s.cfg.Now(), Node: s.cfg.Node.ID()}
	var leaseVer uint64
	if err == nil {
		leaseVer, err = s.grant(ctx, run, caps.MaxConcurrent)
	}
	start := s.event(req, id, "capture.start", clients, lim)
	if err != nil {
		start.Outcome, start.Reason = audit.Failure, err.Error()
		if rerr := s.cfg.Recorder.Record(ctx, start); rerr != nil {
			s.log.Error("cannot record a refused capture", "err", rerr)
		}
		return Result{}, err
	}
	defer s.release(ctx, id)
	// The lease is renewed while the capture runs; a lease lost (it lapsed
	// while this node could not renew it, and another grant removed it)
	// ends the capture on every node.
	ctx, cancel := context.WithCancelCause(ctx)
	defer cancel(nil)
	leaseDone := make(chan struct{})
	go func() {
		defer close(leaseDone)
		s.keepLease(ctx, run, leaseVer, cancel)
	}()
	defer func() { cancel(nil); <-leaseDone }()
	members := s.cfg.Node.Status().Members
	start.Details["nodes"] = strings.Join(memberIDs(members), ",")
	// Nothing is captured unrecorded.
	if err := s.cfg.Recorder.Record(ctx, start); err != nil {
		return Result{}, fmt.Errorf("recording the capture's start: %w", err)
	}
	s.log.Info("capture started", "id", id, "actor", req.Actor.Email, "clients", len(clients), "nodes", len(members))
	spec := nodeSpec{ID: id, Filter: req.Filter, Clients: clients, Duration: lim.Duration, MaxBytes: lim.MaxBytes, Snaplen: lim.Snaplen}
	payload, _ := json.Marshal(spec)
	streams := make([]NodeStream, 0, len(members))
	for _, m := range members {
		name := m.ID
		if m.ID == s.cfg.Node.ID() {
			streams = append(streams, NodeStream{Name: name, Open: s.openLocal(spec, f, req.Actor.Email)})
			continue
		}
		streams = append(streams, NodeStream{Name: name, Open: func(ctx context.Context) (io.ReadCloser, error) {
			return s.cfg.Node.CallService(ctx, m.ID, ServiceName, payload)
		}})
	}
	began := s.cfg.Now()
	res, err := Merge(ctx, streams, req.Filter, lim, w)
	if cause := context.Cause(ctx); err == nil && errors.Is(cause, errLeaseLost) {
		err = cause
	}
	stop := s.event(req, id, "capture.stop", clients, lim)
	stop.Details["nodes"] = start.Details["nodes"]
	stop.Details["packets"] = strconv.FormatUint(res.Packets, 10)
	stop.Details["dropped"] = strconv.FormatUint(res.Dropped, 10)
	stop.Details["stopped"] = res.Stopped
	stop.Details["sha256"] = res.SHA256
	for _, n := range res.Nodes {
		stop.Details["node."+n.Name] = fmt.Sprintf("packets=%d bytes=%d dropped=%d stopped=%s%s", n.Packets, n.Bytes, n.Dropped, n.Stopped, errSuffix(n.Err))
	}
	stop.BytesIn = res.Bytes
	stop.Duration = s.cfg.Now().Sub(began)
	if err != nil {
		stop.Outcome, stop.Reason = audit.Failure, err.Error()
	}
	// The requester may be gone; the record must still be written.
	rctx, rcancel := context.WithTimeout(context.WithoutCancel(ctx), 30*time.Second)
	defer rcancel()
	if rerr := s.cfg.Recorder.Record(rctx, stop); rerr != nil && err == nil {
		err = fmt.Errorf("recording the capture's end: %w", rerr)
	}
	return res, err
}

func errSuffix(e string) string {
	if e == "" {
		return ""
	}
	return " error=" + e
}

// prepare checks the requester and the limits against the cluster's caps,
// which it returns.
func (s *Service) prepare(ctx context.Context, req Request) (Caps, Limits, error) {
	if !req.Admin {
		return Caps{}, Limits{}, ErrForbidden
	}
	reason := strings.TrimSpace(req.Reason)
	switch {
	case reason == "":
		return Caps{}, Limits{}, fmt.Errorf("%w: a reason is required", ErrInvalid)
	case len(reason) > maxReason:
		return Caps{}, Limits{}, fmt.Errorf("%w: the reason is longer than %d characters", ErrInvalid, maxReason)
	}
	n := 0
	for _, v := range []string{req.User, req.Peer, req.Profile} {
		if v != "" {
			n++
		}
	}
	if n != 1 {
		return Caps{}, Limits{}, fmt.Errorf("%w: name exactly one of user, peer or profile", ErrInvalid)
	}
	if err := CheckFilter(req.Filter); err != nil {
		return Caps{}, Limits{}, err
	}
	caps, err := s.Caps(ctx)
	if err != nil {
		return Caps{}, Limits{}, err
	}
	lim := Limits{Duration: req.Duration, MaxBytes: req.MaxBytes, Snaplen: req.Snaplen}
	if lim.Duration == 0 {
		lim.Duration = min(time.Minute, caps.MaxDuration)
	}
	if lim.MaxBytes == 0 {
		lim.MaxBytes = min(50<<20, caps.MaxBytes)
	}
	if lim.Snaplen == 0 {
		lim.Snaplen = caps.HeaderSnaplen
	}
	if err := caps.check(lim); err != nil {
		return Caps{}, lim, err
	}
	if req.TOTP == "" {
		return Caps{}, lim, fmt.Errorf("%w: send the current code of your authenticator", ErrStepUp)
	}
	if err := s.cfg.StepUp(ctx, req.Actor, req.Source, req.TOTP); err != nil {
		return Caps{}, lim, fmt.Errorf("%w: %v", ErrStepUp, err)
	}
	return caps, lim, nil
}

// clients returns the tunnel addresses of the valid peers req selects.
func (s *Service) clients(ctx context.Context, req Request) ([]netip.Addr, error) {
	valid := true
	peers, err := s.cfg.Peers.Peers(ctx, profiles.PeerFilter{Profile: req.Profile, Valid: &valid})
	if err != nil {
		return nil, err
	}
	var out []netip.Addr
	for _, p := range peers {
		switch {
		case req.Peer != "" && p.ID != req.Peer:
			continue
		case req.User != "" && p.UserID != req.User && !strings.EqualFold(p.Email, req.User):
			continue
		}
		out = append(out, p.Address)
	}
	if len(out) == 0 {
		return nil, fmt.Errorf("%w: no active peer of %s", ErrNoClients, selector(req))
	}
	slices.SortFunc(out, netip.Addr.Compare)
	return slices.Compact(out), nil
}

func selector(req Request) string {
	switch {
	case req.User != "":
		return "user " + req.User
	case req.Peer != "":
		return "peer " + req.Peer
	}
	return "profile " + req.Profile
}

// event returns a capture event of req with the common details.
func (s *Service) event(req Request, id, action string, clients []netip.Addr, lim Limits) audit.Event {
	e := audit.Event{
		Type: audit.TypeAdmin, Action: action, Actor: req.Actor, Source: req.Source,
		Target:  audit.Target{User: req.User, Peer: req.Peer, Profile: req.Profile},
		Outcome: audit.Success,
		Details: map[string]string{
			"capture": id, "reason": req.Reason, "filter": req.Filter, "clients": strings.Join(addrStrings(clients), ","),
			"duration": lim.Duration.String(), "max_bytes": strconv.FormatInt(lim.MaxBytes, 10), "snaplen": strconv.Itoa(lim.Snaplen),
		},
	}
	return e
}

func addrStrings(as []netip.Addr) []string {
	out := make([]string, len(as))
	for i, a := range as {
		out[i] = a.String()
	}
	return out
}

func memberIDs(ms []cluster.Member) []string {
	out := make([]string, len(ms))
	for i, m := range ms {
		out[i] = m.ID
	}
	return out
}

// nodeSpec is what a node is asked to capture.
type nodeSpec struct {
	ID       string        `json:"id"`
	Filter   string        `json:"filter"`
	Clients  []netip.Addr  `json:"clients"`
	Duration time.Duration `json:"duration_ns"`
	MaxBytes int64         `json:"max_bytes"`
	Snaplen  int           `json:"snaplen"`
}

// openLocal runs this node's part of a capture it coordinates.
func (s *Service) openLocal(spec nodeSpec, f *Filter, actor string) func(context.Context) (io.ReadCloser, error) {
	return func(ctx context.Context) (io.ReadCloser, error) {
		pr, pw := io.Pipe()
		go func() {
			pw.CloseWithError(s.captureHere(ctx, spec, f, pw))
		}()
		return pr, nil
	}
}

// captureHere streams this node's part of a capture to w.
func (s *Service) captureHere(ctx context.Context, spec nodeSpec, f *Filter, w io.Writer) error {
	lim := Limits{Duration: spec.Duration, MaxBytes: spec.MaxBytes, Snaplen: spec.Snaplen}
	if s.cfg.Local == nil {
		// No data plane here: an empty part that ends with the others.
		return endEmpty(ctx, lim, w)
	}
	src, err := s.cfg.Local.Capture(f, spec.Snaplen)
	if err != nil {
		return err
	}
	_, err = Stream(ctx, src, s.cfg.Local.Interface(), lim, w)
	return err
}

// serve is the cluster service: this node's part of a capture another
// node runs. The cluster checked the caller's proof (an administrator's
// session); this node checks the request against the cluster's caps.
func (s *Service) serve(ctx context.Context, req cluster.ServiceRequest, w io.Writer) error {
	var spec nodeSpec
	if err := json.Unmarshal(req.Payload, &spec); err != nil {
		return fmt.Errorf("%w: %v", ErrInvalid, err)
	}
	lim := Limits{Duration: spec.Duration, MaxBytes: spec.MaxBytes, Snaplen: spec.Snaplen}
	caps, err := s.Caps(ctx)
	if err != nil {
		return err
	}
	if err := caps.check(lim); err != nil {
		return err
	}
	f, err := CompileFilter(spec.Filter, spec.Clients)
	if err != nil {
		return err
	}
	// A part is served only for a capture that holds a cluster-wide lease:
	// no node runs more than the cluster's concurrent captures.
	switch ok, err := s.holdsLease(ctx, spec.ID); {
	case err != nil:
		return fmt.Errorf("checking the capture's lease: %w", err)
	case !ok:
		return fmt.Errorf("%w: capture %s holds no cluster lease", ErrBusy, spec.ID)
	}
	s.log.Info("serving a capture", "id", spec.ID, "for", req.Peer, "actor", req.Actor, "clients", len(spec.Clients))
	return s.captureHere(ctx, spec, f, w)
}

// endEmpty writes an empty part: watermarks until the duration or ctx
// ends, then the end record.
func endEmpty(ctx context.Context, lim Limits, w io.Writer) error {
	q := newQueue()
	_, err := Stream(ctx, &emptySource{q}, "", lim, w)
	return err
}

type emptySource struct{ *queue }

func (e *emptySource) Close() error { e.finish(nil); return nil }

// newID returns a random capture ID.
func newID() string {
	var b [8]byte
	rand.Read(b[:])
	return hex.EncodeToString(b[:])
}
