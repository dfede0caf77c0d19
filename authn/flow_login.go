package authn

import (
	"context"
	"crypto/subtle"
	"errors"
	"net/http"
	"strconv"

	"github.com/ferryvpn/ferry/audit"
	"golang.org/x/oauth2"
)

// maxIdPErrorLen bounds the IdP's error text kept in audit records.
const maxIdPErrorLen = 256

// handleLogin starts a sign-in: it stores a pending login bound to this
// browser and sends the browser to the IdP.
func (f *Flow) handleLogin(w http.ResponseWriter, r *http.Request) {
	ctx := r.Context()
	src := f.source(r)
	req, err := parseLoginRequest(r.URL.Query())
	if err != nil {
		reason := frBadRequest
		if errors.Is(err, errNotLoopback) {
			reason = frRedirectURI
		}
		_ = f.event(ctx, audit.TypeLogin, ActionLoginStart, nil, src, audit.Failure, signinFail(reason, err), nil)
		f.renderError(w, http.StatusBadRequest, "This sign-in link is not valid.")
		return
	}
	var state, bind, nonce string
	for _, p := range []*string{&state, &bind, &nonce} {
		if *p, err = randomToken(); err != nil {
			f.internalError(w, r, err)
			return
		}
	}
	verifier := oauth2.GenerateVerifier()
	authURL, err := f.rp.authURL(ctx, state, nonce, verifier)
	if err != nil {
		_ = f.event(ctx, audit.TypeLogin, ActionLoginStart, nil, src, audit.Failure, signinFail(frIdPUnavailable, err), nil)
		f.renderError(w, http.StatusServiceUnavailable, "The identity provider cannot be reached. Please try again in a moment.")
		return
	}
	now := f.now().UTC()
	rec := &signinRecord{
		V: signinRecordVersion, Created: now, Expires: now.Add(loginTTL),
		BrowserHash: signinHash(bind), NonceHash: signinHash(nonce), Verifier: verifier,
		Desktop: req.desktop, Admin: req.admin, Return: req.ret,
	}
	if err := f.createSignin(ctx, prefixSigninState+signinHash(state), rec); err != nil {
		f.internalError(w, r, err)
		return
	}
	setCookie(w, loginCookie, bind, loginTTL)
	http.Redirect(w, r, authURL, http.StatusFound)
}

// handleCallback takes the IdP's answer: it uses up the pending login
// (once, on any node), redeems the code with the PKCE verifier, verifies
// the ID token and its nonce, applies the sign-in policy, and moves the
// login on to the second factor.
func (f *Flow) handleCallback(w http.ResponseWriter, r *http.Request) {
	src := f.source(r)
	q := r.URL.Query()
	state := q.Get("state")
	if state == "" || len(q["state"]) > 1 {
		f.refuse(r.Context(), w, audit.TypeLogin, ActionLoginOIDC, nil, src, signinFail(frStateMissing, nil))
		return
	}
	// Past this point the login is used up whatever happens, so finish
	// even if the browser goes away.
	ctx, cancel := detach(r.Context())
	defer cancel()
	key := prefixSigninState + signinHash(state)
	rec, ver, ok, err := f.loadSignin(ctx, key)
	switch {
	case err != nil:
		f.internalError(w, r, err)
		return
	case !ok:
		f.refuseOrLeadOn(ctx, w, r, audit.TypeLogin, ActionLoginOIDC, src, signinFail(frStateUnknown, nil))
		return
	case rec.Consumed:
		f.refuseOrLeadOn(ctx, w, r, audit.TypeLogin, ActionLoginOIDC, src, signinFail(frStateReplayed, nil))
		return
	}
	// Use the login up before anything else, so a replay racing this
	// request on another node fails.
	now := f.now().UTC()
	won, err := f.swapSignin(ctx, key, ver, tombstone(now), nil)
	switch {
	case err != nil:
		f.internalError(w, r, err)
		return
	case !won:
		f.refuseOrLeadOn(ctx, w, r, audit.TypeLogin, ActionLoginOIDC, src, signinFail(frStateReplayed, errors.New("lost the race to another request")))
		return
	case !now.Before(rec.Expires):
		f.refuseOrLeadOn(ctx, w, r, audit.TypeLogin, ActionLoginOIDC, src, signinFail(frStateExpired, nil))
		return
	}
	clearCookie(w, loginCookie)
	bind := cookieValue(r, loginCookie)
	if bind == "" || subtle.ConstantTimeCompare([]byte(signinHash(bind)), []byte(rec.BrowserHash)) != 1 {
		// Someone else's browser holds this state (login CSRF, or a
		// leaked link): the login is burnt either way.
		f.refuse(ctx, w, audit.TypeLogin, ActionLoginOIDC, nil, src, signinFail(frBrowserMismatch, nil))
		return
	}
	if e := q.Get("error"); e != "" {
		msg := e + ": " + q.Get("error_description")
		if len(msg) > maxIdPErrorLen {
			msg = msg[:maxIdPErrorLen]
		}
		f.refuseTold(ctx, w, r, rec.Desktop, audit.TypeLogin, ActionLoginOIDC, nil, src, signinFail(frIdPError, errors.New(msg)))
		return
	}
	code := q.Get("code")
	if code == "" {
		f.refuseTold(ctx, w, r, rec.Desktop, audit.TypeLogin, ActionLoginOIDC, nil, src, signinFail(frBadRequest, errors.New("no code")))
		return
	}
	tokens, err := f.rp.exchange(ctx, code, rec.Verifier)
	if err != nil {
		f.refuseTold(ctx, w, r, rec.Desktop, audit.TypeLogin, ActionLoginOIDC, nil, src, err)
		return
	}
	id, err := f.rp.verify(ctx, tokens.idToken, tokens.accessToken, rec.NonceHash)
	if err != nil {
		who := &id
		if id.UserID == "" {
			who = nil
		}
		if who != nil && errors.Is(err, ErrForbidden) {
			// Refused by the sign-in policy (required groups, email
			// domain): what the IdP now says about a known user is kept,
			// so the entitlement watcher takes away what they held.
			if _, _, uerr := f.users.Refused(ctx, id); uerr != nil {
				f.log.Warn("updating refused user", "err", uerr)
			}
		}
		f.refuseTold(ctx, w, r, rec.Desktop, audit.TypeLogin, ActionLoginOIDC, who, src, err)
		return
	}
	user, err := f.users.Upsert(ctx, id)
	if err != nil {
		f.internalError(w, r, err)
		return
	}
	id.UserID = user.ID // the key, or a claimed older record's ID
	if id.GroupsClaimMissing {
		// Everyone then signs in as a plain user without group profiles:
		// say so where the operator looks.
		f.log.Warn("sign-in without a groups claim: neither the ID token nor userinfo carried it, so this user has no groups (request the groups scope or add a groups mapper at the identity provider)",
			"claim", f.rp.cfg.GroupsClaim, "user", id.UserID, "email", id.Email)
	}
	if user.Disabled {
		f.refuseTold(ctx, w, r, rec.Desktop, audit.TypeLogin, ActionLoginOIDC, &id, src, signinFail(frUserDisabled, ErrUserDisabled))
		return
	}
	if f.reval != nil {
		// Kept (sealed) for periodic revalidation; a sign-in without one
		// drops an older token.
		if err := f.reval.Keep(ctx, user.ID, tokens.refreshToken); err != nil {
			f.internalError(w, r, err)
			return
		}
	}
	ticket, err := randomToken()
	if err != nil {
		f.internalError(w, r, err)
		return
	}
	step := &signinRecord{
		V: signinRecordVersion, Created: now, Expires: now.Add(loginTTL),
		Desktop: rec.Desktop, Admin: rec.Admin, Return: rec.Return, Identity: &id,
	}
	if err := f.createSignin(ctx, prefixSigninStep+signinHash(ticket), step); err != nil {
		f.internalError(w, r, err)
		return
	}
	if err := f.event(ctx, audit.TypeLogin, ActionLoginOIDC, &id, src, audit.Success, nil, map[string]string{"client": clientKind(rec.Desktop), DetailEmailVerified: strconv.FormatBool(id.EmailVerified)}); err != nil {
		f.internalError(w, r, err)
		return
	}
	setCookie(w, stepCookie, ticket, loginTTL)
	http.Redirect(w, r, PathMFA, http.StatusSeeOther)
}

func clientKind(d *desktopRequest) string {
	if d != nil {
		return clientDesktop
	}
	return clientBrowser
}

// refuse records a refused step with its exact reason and tells the client
// only that the sign-in failed.
func (f *Flow) refuse(ctx context.Context, w http.ResponseWriter, typ audit.Type, action string, id *Identity, src Source, err error) {
	f.log.Info("sign-in refused", "action", action, "reason", signinReason(err), "src", src.Addr, "err", err)
	_ = f.event(ctx, typ, action, id, src, audit.Failure, err, nil)
	status := http.StatusBadRequest
	if errors.Is(err, ErrForbidden) || errors.Is(err, ErrUserDisabled) {
		status = http.StatusForbidden
	}
	f.renderError(w, status, "")
}

// internalError logs err and shows a generic failure.
func (f *Flow) internalError(w http.ResponseWriter, r *http.Request, err error) {
	f.log.Error("sign-in failed", "path", r.URL.Path, "err", err)
	_ = f.event(r.Context(), audit.TypeLogin, "", nil, f.source(r), audit.Failure, signinFail(frInternal, err), map[string]string{"path": r.URL.Path})
	f.renderError(w, http.StatusInternalServerError, "Something went wrong on our side. Please start again.")
}
