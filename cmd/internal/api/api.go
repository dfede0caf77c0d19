// Package api is ferryd's HTTPS API: health and readiness for the load
// balancer, and the endpoints through which a new node joins the cluster.
// Later issues add the user and administration API here.
//
// Every error is a JSON body {"error": "..."} with a fitting status code.
// Request bodies are JSON objects of at most wire.MaxBodyBytes, sent as
// application/json, with no unknown fields. Authentication failures tell the
// client little and the log everything but the secret.
//
// The package serves HTTP; the caller owns the listeners and TLS. The
// Prometheus handler is separate (MetricsHandler), for its own listener.
package api

import (
	"context"
	"encoding/json"
	"errors"
	"log/slog"
	"net/http"
	"time"

	"github.com/ferryvpn/ferry/audit"
	"github.com/ferryvpn/ferry/authn"
	"github.com/ferryvpn/ferry/cluster"
	"github.com/ferryvpn/ferry/cluster/admit"
	"github.com/ferryvpn/ferry/cluster/seal"
	"github.com/ferryvpn/ferry/cmd/internal/wire"
	"github.com/ferryvpn/ferry/tunnel/capture"
	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/promhttp"
)

// Config configures the API handler.
type Config struct {
	// Node is this node of the cluster. Required.
	Node *cluster.Node
	// MasterKey is the cluster master key: it unseals the CA key and derives
	// the key that join tokens are verified with. Required.
	MasterKey seal.Key
	// Admit admits joining nodes; default an admit.Admitter built from
	// Node, MasterKey, APINames, the certificate lifetimes and Audit.
	Admit *admit.Admitter
	// APINames are the names API certificates may carry (api.public_url's
	// host and api.names), for the default Admit.
	APINames []string
	// Settings are handed to joining nodes for their config.
	Settings wire.JoinSettings
	// Logger receives the handler's logs; default slog.Default().
	Logger *slog.Logger
	// Now is the clock for token expiry and certificate validity; default
	// time.Now.
	Now func() time.Time
	// NodeCertValidity and APICertValidity are the lifetimes of the
	// certificates the default Admit issues; defaults
	// admit.DefaultNodeCertTTL and admit.DefaultAPICertTTL.
	NodeCertValidity time.Duration
	APICertValidity  time.Duration
	// Users, when set, adds the user and administration API and the
	// sign-in pages.
	Users *Users
	// Audit, when set with Users, adds the audit endpoints.
	Audit *Audit
	// IdP, when set with Users, adds the identity provider's endpoints
	// (SCIM, back-channel logout, Shared Signals) and their administration.
	IdP *IdP
	// Refusals tunes how refused calls are recorded and sources that keep
	// failing are slowed down (refusals.go).
	Refusals Refusals
	// Organization is the organisation's name shown on the portal's and
	// other HTML pages; default "ferry".
	Organization string
	// Capture, when set with Users, adds the packet capture endpoints.
	Capture *capture.Service
	// PeerCounters, when set, adds every node's live WireGuard counters
	// to an administrator's peer list (GET /v1/peers?counters=1). It asks
	// every node with ctx's proof (cluster.WithProof) and returns the
	// nodes asked and each peer's counters by public key (assembly wires
	// tunnel.PeerStatsService).
	PeerCounters func(ctx context.Context) ([]wire.NodeCounters, map[string][]wire.PeerCounters)
	// Console, when set, serves /admin and everything under it (the
	// administration console, package console); without it /admin is a
	// page that points to ferryctl.
	Console http.Handler
}

// Validate checks the configuration.
func (c *Config) Validate() error {
	switch {
	case c.Node == nil:
		return errors.New("api config: node is required")
	case c.MasterKey.IsZero():
		return errors.New("api config: master key is required")
	case c.NodeCertValidity < 0 || c.APICertValidity < 0:
		return errors.New("api config: certificate validity must not be negative")
	}
	if c.Users != nil {
		return c.Users.validate()
	}
	return nil
}

// handler serves the API. It holds no mutable state.
type handler struct {
	node     *cluster.Node
	master   seal.Key
	admit    *admit.Admitter
	settings wire.JoinSettings
	log      *slog.Logger
	now      func() time.Time
	users    *Users // nil: no user API
	audit    *Audit // nil: no audit API
	idp      *IdP   // nil: no identity provider endpoints
	refusals *refusals
	org      string
	capture  *capture.Service                                                            // nil: no packet capture
	counters func(context.Context) ([]wire.NodeCounters, map[string][]wire.PeerCounters) // nil: no live peer counters
}

// New returns the API handler.
func New(cfg Config) (http.Handler, error) {
	if err := cfg.Validate(); err != nil {
		return nil, err
	}
	h := &handler{
		node: cfg.Node, master: cfg.MasterKey, admit: cfg.Admit, settings: cfg.Settings,
		log: cfg.Logger, now: cfg.Now, users: cfg.Users, audit: cfg.Audit, idp: cfg.IdP,
		org: cfg.Organization, capture: cfg.Capture, counters: cfg.PeerCounters,
	}
	if h.log == nil {
		h.log = slog.Default()
	}
	if h.now == nil {
		h.now = time.Now
	}
	if h.admit == nil {
		record := AdmitRecorder(func() audit.Recorder {
			if h.audit != nil {
				return h.audit.Recorder
			}
			return nil
		})
		a, err := admit.New(admit.Config{
			Node: cfg.Node, MasterKey: cfg.MasterKey, APINames: cfg.APINames, Now: h.now, Logger: h.log,
			NodeCertTTL: cfg.NodeCertValidity, APICertTTL: cfg.APICertValidity,
			Record: func(ctx context.Context, e admit.Event) error {
				if err := record(ctx, e); err != errNoRecorder {
					return err
				}
				h.log.Info("admission event (no audit log configured)", "action", e.Action, "node_id", e.NodeID, "token", e.TokenID, "serial", e.Serial)
				return nil
			},
		})
		if err != nil {
			return nil, err
		}
		h.admit = a
	}

	h.refusals = newRefusals(cfg.Refusals, func() audit.Recorder {
		if h.audit != nil {
			return h.audit.Recorder
		}
		return nil
	}, h.now, h.log)

	mux := http.NewServeMux()
	route(mux, http.MethodGet, wire.PathHealthz, h.healthz)
	route(mux, http.MethodGet, wire.PathReadyz, h.readyz)
	route(mux, http.MethodPost, wire.PathJoin, h.handle(h.join))
	if h.users != nil {
		h.mountUsers(mux)
		h.mountCluster(mux)
		if h.audit != nil {
			h.mountAudit(mux)
			if h.audit.Reports != nil {
				h.mountReports(mux)
			}
		}
		if h.idp != nil {
			h.mountIdP(mux)
		}
		if h.capture != nil {
			h.mountCapture(mux)
		}
	}
	if cfg.Console != nil {
		mux.Handle("/admin", cfg.Console)
		mux.Handle("/admin/", cfg.Console)
	}
	mux.HandleFunc("/", h.frontDoor)
	return secureHeaders(h.guard(mux)), nil
}

// route serves method on path, and answers other methods on path with a
// JSON 405 that lists the allowed ones.
func route(mux *http.ServeMux, method, path string, f http.HandlerFunc) {
	mux.HandleFunc(method+" "+path, f)
	allow := method
	if method == http.MethodGet {
		allow = "GET, HEAD"
	}
	mux.HandleFunc(path, func(w http.ResponseWriter, r *http.Request) {
		w.Header().Set("Allow", allow)
		writeError(w, http.StatusMethodNotAllowed, "method "+r.Method+" not allowed; use "+allow)
	})
}

// secureHeaders sets headers that keep browsers from framing, sniffing or
// caching API answers, and pin HTTPS.
func secureHeaders(next http.Handler) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		h := w.Header()
		h.Set("Strict-Transport-Security", authn.HSTS)
		h.Set("X-Content-Type-Options", "nosniff")
		h.Set("X-Frame-Options", "DENY")
		h.Set("Content-Security-Policy", "default-src 'none'; frame-ancestors 'none'")
		// same-origin, not no-referrer: under no-referrer a browser sends
		// "Origin: null" on a form POST, and the portal's same-origin check
		// (sameOrigin) then refuses every real browser. Nothing leaves for
		// another origin either way.
		h.Set("Referrer-Policy", "same-origin")
		h.Set("Cache-Control", "no-store")
		next.ServeHTTP(w, r)
	})
}

// healthz answers 200 while the process serves HTTP.
func (h *handler) healthz(w http.ResponseWriter, r *http.Request) {
	writeText(w, http.StatusOK, "ok")
}

// readyz answers 200 when the node can serve (cluster.Node.Ready), else 503
// with the reason; load balancers take the node out meanwhile.
func (h *handler) readyz(w http.ResponseWriter, r *http.Request) {
	if err := h.node.Ready(); err != nil {
		writeText(w, http.StatusServiceUnavailable, "not ready: "+err.Error())
		return
	}
	writeText(w, http.StatusOK, "ok")
}

func writeText(w http.ResponseWriter, status int, msg string) {
	w.Header().Set("Content-Type", "text/plain; charset=utf-8")
	w.WriteHeader(status)
	w.Write([]byte(msg + "\n"))
}

func writeJSON(w http.ResponseWriter, status int, v any) {
	w.Header().Set("Content-Type", "application/json")
	w.WriteHeader(status)
	json.NewEncoder(w).Encode(v)
}

func writeError(w http.ResponseWriter, status int, msg string) {
	writeJSON(w, status, wire.Error{Error: msg})
}

// MetricsHandler serves g's metrics at GET /metrics, in plain HTTP for a
// loopback or otherwise private listener.
func MetricsHandler(g prometheus.Gatherer, log *slog.Logger) http.Handler {
	mux := http.NewServeMux()
	mux.Handle("GET /metrics", promhttp.HandlerFor(g, promhttp.HandlerOpts{
		ErrorLog:      slog.NewLogLogger(log.Handler(), slog.LevelError),
		ErrorHandling: promhttp.ContinueOnError,
	}))
	return mux
}
