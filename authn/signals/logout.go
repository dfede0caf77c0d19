package signals

import (
	"context"
	"errors"
	"io"
	"net/http"
	"strconv"
	"strings"

	"github.com/ferryvpn/ferry/audit"
	"github.com/ferryvpn/ferry/authn"
)

// EventBackChannelLogout is the event a logout token must carry
// (OpenID Connect Back-Channel Logout 1.0, section 2.4).
const EventBackChannelLogout = "http://schemas.openid.net/event/backchannel-logout"

// ActionLogout marks the audit event of a logout token (type admin).
const ActionLogout = "idp.backchannel_logout"

// serveLogout accepts one logout token (section 2.5): 200 when acted on,
// 400 {"error":"invalid_request"} otherwise, never cached.
func (r *Receiver) serveLogout(w http.ResponseWriter, req *http.Request) {
	w.Header().Set("Cache-Control", "no-store")
	e := audit.Event{Type: audit.TypeAdmin, Action: ActionLogout, Actor: actor(r.cfg.Logout.Issuer), Source: source(req)}
	err := r.logoutToken(req, &e)
	if err == nil {
		e.Outcome = audit.Success
		if rerr := r.cfg.Recorder.Record(req.Context(), e); rerr != nil {
			r.log.Error("recording back-channel logout", "err", rerr)
		}
		w.WriteHeader(http.StatusOK)
		return
	}
	var ref *refusal
	status := http.StatusBadRequest
	if !errors.As(err, &ref) {
		r.log.Error("back-channel logout failed", "err", err)
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
			r.log.Error("recording refused back-channel logout", "err", rerr)
		}
	}
	w.Header().Set("Content-Type", "application/json")
	w.WriteHeader(status)
	if status == http.StatusBadRequest {
		io.WriteString(w, `{"error":"invalid_request","error_description":"the logout token was refused"}`)
		return
	}
	io.WriteString(w, `{"error":"server_error"}`)
}

func (r *Receiver) logoutToken(req *http.Request, e *audit.Event) error {
	if req.Method != http.MethodPost {
		return refuse(reasonMalformed, errors.New("method "+req.Method))
	}
	req.Body = http.MaxBytesReader(nil, req.Body, maxTokenBytes)
	if err := req.ParseForm(); err != nil {
		return refuse(reasonMalformed, err)
	}
	raw := req.PostForm.Get("logout_token")
	if raw == "" {
		return refuse(reasonMalformed, errors.New("no logout_token"))
	}
	ctx := req.Context()
	claims, err := r.logout.verify(ctx, raw, "logout+jwt")
	if err != nil {
		return err
	}
	if _, err := checkFresh(claims, r.cfg.Now(), r.cfg.MaxAge); err != nil {
		return err
	}
	events, _ := claims["events"].(map[string]any)
	if _, ok := events[EventBackChannelLogout].(map[string]any); !ok {
		return refuse(reasonMalformed, errors.New("events claim lacks the back-channel-logout event"))
	}
	if _, ok := claims["nonce"]; ok {
		return refuse(reasonMalformed, errors.New("nonce present (an ID token?)"))
	}
	sub, _ := claims["sub"].(string)
	sid, _ := claims["sid"].(string)
	if sub == "" && sid == "" {
		return refuse(reasonMalformed, errors.New("neither sub nor sid"))
	}
	iss := r.cfg.Logout.Issuer
	if err := r.claim(ctx, iss, claims); err != nil {
		return err
	}
	e.Details = map[string]string{}
	if sid != "" {
		e.Details["sid"] = truncate(sid, 128)
	}
	var users []string
	if sub != "" {
		id, ok, err := r.findUser(ctx, iss, sub)
		if err != nil {
			return err
		}
		if ok {
			users = append(users, id)
			e.Target.User = id
		}
	}
	who := actor(iss)
	if sub == "" {
		// Only the IdP session: end the sessions it began.
		ended, err := r.cfg.Sessions.EndIdPSession(ctx, iss, sid, who)
		if err != nil {
			return err
		}
		users = ended
	} else if len(users) > 0 {
		if err := r.cfg.Sessions.RevokeUser(ctx, users[0], who); err != nil {
			return err
		}
	}
	revoked := 0
	for _, u := range users {
		n, err := r.cfg.Revoker.RevokeUser(ctx, u, "identity provider logged the user out (back-channel logout)", who)
		if err != nil {
			return err
		}
		revoked += n
	}
	e.Details["users"] = strconv.Itoa(len(users))
	e.Details["devices_revoked"] = strconv.Itoa(revoked)
	if len(users) == 1 {
		e.Target.User = users[0]
	}
	return nil
}

// findUser returns the ferry user of issuer's subject: UserKey(iss, sub),
// or a record stored before keys named the issuer. ok is false when ferry
// never saw the person (nothing to end).
func (r *Receiver) findUser(ctx context.Context, iss, sub string) (string, bool, error) {
	key := authn.UserKey(iss, sub)
	if _, ok, err := r.cfg.Users.Get(ctx, key); err != nil && !errors.Is(err, authn.ErrInvalidInput) {
		return "", false, err
	} else if ok {
		return key, true, nil
	}
	u, ok, err := r.cfg.Users.Get(ctx, sub)
	if err != nil || !ok || (u.Issuer != "" && u.Issuer != iss) {
		return "", false, nil
	}
	return sub, true, nil
}

func source(req *http.Request) audit.Source {
	src := audit.Source{Addr: req.RemoteAddr, UserAgent: truncate(req.UserAgent(), 256)}
	if i := strings.LastIndexByte(req.RemoteAddr, ':'); i > 0 {
		src.Addr = strings.Trim(req.RemoteAddr[:i], "[]")
		src.Port, _ = strconv.Atoi(req.RemoteAddr[i+1:])
	}
	return src
}

func truncate(s string, n int) string {
	if len(s) > n {
		s = s[:n]
	}
	return strings.ToValidUTF8(s, "?")
}
