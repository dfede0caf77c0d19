package signals

import (
	"context"
	"encoding/json"
	"errors"
	"io"
	"net/http"
	"sort"
	"strconv"
	"strings"

	"github.com/ferryvpn/ferry/audit"
	"github.com/ferryvpn/ferry/authn"
)

// Event types acted on (CAEP 1.0 and RISC 1.0), and SSF's verification.
const (
	EventSessionRevoked   = "https://schemas.openid.net/secevent/caep/event-type/session-revoked"
	EventCredentialChange = "https://schemas.openid.net/secevent/caep/event-type/credential-change"
	EventAccountDisabled  = "https://schemas.openid.net/secevent/risc/event-type/account-disabled"
	EventAccountPurged    = "https://schemas.openid.net/secevent/risc/event-type/account-purged"
	EventVerification     = "https://schemas.openid.net/secevent/ssf/event-type/verification"
)

// ActionSET marks the audit event of a Security Event Token (type admin).
const ActionSET = "idp.set"

// pushError is an RFC 8935 section 2.4 error code for a reason.
func pushError(reason string) string {
	switch reason {
	case reasonSignature, reasonUnavailable:
		return "invalid_key"
	case reasonIssuer:
		return "invalid_issuer"
	case reasonAudience:
		return "invalid_audience"
	}
	return "invalid_request"
}

// serveSET accepts one SET by push (RFC 8935): 202 when accepted, 400 with
// {"err","description"} when not.
func (r *Receiver) serveSET(w http.ResponseWriter, req *http.Request) {
	e := audit.Event{Type: audit.TypeAdmin, Action: ActionSET, Actor: actor(r.cfg.Transmitter.Issuer), Source: source(req)}
	err := r.setToken(req, &e)
	if err == nil {
		if e.Outcome == "" {
			e.Outcome = audit.Success
		}
		if rerr := r.cfg.Recorder.Record(req.Context(), e); rerr != nil {
			r.log.Error("recording security event", "err", rerr)
		}
		w.WriteHeader(http.StatusAccepted)
		return
	}
	var ref *refusal
	status := http.StatusBadRequest
	if !errors.As(err, &ref) {
		r.log.Error("security event failed", "err", err)
		ref, status = &refusal{reason: "internal error", err: err}, http.StatusInternalServerError
	}
	e.Outcome, e.Reason = audit.Failure, ref.reason
	if e.Details == nil {
		e.Details = map[string]string{}
	}
	if ref.err != nil {
		e.Details["detail"] = truncate(ref.err.Error(), 300)
	}
	if status != http.StatusBadRequest || r.refusals.Allow(r.cfg.Now(), e.Details) {
		if rerr := r.cfg.Recorder.Record(req.Context(), e); rerr != nil {
			r.log.Error("recording refused security event", "err", rerr)
		}
	}
	w.Header().Set("Content-Type", "application/json")
	w.WriteHeader(status)
	if status != http.StatusBadRequest {
		return
	}
	b, _ := json.Marshal(map[string]string{"err": pushError(ref.reason), "description": "the security event token was refused"})
	w.Write(b)
}

func (r *Receiver) setToken(req *http.Request, e *audit.Event) error {
	if req.Method != http.MethodPost {
		return refuse(reasonMalformed, errors.New("method "+req.Method))
	}
	raw, err := io.ReadAll(http.MaxBytesReader(nil, req.Body, maxTokenBytes))
	if err != nil {
		return refuse(reasonMalformed, err)
	}
	ctx := req.Context()
	claims, err := r.set.verify(ctx, strings.TrimSpace(string(raw)), "secevent+jwt")
	if err != nil {
		return err
	}
	if _, err := checkFresh(claims, r.cfg.Now(), r.cfg.MaxAge); err != nil {
		return err
	}
	events, _ := claims["events"].(map[string]any)
	if len(events) == 0 {
		return refuse(reasonMalformed, errors.New("no events claim"))
	}
	if err := r.claim(ctx, r.cfg.Transmitter.Issuer, claims); err != nil {
		return err
	}
	types := make([]string, 0, len(events))
	for t := range events {
		types = append(types, t)
	}
	sort.Strings(types)
	e.Details = map[string]string{"events": truncate(strings.Join(types, " "), 500)}
	acted := false
	for _, t := range types {
		body, _ := events[t].(map[string]any)
		var act func(context.Context, string, audit.Actor) (int, error)
		switch t {
		case EventSessionRevoked, EventCredentialChange:
			act = r.endAccess(t)
		case EventAccountDisabled, EventAccountPurged:
			act = r.disable(t)
		default:
			continue // verification and events ferry does not act on
		}
		subj := claims["sub_id"]
		if s, ok := body["subject"]; ok {
			subj = s
		}
		uid, ok, err := r.subjectUser(ctx, subj)
		if err != nil {
			return err
		}
		if !ok {
			e.Details["subject"] = "unknown to ferry"
			continue
		}
		e.Target.User = uid
		n, err := act(ctx, uid, actor(r.cfg.Transmitter.Issuer))
		if err != nil {
			return err
		}
		e.Details["devices_revoked"] = strconv.Itoa(n)
		acted = true
	}
	if !acted {
		e.Outcome, e.Reason = audit.Success, "nothing to act on"
	}
	return nil
}

// endAccess ends a user's sessions and revokes their devices.
func (r *Receiver) endAccess(event string) func(context.Context, string, audit.Actor) (int, error) {
	return func(ctx context.Context, uid string, who audit.Actor) (int, error) {
		if err := r.cfg.Sessions.RevokeUser(ctx, uid, who); err != nil {
			return 0, err
		}
		return r.cfg.Revoker.RevokeUser(ctx, uid, "identity provider event "+shortEvent(event), who)
	}
}

// disable disables a user (sessions and devices end with it).
func (r *Receiver) disable(event string) func(context.Context, string, audit.Actor) (int, error) {
	return func(ctx context.Context, uid string, who audit.Actor) (int, error) {
		n, err := r.cfg.Revoker.SetUserDisabled(ctx, uid, true, who, authn.Source{})
		if errors.Is(err, authn.ErrUnknownUser) {
			return 0, nil
		}
		return n, err
	}
}

func shortEvent(t string) string { return t[strings.LastIndexByte(t, '/')+1:] }

// subjectUser maps a subject identifier (RFC 9493, or CAEP's older
// subject_type spelling) to a ferry user.
func (r *Receiver) subjectUser(ctx context.Context, subj any) (string, bool, error) {
	m, ok := subj.(map[string]any)
	if !ok {
		return "", false, refuse(reasonMalformed, errors.New("no subject"))
	}
	format, _ := m["format"].(string)
	if format == "" {
		format, _ = m["subject_type"].(string)
	}
	s := func(k string) string { v, _ := m[k].(string); return v }
	switch format {
	case "iss_sub", "iss-sub":
		iss := s("iss")
		if iss == "" {
			iss = r.cfg.Transmitter.SubjectIssuer
		}
		if s("sub") == "" {
			return "", false, refuse(reasonMalformed, errors.New("iss_sub subject without sub"))
		}
		return r.findUser(ctx, iss, s("sub"))
	case "opaque":
		if s("id") == "" {
			return "", false, refuse(reasonMalformed, errors.New("opaque subject without id"))
		}
		return r.findUser(ctx, r.cfg.Transmitter.SubjectIssuer, s("id"))
	case "email":
		return r.emailUser(ctx, s("email"))
	case "complex":
		if u, ok := m["user"]; ok {
			return r.subjectUser(ctx, u)
		}
		return "", false, refuse(reasonMalformed, errors.New("complex subject without user"))
	}
	return "", false, refuse(reasonMalformed, errors.New("subject format "+strconv.Quote(truncate(format, 40))+" not supported"))
}

// emailUser returns the one user whose provider verified this email; an
// address held by several, or only claimed, names nobody.
func (r *Receiver) emailUser(ctx context.Context, email string) (string, bool, error) {
	if email == "" {
		return "", false, refuse(reasonMalformed, errors.New("email subject without email"))
	}
	all, err := r.cfg.Users.List(ctx)
	if err != nil {
		return "", false, err
	}
	found := ""
	for _, u := range all {
		if strings.EqualFold(u.Email, email) && u.EmailVerified {
			if found != "" {
				return "", false, nil
			}
			found = u.ID
		}
	}
	return found, found != "", nil
}
