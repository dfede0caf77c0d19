package authn

import (
	"context"
	"crypto/subtle"
	"errors"
	"net/http"

	"github.com/ferryvpn/ferry/audit"
)

// maxFormBytes bounds the body of the sign-in forms.
const maxFormBytes = 8 << 10

// csrfStep is the purpose of the CSRF token of every second-factor form.
const csrfStep = "mfa"

// signinStep is a login past OIDC, found by the browser's step cookie.
type signinStep struct {
	key    string
	ticket string
	rec    *signinRecord
	ver    uint64
}

// loadStep finds the step of this browser's login.
func (f *Flow) loadStep(ctx context.Context, r *http.Request) (*signinStep, error) {
	ticket := cookieValue(r, stepCookie)
	if ticket == "" {
		return nil, signinFail(frStepMissing, errors.New("no step cookie"))
	}
	key := prefixSigninStep + signinHash(ticket)
	rec, ver, ok, err := f.loadSignin(ctx, key)
	switch {
	case err != nil:
		return nil, err
	case !ok || rec.Consumed || rec.Identity == nil:
		return nil, signinFail(frStepMissing, nil)
	case !f.now().Before(rec.Expires):
		return nil, signinFail(frStepExpired, nil)
	}
	return &signinStep{key: key, ticket: ticket, rec: rec, ver: ver}, nil
}

// stepFailed answers a request whose step could not be loaded.
func (f *Flow) stepFailed(ctx context.Context, w http.ResponseWriter, r *http.Request, src Source, err error) {
	var se *signinError
	if !errors.As(err, &se) {
		f.internalError(w, r, err)
		return
	}
	f.log.Info("sign-in refused", "action", ActionLoginMFA, "reason", se.reason, "src", src.Addr)
	_ = f.event(ctx, audit.TypeMFA, ActionLoginMFA, nil, src, audit.Failure, err, nil)
	if f.leadOn(ctx, w, r) {
		return
	}
	f.renderError(w, http.StatusBadRequest, "Your sign-in has expired or is not valid. Please start again.")
}

// parseStepForm reads a second-factor form and checks its CSRF token.
func (f *Flow) parseStepForm(w http.ResponseWriter, r *http.Request, st *signinStep) error {
	r.Body = http.MaxBytesReader(w, r.Body, maxFormBytes)
	if err := r.ParseForm(); err != nil {
		return signinFail(frBadRequest, err)
	}
	want := csrfToken(csrfStep, st.ticket)
	if subtle.ConstantTimeCompare([]byte(r.PostForm.Get("csrf")), []byte(want)) != 1 {
		return signinFail(frCSRF, nil)
	}
	return nil
}

// renderStep renders a form page of a step.
func (f *Flow) renderStep(w http.ResponseWriter, status int, page string, st *signinStep, d pageData) {
	allowIPv6Loopback(w, st.rec.Desktop)
	d.CSRF = csrfToken(csrfStep, st.ticket)
	d.Identity = st.rec.Identity
	d.Who = displayName(st.rec.Identity)
	d.Client = clientName(st.rec)
	f.render(w, status, page, d)
}

// handleMFAPage shows enrollment (a new TOTP key as a QR code and as
// text) or asks for a code; after a refused code (?refused=, see
// redirectRefused) it says why; once enrollment is confirmed it shows the
// new recovery codes.
func (f *Flow) handleMFAPage(w http.ResponseWriter, r *http.Request) {
	ctx := r.Context()
	src := f.source(r)
	st, err := f.loadStep(ctx, r)
	if err != nil {
		f.stepFailed(ctx, w, r, src, err)
		return
	}
	if st.rec.Method != "" {
		f.showCodes(w, r, st)
		return
	}
	switch kind := r.URL.Query().Get(paramRefused); kind {
	case refusedRetry:
		f.showFactorPage(ctx, w, r, st, http.StatusConflict, "Please try again.")
	case refusedCode, refusedUsed, refusedLocked:
		enrolled, err := f.mfa.Enrolled(ctx, st.rec.Identity.UserID)
		if err != nil {
			f.internalError(w, r, err)
			return
		}
		page := pageVerify
		if !enrolled {
			page = pageEnroll
		}
		f.showRefused(ctx, w, r, st, page, kind)
	default:
		f.showFactorPage(ctx, w, r, st, http.StatusOK, "")
	}
}

// showCodes shows the recovery codes an enrollment made (once the code
// form redirected here), or says that the second factor is verified.
func (f *Flow) showCodes(w http.ResponseWriter, r *http.Request, st *signinStep) {
	d := pageData{Title: "Second factor verified"}
	if len(st.rec.Codes) > 0 {
		codes, err := openCodes(st.ticket, st.rec.Codes)
		if err != nil {
			f.internalError(w, r, err)
			return
		}
		d = pageData{Title: "Save your recovery codes", RecoveryCodes: codes}
	}
	f.renderStep(w, http.StatusOK, pageCodes, st, d)
}

// showFactorPage renders enrollment (with a fresh key) for a user with no
// confirmed TOTP, or the code form.
func (f *Flow) showFactorPage(ctx context.Context, w http.ResponseWriter, r *http.Request, st *signinStep, status int, msg string) {
	id := st.rec.Identity
	enrolled, err := f.mfa.Enrolled(ctx, id.UserID)
	if err != nil {
		f.internalError(w, r, err)
		return
	}
	if !enrolled {
		enr, err := f.mfa.BeginEnroll(ctx, *id)
		switch {
		case errors.Is(err, ErrAlreadyEnrolled):
			// Enrolled meanwhile (another tab): ask for a code.
		case err != nil:
			f.internalError(w, r, err)
			return
		default:
			f.renderStep(w, status, pageEnroll, st, pageData{
				Title: "Set up your authenticator", Error: msg,
				QR: qrDataURI(enr.QRPNG), URI: enr.URI, Secret: otpauthSecret(enr.URI),
			})
			return
		}
	}
	f.renderStep(w, status, pageVerify, st, pageData{Title: "Enter your code", Error: msg})
}

// handleMFASubmit checks a TOTP code: the first one confirms a new
// enrollment (and shows the recovery codes), later ones verify.
func (f *Flow) handleMFASubmit(w http.ResponseWriter, r *http.Request) {
	src := f.source(r)
	ctx, cancel := detach(r.Context())
	defer cancel()
	st, err := f.loadStep(ctx, r)
	if err != nil {
		f.stepFailed(ctx, w, r, src, err)
		return
	}
	if err := f.parseStepForm(w, r, st); err != nil {
		f.refuse(ctx, w, audit.TypeMFA, ActionLoginMFA, st.rec.Identity, src, err)
		return
	}
	if st.rec.Method != "" {
		f.finish(ctx, w, r, st, st.rec.Method)
		return
	}
	id := *st.rec.Identity
	code := r.PostForm.Get("code")
	enrolled, err := f.mfa.Enrolled(ctx, id.UserID)
	if err != nil {
		f.internalError(w, r, err)
		return
	}
	if enrolled {
		// MFA records every attempt itself.
		if err := f.mfa.Verify(ctx, id, code, src); err != nil {
			f.codeRefused(w, r, PathMFA, err)
			return
		}
		f.finish(ctx, w, r, st, MethodTOTP)
		return
	}
	codes, err := f.mfa.ConfirmEnroll(ctx, id, code, src)
	switch {
	case errors.Is(err, ErrNotEnrolled), errors.Is(err, ErrAlreadyEnrolled):
		// Nothing pending, or enrolled meanwhile: show the right page.
		f.redirectRefused(w, r, PathMFA, refusedRetry)
		return
	case err != nil:
		// The page keeps the pending key the person just scanned.
		f.codeRefused(w, r, PathMFA, err)
		return
	}
	sealed, err := sealCodes(st.ticket, codes)
	if err != nil {
		f.internalError(w, r, err)
		return
	}
	next := *st.rec
	next.Method = MethodTOTP
	next.Codes = sealed
	won, err := f.swapSignin(ctx, st.key, st.ver, &next, nil)
	switch {
	case err != nil:
		f.internalError(w, r, err)
		return
	case !won:
		f.refuse(ctx, w, audit.TypeMFA, ActionLoginMFA, &id, src, signinFail(frStepMissing, errors.New("step used by another request")))
		return
	}
	// The codes are shown by GET /mfa, so Back and Reload never post the
	// code again.
	http.Redirect(w, r, PathMFA, http.StatusSeeOther)
}

// Values of the refused parameter of the code pages: why the last code
// was refused. The form's POST redirects to its page with it
// (POST-redirect-GET), and the page says what to do. A made-up value
// shows at most a wrong message to the person who typed it.
const (
	paramRefused  = "refused"
	refusedCode   = "code"   // wrong or malformed
	refusedUsed   = "used"   // already used (replay guard)
	refusedLocked = "locked" // this refusal started or met the lock
	refusedRetry  = "retry"  // enrollment changed meanwhile
)

// redirectRefused sends the browser from a refused code form to its page.
func (f *Flow) redirectRefused(w http.ResponseWriter, r *http.Request, path, kind string) {
	http.Redirect(w, r, path+"?"+paramRefused+"="+kind, http.StatusSeeOther)
}

// codeRefused answers a code form whose code MFA refused (MFA has
// recorded why): back to the page, which tells the person only that the
// code was not accepted, or that they are locked out.
func (f *Flow) codeRefused(w http.ResponseWriter, r *http.Request, path string, err error) {
	switch {
	case errors.Is(err, ErrLocked):
		f.redirectRefused(w, r, path, refusedLocked)
	case errors.Is(err, ErrReplayed):
		f.redirectRefused(w, r, path, refusedUsed)
	case errors.Is(err, ErrBadCode), errors.Is(err, ErrInvalidInput):
		f.redirectRefused(w, r, path, refusedCode)
	default:
		f.internalError(w, r, err)
	}
}

// showRefused renders a code page after a refused code, or the lock page.
func (f *Flow) showRefused(ctx context.Context, w http.ResponseWriter, r *http.Request, st *signinStep, page, kind string) {
	var why error = ErrBadCode
	if kind == refusedUsed {
		why = ErrReplayed
	}
	d, locked := f.refusedCodePage(ctx, st.rec.Identity.UserID, page, why)
	if locked {
		f.renderLocked(ctx, w, st.rec.Identity.UserID)
		return
	}
	if kind == refusedLocked {
		// The lock has ended meanwhile: ask again, without blame.
		d.Error = ""
	}
	if page == pageEnroll {
		// Keep the QR code and key the person just scanned.
		enr, err := f.mfa.PendingEnrollment(ctx, *st.rec.Identity)
		if err != nil {
			f.showFactorPage(ctx, w, r, st, http.StatusOK, "")
			return
		}
		d.QR, d.URI, d.Secret = qrDataURI(enr.QRPNG), enr.URI, otpauthSecret(enr.URI)
	}
	f.renderStep(w, http.StatusUnauthorized, page, st, d)
}

// handleRecoveryPage asks for a recovery code.
func (f *Flow) handleRecoveryPage(w http.ResponseWriter, r *http.Request) {
	ctx := r.Context()
	src := f.source(r)
	st, err := f.loadStep(ctx, r)
	if err != nil {
		f.stepFailed(ctx, w, r, src, err)
		return
	}
	switch kind := r.URL.Query().Get(paramRefused); kind {
	case refusedCode, refusedUsed, refusedLocked:
		f.showRefused(ctx, w, r, st, pageRecovery, kind)
	default:
		f.renderStep(w, http.StatusOK, pageRecovery, st, f.recoveryPage(ctx, st.rec.Identity.UserID, ""))
	}
}

// handleRecoverySubmit spends a recovery code in place of a TOTP code.
func (f *Flow) handleRecoverySubmit(w http.ResponseWriter, r *http.Request) {
	src := f.source(r)
	ctx, cancel := detach(r.Context())
	defer cancel()
	st, err := f.loadStep(ctx, r)
	if err != nil {
		f.stepFailed(ctx, w, r, src, err)
		return
	}
	if err := f.parseStepForm(w, r, st); err != nil {
		f.refuse(ctx, w, audit.TypeMFA, ActionLoginMFA, st.rec.Identity, src, err)
		return
	}
	if err := f.mfa.VerifyRecovery(ctx, *st.rec.Identity, r.PostForm.Get("code"), src); err != nil {
		if errors.Is(err, ErrNotEnrolled) {
			err = ErrBadCode
		}
		f.codeRefused(w, r, PathMFARecovery, err)
		return
	}
	f.finish(ctx, w, r, st, MethodRecovery)
}

// handleContinue finishes a login whose second factor passed at
// enrollment, once the person has seen their recovery codes.
func (f *Flow) handleContinue(w http.ResponseWriter, r *http.Request) {
	src := f.source(r)
	ctx, cancel := detach(r.Context())
	defer cancel()
	st, err := f.loadStep(ctx, r)
	if err != nil {
		f.stepFailed(ctx, w, r, src, err)
		return
	}
	if err := f.parseStepForm(w, r, st); err != nil {
		f.refuse(ctx, w, audit.TypeMFA, ActionLoginMFA, st.rec.Identity, src, err)
		return
	}
	if st.rec.Method == "" {
		f.refuse(ctx, w, audit.TypeMFA, ActionLoginMFA, st.rec.Identity, src, signinFail(frStepMissing, errors.New("second factor not verified")))
		return
	}
	f.finish(ctx, w, r, st, st.rec.Method)
}

// displayName names a person on the pages: email or name, never the
// opaque subject.
func displayName(id *Identity) string {
	switch {
	case id.Email != "":
		return id.Email
	case id.Name != "":
		return id.Name
	}
	return "your account"
}
