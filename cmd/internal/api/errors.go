package api

import (
	"context"
	"errors"
	"fmt"
	"net/http"

	"github.com/ferryvpn/ferry/audit"
	"github.com/ferryvpn/ferry/audit/auditfile"
	"github.com/ferryvpn/ferry/authn"
	"github.com/ferryvpn/ferry/authn/scim"
	"github.com/ferryvpn/ferry/cluster"
	"github.com/ferryvpn/ferry/cluster/admit"
	"github.com/ferryvpn/ferry/cluster/pki"
	"github.com/ferryvpn/ferry/cluster/seal"
	"github.com/ferryvpn/ferry/profiles"
	"github.com/ferryvpn/ferry/report"
	"github.com/ferryvpn/ferry/tunnel"
	"github.com/ferryvpn/ferry/tunnel/capture"
)

// statusError is an answer a handler chose itself: a status and a message
// for the client. Handlers return it (errorf) like any other error.
type statusError struct {
	status int
	msg    string
}

func (e *statusError) Error() string { return e.msg }

// errorf returns an error answered with status and the formatted message.
func errorf(status int, format string, args ...any) error {
	return &statusError{status: status, msg: fmt.Sprintf(format, args...)}
}

// sentinel is one row of the error table.
type sentinel struct {
	err    error
	status int
	// msg, when set, replaces the error's text in the answer: the client
	// learns what it can act on, the log keeps the details.
	msg string
}

// unavailableMsg answers errors that a retry, here or on another node,
// may cure.
const unavailableMsg = "cluster unavailable; try again"

// sentinels maps every exported sentinel error of the domain packages
// (and of the cmd/internal packages handlers call) to the status it is
// answered with. It is the API's one error table: handlers return errors
// and fail translates them here. TestEveryDomainSentinelIsMapped walks the
// domain packages' source and fails when a sentinel is missing here, so a
// new sentinel is never answered as a 500. The first match wins: more
// specific sentinels come before the ones they wrap.
var sentinels = []sentinel{
	// cluster: availability is the caller's to retry.
	{cluster.ErrNoQuorum, http.StatusServiceUnavailable, unavailableMsg},
	{cluster.ErrNotLeader, http.StatusServiceUnavailable, unavailableMsg},
	{cluster.ErrOutcomeUnknown, http.StatusServiceUnavailable, "cluster unavailable: the change may or may not have been made; check, then try again"},
	{cluster.ErrClosed, http.StatusServiceUnavailable, "this node is shutting down; try again"},
	{cluster.ErrInvalid, http.StatusBadRequest, ""},
	{cluster.ErrMixedVersions, http.StatusServiceUnavailable, "a rolling upgrade is in progress: not every node applies this change yet; try again once every node runs this version"},
	// A broken journal on this node: another node's copy may serve.
	{cluster.ErrJournalCorrupt, http.StatusServiceUnavailable, "this node's journal failed its integrity check; ask another node and see this node's log"},
	{cluster.ErrNotMember, http.StatusForbidden, ""},
	{cluster.ErrWouldLoseQuorum, http.StatusConflict, ""},
	{cluster.ErrForbidden, http.StatusForbidden, ""},
	{cluster.ErrDataDirLocked, http.StatusServiceUnavailable, "this node's data directory is in use by another process; see its log"},
	{cluster.ErrPeerRefused, http.StatusForbidden, ""},
	{cluster.ErrWrongPeer, http.StatusBadRequest, ""},
	{ErrNoAdminProof, http.StatusForbidden, ""},
	{pki.ErrInvalidNodeID, http.StatusBadRequest, ""},
	{pki.ErrPinMismatch, http.StatusBadGateway, ""},
	// Token errors say what is wrong with the token (never its text), so
	// the operator knows whether to mint a new one or fix the command.
	{pki.ErrTokenMalformed, http.StatusUnauthorized, ""},
	{pki.ErrTokenInvalid, http.StatusUnauthorized, ""},
	{pki.ErrTokenExpired, http.StatusUnauthorized, ""},
	{admit.ErrTokenUsed, http.StatusUnauthorized, "join token already used: a token admits one node; make a new one"},
	{admit.ErrInvalid, http.StatusBadRequest, ""},
	{admit.ErrNameNotAllowed, http.StatusForbidden, ""},
	{admit.ErrAlreadyMember, http.StatusConflict, ""},
	{admit.ErrNotRecorded, http.StatusServiceUnavailable, "cannot record the issuance in the audit log; try again"},
	{seal.ErrDecrypt, http.StatusBadRequest, "a sealed value could not be opened"},
	{seal.ErrVersion, http.StatusBadRequest, "a sealed value has an unknown format"},
	{seal.ErrZeroKey, http.StatusServiceUnavailable, "this node has no master key loaded; see its log"},
	{admit.ErrNoCA, http.StatusServiceUnavailable, "this node does not hold the cluster CA yet; retry, or ask another node"},
	{admit.ErrCAMismatch, http.StatusServiceUnavailable, "this node cannot use the cluster CA; see its log"},

	// report
	{report.ErrInvalidQuery, http.StatusBadRequest, ""},
	{report.ErrClosed, http.StatusServiceUnavailable, "this node's report index is closed; try again"},

	// audit
	{audit.ErrInvalidEvent, http.StatusBadRequest, ""},
	{audit.ErrClosed, http.StatusServiceUnavailable, "this node's audit log is closed; try again"},
	{auditfile.ErrTampered, http.StatusUnprocessableEntity, ""},
	{auditfile.ErrNoKey, http.StatusServiceUnavailable, "the audit signing key is not available yet; try again"},
	{auditfile.ErrMalformed, http.StatusBadRequest, ""},
	{audit.ErrTampered, http.StatusUnprocessableEntity, ""},
	{audit.ErrNoKey, http.StatusServiceUnavailable, "the audit signing key is not available yet; try again"},
	{audit.ErrMalformed, http.StatusBadRequest, ""},
	{auditfile.ErrUnsigned, http.StatusUnprocessableEntity, ""},
	{audit.ErrUnsigned, http.StatusUnprocessableEntity, ""},
	{audit.ErrSinkMisconfigured, http.StatusServiceUnavailable, "an audit sink is misconfigured; see this node's log"},
	{audit.ErrInvalidSink, http.StatusBadRequest, ""},
	{audit.ErrNoSuchSink, http.StatusNotFound, ""},
	{audit.ErrSinkExists, http.StatusConflict, ""},

	// authn: authentication failures say little.
	{authn.ErrSessionInvalid, http.StatusUnauthorized, "not signed in or session expired"},
	{authn.ErrBadCode, http.StatusUnauthorized, "wrong code"},
	{authn.ErrReplayed, http.StatusUnauthorized, "wrong code"},
	{authn.ErrLocked, http.StatusTooManyRequests, "too many failed attempts; the account is locked for a while"},
	{authn.ErrNotEnrolled, http.StatusConflict, "the user has no second factor enrolled"},
	{authn.ErrUserDisabled, http.StatusForbidden, "the user is disabled"},
	{authn.ErrForbidden, http.StatusForbidden, ""},
	{authn.ErrAlreadyEnrolled, http.StatusConflict, ""},
	{authn.ErrUnknownUser, http.StatusNotFound, ""},
	{authn.ErrAmbiguousUser, http.StatusConflict, ""},
	{authn.ErrUnknownSession, http.StatusNotFound, ""},
	{authn.ErrInvalidInput, http.StatusBadRequest, ""},
	{authn.ErrContended, http.StatusServiceUnavailable, "too many concurrent changes; try again"},
	// A damaged record on this node: another node's copy may serve.
	{authn.ErrCorrupt, http.StatusServiceUnavailable, "a stored record failed its check on this node; ask another node and see this node's log"},
	// authn/scim: its damaged token record reaches /v1/idp.
	{scim.ErrCorrupt, http.StatusServiceUnavailable, "a stored SCIM record failed its check on this node; see this node's log"},

	// profiles
	{profiles.ErrInvalid, http.StatusBadRequest, ""},
	{profiles.ErrNotFound, http.StatusNotFound, ""},
	{profiles.ErrNotAllowed, http.StatusForbidden, ""},
	{profiles.ErrPoolExhausted, http.StatusServiceUnavailable, ""},
	{profiles.ErrTooManyDevices, http.StatusConflict, ""},
	{profiles.ErrRevokedByAdmin, http.StatusForbidden, ""},
	{profiles.ErrDeviceInUse, http.StatusConflict, ""},
	{profiles.ErrConflict, http.StatusConflict, ""},

	// tunnel
	{tunnel.ErrRunning, http.StatusConflict, ""},
	{tunnel.ErrClosed, http.StatusServiceUnavailable, "this node's data plane is stopped; try again"},
	{tunnel.ErrNotClient, http.StatusForbidden, ""},
	{tunnel.ErrGrantFailed, http.StatusServiceUnavailable, "this node could not put the resolved addresses in force; try again"},

	// packet capture
	{capture.ErrForbidden, http.StatusForbidden, ""},
	{capture.ErrStepUp, http.StatusForbidden, ""},
	{capture.ErrInvalid, http.StatusBadRequest, ""},
	{capture.ErrFilter, http.StatusBadRequest, ""},
	{capture.ErrLimits, http.StatusBadRequest, ""},
	{capture.ErrBusy, http.StatusTooManyRequests, ""},
	{capture.ErrNoClients, http.StatusNotFound, ""},
	{capture.ErrStream, http.StatusBadGateway, ""},
	{capture.ErrClosed, http.StatusServiceUnavailable, "the capture was stopped; try again"},
	{cluster.ErrNoService, http.StatusServiceUnavailable, "a node does not serve this request (is it running an older ferryd?)"},

	// Not sentinels of ours, but the same kind of answer.
	{context.DeadlineExceeded, http.StatusServiceUnavailable, unavailableMsg},
}

// statusOf returns the status and message err is answered with; ok is
// false for an error the table does not know (an internal error).
func statusOf(err error) (status int, msg string, ok bool) {
	var se *statusError
	if errors.As(err, &se) {
		return se.status, se.msg, true
	}
	var maxErr *http.MaxBytesError
	if errors.As(err, &maxErr) {
		return http.StatusRequestEntityTooLarge, fmt.Sprintf("request body is larger than %d bytes", maxErr.Limit), true
	}
	for _, s := range sentinels {
		if errors.Is(err, s.err) {
			if s.msg != "" {
				return s.status, s.msg, true
			}
			return s.status, err.Error(), true
		}
	}
	return http.StatusInternalServerError, "internal error", false
}

// fail answers err: a status of the table with its message, or a logged
// 500 for an error nobody expected. Server-side failures (5xx) are logged
// with the details the client does not get.
func (h *handler) fail(w http.ResponseWriter, r *http.Request, err error) {
	status, msg, ok := statusOf(err)
	switch {
	case !ok:
		h.log.Error("request failed", "method", r.Method, "path", r.URL.Path, "err", err)
	case status >= 500:
		h.log.Warn("request failed", "method", r.Method, "path", r.URL.Path, "status", status, "err", err)
	}
	h.refuse(w, r, status, msg, err)
	writeError(w, status, msg)
}

// handle adapts a handler that returns an error.
func (h *handler) handle(f func(w http.ResponseWriter, r *http.Request) error) http.HandlerFunc {
	return func(w http.ResponseWriter, r *http.Request) {
		if err := f(w, r); err != nil {
			h.fail(w, r, err)
		}
	}
}
