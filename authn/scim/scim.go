package scim

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net"
	"net/http"
	"strconv"
	"strings"
	"time"

	"github.com/elimity-com/scim"
	scimerrors "github.com/elimity-com/scim/errors"
	"github.com/elimity-com/scim/optional"
	"github.com/elimity-com/scim/schema"

	"github.com/ferryvpn/ferry/audit"
	"github.com/ferryvpn/ferry/authn"
	"github.com/ferryvpn/ferry/cluster"
	"github.com/ferryvpn/ferry/cluster/seal"
)

// PathPrefix is where the service is mounted: the SCIM base URL an
// identity provider is given is https://PUBLIC/scim/v2.
const PathPrefix = "/scim/v2"

// MaxBodyBytes bounds a request body (RFC 7644 lets the provider choose;
// the largest real bodies, a group's full member list, stay far below).
const MaxBodyBytes = 1 << 20

// MaxResults is the most resources one list response holds.
const MaxResults = 100

// Errors callers compare with errors.Is.
var (
	// ErrCorrupt is returned when a stored SCIM record cannot be decoded.
	ErrCorrupt = errors.New("scim: malformed stored record")
)

// Group name sources (Config.GroupName).
const (
	GroupNameDisplayName = "displayName"
	GroupNameExternalID  = "externalId"
)

// Config configures the SCIM service.
type Config struct {
	// Store holds the SCIM resources and the token. Required.
	Store *cluster.Node
	// Key seals the bearer token at rest: the cluster master key. Required.
	Key seal.Key
	// Users receives what the provider pushes. Required.
	Users *authn.Users
	// Disabler, when set, disables and enables users instead of
	// Users.SetDisabled: profiles.Store.SetUserDisabled, which also
	// revokes the user's devices before it returns. Without it the
	// entitlement watcher revokes them.
	Disabler Disabler
	// Recorder receives an event for every write and every refusal.
	// Required.
	Recorder audit.Recorder
	// Issuer is the OIDC issuer whose subjects the provider's externalIds
	// are: a SCIM user is ferry's user authn.UserKey(Issuer, externalId),
	// the same record that person's sign-ins reach. Required.
	Issuer string
	// GroupName is the group attribute whose value becomes the user's group
	// name: GroupNameDisplayName (default) or GroupNameExternalID. It must
	// match what the ID token's groups claim carries.
	GroupName string
	// BaseURL, when set, makes meta.location absolute, e.g.
	// https://vpn.example.com/scim/v2.
	BaseURL string
	// Logger; default discards.
	Logger *slog.Logger
	// Now is the clock; default time.Now.
	Now func() time.Time
}

// Validate reports the first missing or malformed field.
func (c *Config) Validate() error {
	switch {
	case c.Store == nil:
		return errors.New("scim config: store: required")
	case c.Key.IsZero():
		return errors.New("scim config: key: required")
	case c.Users == nil:
		return errors.New("scim config: users: required")
	case c.Recorder == nil:
		return errors.New("scim config: recorder: required")
	case c.Issuer == "":
		return errors.New("scim config: issuer: required")
	}
	switch c.GroupName {
	case "", GroupNameDisplayName, GroupNameExternalID:
	default:
		return fmt.Errorf("scim config: group_name %q: want %s or %s", c.GroupName, GroupNameDisplayName, GroupNameExternalID)
	}
	return nil
}

// Disabler disables (or enables) a user, ending what they hold.
type Disabler interface {
	SetUserDisabled(ctx context.Context, userID string, disabled bool, actor audit.Actor, src authn.Source) (int, error)
}

// Service serves SCIM and keeps its token. It is safe for concurrent use.
type Service struct {
	store     *cluster.Node
	key       seal.Key
	users     *authn.Users
	disabler  Disabler
	rec       audit.Recorder
	issuer    string
	groupName string
	log       *slog.Logger
	now       func() time.Time
	server    scim.Server
	refusals  authn.RefusalBudget // bounds refused-request records
}

// New returns the service for cfg.
func New(cfg Config) (*Service, error) {
	if err := cfg.Validate(); err != nil {
		return nil, err
	}
	s := &Service{
		store: cfg.Store, key: cfg.Key, users: cfg.Users, disabler: cfg.Disabler, rec: cfg.Recorder, issuer: cfg.Issuer,
		groupName: cfg.GroupName, log: cfg.Logger, now: cfg.Now,
	}
	if s.groupName == "" {
		s.groupName = GroupNameDisplayName
	}
	if s.log == nil {
		s.log = slog.New(slog.NewTextHandler(io.Discard, nil))
	}
	if s.now == nil {
		s.now = time.Now
	}
	var opts []scim.ServerOption
	if cfg.BaseURL != "" {
		opts = append(opts, scim.WithBaseURL(cfg.BaseURL))
	}
	opts = append(opts, scim.WithLogger(libLogger{s.log}))
	srv, err := scim.NewServer(&scim.ServerArgs{
		ServiceProviderConfig: &scim.ServiceProviderConfig{
			DocumentationURI: optional.NewString("https://github.com/ferryvpn/ferry/blob/main/docs/idp.md"),
			AuthenticationSchemes: []scim.AuthenticationScheme{{
				Type: scim.AuthenticationTypeOauthBearerToken, Name: "OAuth Bearer Token",
				Description: "The token minted by ferryctl scim token rotate, sent as Authorization: Bearer.",
				Primary:     true,
			}},
			MaxResults: MaxResults, SupportFiltering: true, SupportPatch: true,
		},
		ResourceTypes: []scim.ResourceType{
			{
				ID: optional.NewString("User"), Name: "User", Endpoint: "/Users",
				Description: optional.NewString("User Account"), Schema: schema.CoreUserSchema(),
				SchemaExtensions: []scim.SchemaExtension{{Schema: schema.ExtensionEnterpriseUser()}},
				Handler:          userHandler{s},
			},
			{
				ID: optional.NewString("Group"), Name: "Group", Endpoint: "/Groups",
				Description: optional.NewString("Group"), Schema: schema.CoreGroupSchema(),
				Handler: groupHandler{s},
			},
		},
	}, opts...)
	if err != nil {
		return nil, fmt.Errorf("building the SCIM server: %w", err)
	}
	s.server = srv
	return s, nil
}

// libLogger adapts the library's logger to slog.
type libLogger struct{ log *slog.Logger }

func (l libLogger) Error(args ...any) {
	l.log.Error("scim library error", "detail", fmt.Sprint(args...))
}

// Actor is who SCIM writes are recorded as: the identity provider.
var Actor = audit.Actor{UserID: "scim", Role: "provisioner"}

// Audit actions: admin scim.<resource>.<verb>, and scim.refused for a
// request refused before it reached a resource (authentication).
const (
	ActionRefused = "scim.refused"
)

// request carries what a resource handler learnt, for the request's audit
// record.
type request struct {
	action string // e.g. scim.user.create
	scimID string
	user   string // ferry user ID touched
	detail string // why it failed, when it did
}

type requestKey struct{}

func reqInfo(r *http.Request) *request {
	if ri, ok := r.Context().Value(requestKey{}).(*request); ok {
		return ri
	}
	return &request{}
}

// ServeHTTP serves the SCIM endpoints under PathPrefix. Requests must
// carry the bearer token; bodies are bounded by MaxBodyBytes.
func (s *Service) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	src := sourceOf(r)
	why, err := s.authenticate(r.Context(), r.Header.Get("Authorization"))
	if err != nil {
		s.log.Error("scim authentication failed", "err", err)
		writeError(w, scimerrors.ScimErrorInternal)
		return
	}
	if why != "" {
		details := map[string]string{"method": r.Method, "path": truncate(r.URL.Path, 200)}
		if s.refusals.Allow(s.now(), details) {
			if err := s.rec.Record(r.Context(), audit.Event{
				Type: audit.TypeAdmin, Action: ActionRefused, Actor: audit.Actor{}, Source: src,
				Outcome: audit.Failure, Reason: why, Details: details,
			}); err != nil {
				s.log.Error("recording refused scim request", "err", err)
			}
		}
		w.Header().Set("WWW-Authenticate", `Bearer realm="ferry-scim"`)
		writeError(w, scimerrors.ScimError{Status: http.StatusUnauthorized, Detail: "Authorization failure. The authorization header is invalid or missing."})
		return
	}
	if r.Body != nil {
		body, err := io.ReadAll(http.MaxBytesReader(w, r.Body, MaxBodyBytes))
		if err != nil {
			writeError(w, scimerrors.ScimError{Status: http.StatusRequestEntityTooLarge, Detail: "The request body is larger than " + strconv.Itoa(MaxBodyBytes) + " bytes."})
			return
		}
		if r.Method == http.MethodPatch {
			body = NormalizePatch(body)
		}
		r.Body = io.NopCloser(bytes.NewReader(body))
	}
	write := r.Method != http.MethodGet && r.Method != http.MethodHead
	ri := &request{}
	r = r.WithContext(context.WithValue(r.Context(), requestKey{}, ri))
	sw := &statusWriter{ResponseWriter: w}
	http.StripPrefix("/scim", s.server).ServeHTTP(sw, r)
	if !write {
		return
	}
	e := audit.Event{
		Type: audit.TypeAdmin, Action: ri.action, Actor: Actor, Source: src, Outcome: audit.Success,
		Target:  audit.Target{User: ri.user},
		Details: map[string]string{"method": r.Method, "path": truncate(r.URL.Path, 200), "status": strconv.Itoa(sw.status())},
	}
	if e.Action == "" {
		e.Action = "scim.request"
	}
	if ri.scimID != "" {
		e.Details["scim_id"] = ri.scimID
	}
	if sw.status() >= 400 {
		e.Outcome, e.Reason = audit.Failure, ri.detail
		if e.Reason == "" {
			e.Reason = "refused by the SCIM protocol layer (status " + strconv.Itoa(sw.status()) + ")"
		}
	}
	if err := s.rec.Record(r.Context(), e); err != nil {
		s.log.Error("recording scim write", "err", err)
	}
}

type statusWriter struct {
	http.ResponseWriter
	code int
}

func (w *statusWriter) WriteHeader(code int) {
	if w.code == 0 {
		w.code = code
	}
	w.ResponseWriter.WriteHeader(code)
}

func (w *statusWriter) Write(b []byte) (int, error) {
	if w.code == 0 {
		w.code = http.StatusOK
	}
	return w.ResponseWriter.Write(b)
}

func (w *statusWriter) status() int {
	if w.code == 0 {
		return http.StatusOK
	}
	return w.code
}

func writeError(w http.ResponseWriter, e scimerrors.ScimError) {
	b, _ := e.MarshalJSON()
	w.Header().Set("Content-Type", "application/scim+json")
	w.WriteHeader(e.Status)
	w.Write(b)
}

func sourceOf(r *http.Request) audit.Source {
	src := audit.Source{Addr: r.RemoteAddr, UserAgent: truncate(r.UserAgent(), 256)}
	if host, port, err := net.SplitHostPort(r.RemoteAddr); err == nil {
		src.Addr = host
		src.Port, _ = strconv.Atoi(port)
	}
	return src
}

func truncate(s string, n int) string {
	if len(s) > n {
		return s[:n]
	}
	return strings.ToValidUTF8(s, "?")
}
