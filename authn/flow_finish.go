package authn

import (
	"context"
	"encoding/json"
	"errors"
	"mime"
	"net/http"
	"time"

	"github.com/ferryvpn/ferry/audit"
)

// finish ends a login whose second factor passed: a browser gets a session
// cookie, a desktop client a one-time code at its loopback address. The
// step is used up in the same transaction, so it finishes once.
func (f *Flow) finish(ctx context.Context, w http.ResponseWriter, r *http.Request, st *signinStep, method string) {
	src := f.source(r)
	id := *st.rec.Identity
	// st was read in this request and nothing but this step's own
	// handlers writes it, so its version is the one to compare: no second
	// read (which, on a follower right after MFA's write, would wait for
	// the commit to reach it).
	ver := st.ver
	now := f.now().UTC()
	if st.rec.Desktop == nil {
		won, err := f.swapSignin(ctx, st.key, ver, tombstone(now), nil)
		if err != nil || !won {
			f.stepLost(ctx, w, r, &id, src, err)
			return
		}
		tok, sess, err := f.sessions.Create(ctx, id, method, src)
		switch {
		case errors.Is(err, ErrUserDisabled):
			// Sessions recorded the refusal.
			f.renderError(w, http.StatusForbidden, "")
			return
		case err != nil:
			f.internalError(w, r, err)
			return
		}
		clearCookie(w, stepCookie)
		setCookie(w, SessionCookie, tok.Reveal(), sess.Expires.Sub(now))
		// Where the person was going, else home. The stored address was
		// checked at /login and again when the record was read.
		to := f.home
		if st.rec.Return != "" {
			to = st.rec.Return
		}
		http.Redirect(w, r, to, http.StatusSeeOther)
		return
	}
	if st.rec.Admin && f.sessions.role(id) != RoleAdmin {
		// ferryctl asked for an administrator session: refuse here, so
		// that the browser shows the refusal as the terminal does (the
		// token endpoint checks again). The step is used up first.
		won, err := f.swapSignin(ctx, st.key, ver, tombstone(now), nil)
		if err != nil || !won {
			f.stepLost(ctx, w, r, &id, src, err)
			return
		}
		clearCookie(w, stepCookie)
		f.refuseTold(ctx, w, r, st.rec.Desktop, audit.TypeLogin, ActionLoginCode, &id, src, signinFail(frNotAdmin, ErrForbidden))
		return
	}
	code, err := randomToken()
	if err != nil {
		f.internalError(w, r, err)
		return
	}
	codeRec := &signinRecord{
		V: signinRecordVersion, Created: now, Expires: now.Add(codeTTL),
		Desktop: st.rec.Desktop, Admin: st.rec.Admin, Identity: &id, Method: method,
	}
	won, err := f.swapSignin(ctx, st.key, ver, tombstone(now), map[string]*signinRecord{prefixSigninCode + signinHash(code): codeRec})
	if err != nil || !won {
		f.stepLost(ctx, w, r, &id, src, err)
		return
	}
	if err := f.event(ctx, audit.TypeLogin, ActionLoginCode, &id, src, audit.Success, nil, map[string]string{
		"step": "issued", "mfa_method": method, "admin": boolString(st.rec.Admin),
	}); err != nil {
		f.internalError(w, r, err)
		return
	}
	clearCookie(w, stepCookie)
	http.Redirect(w, r, loopbackURL(st.rec.Desktop, code), http.StatusSeeOther)
}

func (f *Flow) stepLost(ctx context.Context, w http.ResponseWriter, r *http.Request, id *Identity, src Source, err error) {
	if err != nil {
		f.internalError(w, r, err)
		return
	}
	f.refuse(ctx, w, audit.TypeMFA, ActionLoginMFA, id, src, signinFail(frStepMissing, errors.New("step used by another request")))
}

func boolString(b bool) string {
	if b {
		return "true"
	}
	return "false"
}

// handleToken redeems a desktop client's loopback code with its PKCE
// verifier for a session token (RFC 8252 with RFC 7636). The code is used
// up before anything is checked, so a wrong verifier burns it.
func (f *Flow) handleToken(w http.ResponseWriter, r *http.Request) {
	src := f.source(r)
	if mt, _, err := mime.ParseMediaType(r.Header.Get("Content-Type")); err != nil || mt != "application/json" {
		f.tokenRefused(r.Context(), w, nil, src, signinFail(frBadRequest, errors.New("content type is not application/json")), http.StatusUnsupportedMediaType)
		return
	}
	req, err := decodeTokenRequest(http.MaxBytesReader(w, r.Body, maxTokenBody))
	if err != nil {
		f.tokenRefused(r.Context(), w, nil, src, signinFail(frBadRequest, err), http.StatusBadRequest)
		return
	}
	ctx, cancel := detach(r.Context())
	defer cancel()
	key := prefixSigninCode + signinHash(req.Code)
	rec, ver, ok, err := f.loadSignin(ctx, key)
	switch {
	case err != nil:
		f.tokenInternal(ctx, w, src, err)
		return
	case !ok:
		f.tokenRefused(ctx, w, nil, src, signinFail(frCodeUnknown, nil), http.StatusBadRequest)
		return
	case rec.Consumed:
		f.tokenRefused(ctx, w, nil, src, signinFail(frCodeReplayed, nil), http.StatusBadRequest)
		return
	case rec.Identity == nil || rec.Desktop == nil || rec.Method == "":
		f.tokenInternal(ctx, w, src, errors.New("loopback code record incomplete"))
		return
	}
	id := *rec.Identity
	now := f.now().UTC()
	won, err := f.swapSignin(ctx, key, ver, tombstone(now), nil)
	switch {
	case err != nil:
		f.tokenInternal(ctx, w, src, err)
		return
	case !won:
		f.tokenRefused(ctx, w, &id, src, signinFail(frCodeReplayed, errors.New("lost the race to another request")), http.StatusBadRequest)
		return
	case !now.Before(rec.Expires):
		f.tokenRefused(ctx, w, &id, src, signinFail(frCodeExpired, nil), http.StatusBadRequest)
		return
	case req.RedirectURI != rec.Desktop.RedirectURI:
		f.tokenRefused(ctx, w, &id, src, signinFail(frRedirectMismatch, nil), http.StatusBadRequest)
		return
	case req.CodeVerifier == "":
		f.tokenRefused(ctx, w, &id, src, signinFail(frPKCEMismatch, errors.New("no code_verifier")), http.StatusBadRequest)
		return
	case !validVerifier(req.CodeVerifier) || !s256Matches(req.CodeVerifier, rec.Desktop.Challenge):
		f.tokenRefused(ctx, w, &id, src, signinFail(frPKCEMismatch, errors.New("code_verifier does not match code_challenge")), http.StatusBadRequest)
		return
	}
	if rec.Admin && f.sessions.role(id) != RoleAdmin {
		// Refused before a session exists: ferryctl never holds a
		// non-admin token. Every admin API checks the role again.
		f.tokenRefused(ctx, w, &id, src, signinFail(frNotAdmin, ErrForbidden), http.StatusForbidden)
		return
	}
	tok, sess, err := f.sessions.Create(ctx, id, rec.Method, src)
	switch {
	case errors.Is(err, ErrUserDisabled):
		// Sessions recorded the refusal.
		writeTokenError(w, http.StatusForbidden, "access_denied")
		return
	case err != nil:
		f.tokenInternal(ctx, w, src, err)
		return
	}
	writeTokenJSON(w, http.StatusOK, tokenResponse{
		Token: tok.Reveal(), SessionID: sess.ID, Expires: sess.Expires.UTC().Format(time.RFC3339),
		Role: sess.Role, UserID: sess.Identity.UserID, Email: sess.Identity.Email, Name: sess.Identity.Name,
	})
}

// tokenRefused records a refused redeem and answers with an OAuth-style
// error that says nothing of the reason.
func (f *Flow) tokenRefused(ctx context.Context, w http.ResponseWriter, id *Identity, src Source, err error, status int) {
	f.log.Info("token request refused", "reason", signinReason(err), "src", src.Addr, "err", err)
	_ = f.event(ctx, audit.TypeLogin, ActionLoginCode, id, src, audit.Failure, err, map[string]string{"step": "redeem"})
	msg := "invalid_grant"
	switch status {
	case http.StatusForbidden:
		msg = "access_denied"
	case http.StatusUnsupportedMediaType:
		msg = "invalid_request"
	}
	writeTokenError(w, status, msg)
}

func (f *Flow) tokenInternal(ctx context.Context, w http.ResponseWriter, src Source, err error) {
	f.log.Error("token request failed", "err", err)
	_ = f.event(ctx, audit.TypeLogin, ActionLoginCode, nil, src, audit.Failure, signinFail(frInternal, err), map[string]string{"step": "redeem"})
	writeTokenError(w, http.StatusInternalServerError, "server_error")
}

func writeTokenError(w http.ResponseWriter, status int, code string) {
	writeTokenJSON(w, status, struct {
		Error string `json:"error"`
	}{code})
}

func writeTokenJSON(w http.ResponseWriter, status int, v any) {
	b, err := json.Marshal(v)
	if err != nil {
		http.Error(w, `{"error":"server_error"}`, http.StatusInternalServerError)
		return
	}
	w.Header().Set("Content-Type", "application/json")
	w.WriteHeader(status)
	_, _ = w.Write(append(b, '\n'))
}
