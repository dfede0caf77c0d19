// Package loginflow is the client side of ferry's desktop sign-in (RFC 8252,
// OAuth for native apps): `ferry login` and `ferryctl login` listen on a
// random loopback port, send the browser to the server's /login with their
// own PKCE challenge (RFC 7636, S256) and state, receive a one-time code at
// the loopback address once the person has signed in with the company IdP
// and their TOTP, and redeem it with the PKCE verifier for a session token.
//
// It also keeps the token between runs, 0600 in the user's config
// directory: by the cluster (its CA's fingerprint) when the login trusted
// one cluster CA, so every node of the cluster finds it, else by the
// server URL.
//
// It speaks to ferryd over HTTPS only, and links neither the cluster store
// nor the data plane: only the standard library, x/oauth2's PKCE helpers
// and cmd/internal/wire.
package loginflow

import (
	"bytes"
	"context"
	"crypto/rand"
	"crypto/subtle"
	"crypto/tls"
	"encoding/base64"
	"encoding/json"
	"errors"
	"fmt"
	"html"
	"io"
	"net"
	"net/http"
	"net/url"
	"strconv"
	"strings"
	"time"

	"github.com/ferryvpn/ferry/cmd/internal/wire"
	"golang.org/x/oauth2"
)

// Errors callers compare with errors.Is.
var (
	// ErrDenied is returned when the server refused to mint a token for
	// the signed-in account: it may not use this command (ferryctl needs
	// an administrator) or it is disabled.
	ErrDenied = errors.New("loginflow: the server refused this account")
	// ErrRefused is returned when the server refused the code (expired,
	// already used, or not for this client): sign in again.
	ErrRefused = errors.New("loginflow: the server refused the sign-in")
	// ErrSignInFailed is returned when the browser came back with an
	// error instead of a code.
	ErrSignInFailed = errors.New("loginflow: sign-in failed in the browser")
)

// DefaultTimeout bounds a sign-in whose context has no deadline: the
// server forgets a pending login after 10 minutes anyway.
const DefaultTimeout = 10 * time.Minute

// Options configure one sign-in.
type Options struct {
	// Server is the ferry server's base URL, https://host[:port]. Required.
	Server string
	// TLSConfig authenticates the server when redeeming the code; nil
	// means the system roots.
	TLSConfig *tls.Config
	// Admin asks for an administrator session (ferryctl): the server
	// refuses to mint a token for anyone else.
	Admin bool
	// OpenBrowser opens a URL in the person's browser. When nil, or when
	// NoBrowser is set, the URL is printed to Out instead.
	OpenBrowser func(url string) error
	// NoBrowser prints the URL instead of opening a browser. The browser
	// must still run on this computer: the server sends it back to a
	// loopback address.
	NoBrowser bool
	// Out receives instructions for the person; default io.Discard.
	Out io.Writer
	// Finish, when set, runs once the server has answered with a token,
	// while the browser waits: its page is what the browser shows (name
	// the account, the device, the next step). An error from it ends
	// Login with that error, and the browser says so. When nil, the page
	// names the account and sends the person back to the terminal.
	Finish func(ctx context.Context, res wire.AuthTokenResponse) (EndPage, error)
}

// Run signs in and returns the session token.
func Run(ctx context.Context, o Options) (string, error) {
	res, err := Login(ctx, o)
	if err != nil {
		return "", err
	}
	return res.Token, nil
}

// Login signs in and returns the server's whole answer: the token, its
// expiry, the role and who signed in.
func Login(ctx context.Context, o Options) (wire.AuthTokenResponse, error) {
	base, err := serverURL(o.Server)
	if err != nil {
		return wire.AuthTokenResponse{}, err
	}
	out := o.Out
	if out == nil {
		out = io.Discard
	}
	if _, ok := ctx.Deadline(); !ok {
		var cancel context.CancelFunc
		ctx, cancel = context.WithTimeout(ctx, DefaultTimeout)
		defer cancel()
	}

	// RFC 8252 §7.3: a loopback IP literal, never "localhost", on a port
	// the OS picks.
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		return wire.AuthTokenResponse{}, fmt.Errorf("listening on loopback: %w", err)
	}
	port := ln.Addr().(*net.TCPAddr).Port
	redirect := "http://127.0.0.1:" + strconv.Itoa(port) + "/callback"
	verifier := oauth2.GenerateVerifier()
	state, err := randomState()
	if err != nil {
		ln.Close()
		return wire.AuthTokenResponse{}, err
	}

	cb := &callback{host: "127.0.0.1:" + strconv.Itoa(port), state: state, result: make(chan callbackResult, 1), end: make(chan EndPage, 1)}
	srv := &http.Server{Handler: cb, ReadHeaderTimeout: 10 * time.Second}
	serveDone := make(chan struct{})
	go func() {
		defer close(serveDone)
		_ = srv.Serve(ln) // returns when closed below
	}()
	defer func() {
		// Let the browser's request write its end page, then close.
		sctx, cancel := context.WithTimeout(context.WithoutCancel(ctx), 5*time.Second)
		defer cancel()
		if srv.Shutdown(sctx) != nil {
			_ = srv.Close()
		}
		<-serveDone
	}()

	loginURL := base.JoinPath(wire.PathLogin)
	q := url.Values{}
	q.Set("client", "desktop")
	q.Set("redirect_uri", redirect)
	q.Set("code_challenge", oauth2.S256ChallengeFromVerifier(verifier))
	q.Set("code_challenge_method", "S256")
	q.Set("state", state)
	if o.Admin {
		q.Set("admin", "1")
	}
	loginURL.RawQuery = q.Encode()
	link := loginURL.String()

	if o.NoBrowser || o.OpenBrowser == nil {
		fmt.Fprintf(out, "Open this address in a browser on this computer to sign in:\n\n  %s\n\n", link)
	} else {
		fmt.Fprintf(out, "Opening your browser to sign in. If it does not open, visit:\n\n  %s\n\n", link)
		if err := o.OpenBrowser(link); err != nil {
			fmt.Fprintf(out, "Could not open a browser (%v); open the address above by hand.\n", err)
		}
	}
	fmt.Fprintln(out, "Waiting for the sign-in to finish…")

	var res callbackResult
	select {
	case <-ctx.Done():
		return wire.AuthTokenResponse{}, fmt.Errorf("waiting for the browser sign-in: %w", ctx.Err())
	case res = <-cb.result:
	}
	if res.err != nil {
		return wire.AuthTokenResponse{}, res.err
	}
	// The browser waits for the end page: exactly one is sent below.
	tok, err := redeem(ctx, base, o.TLSConfig, wire.AuthTokenRequest{Code: res.code, CodeVerifier: verifier, RedirectURI: redirect})
	if err != nil {
		cb.end <- failedPage(err)
		return wire.AuthTokenResponse{}, err
	}
	end := EndPage{Title: "Signed in", Lines: []string{"Signed in to " + base.Host + " as " + who(tok) + ". Return to the terminal."}}
	if o.Finish != nil {
		if end, err = o.Finish(ctx, tok); err != nil {
			cb.end <- failedPage(err)
			return tok, err
		}
	}
	cb.end <- end
	return tok, nil
}

// who names the account a token response is for.
func who(res wire.AuthTokenResponse) string {
	switch {
	case res.Email != "":
		return res.Email
	case res.Name != "":
		return res.Name
	}
	return res.UserID
}

// serverURL checks and normalises the server's base URL.
func serverURL(s string) (*url.URL, error) {
	u, err := url.Parse(strings.TrimSuffix(s, "/"))
	switch {
	case s == "":
		return nil, errors.New("loginflow: server URL is required")
	case err != nil:
		return nil, fmt.Errorf("loginflow: server URL %q: %w", s, err)
	case u.Scheme != "https" || u.Host == "":
		return nil, fmt.Errorf("loginflow: server URL %q: want https://host[:port]", s)
	case u.Path != "" || u.RawQuery != "" || u.Fragment != "" || u.User != nil:
		return nil, fmt.Errorf("loginflow: server URL %q: want no path, query, fragment or user info", s)
	}
	return u, nil
}

func randomState() (string, error) {
	b := make([]byte, 32)
	if _, err := rand.Read(b); err != nil {
		return "", fmt.Errorf("reading random bytes: %w", err)
	}
	return base64.RawURLEncoding.EncodeToString(b), nil
}

type callbackResult struct {
	code string
	err  error
}

// callback serves the loopback redirect. Requests that are not this
// sign-in's answer (wrong host, path or state) are refused and ignored,
// so another local process cannot end the wait.
type callback struct {
	host   string
	state  string
	result chan callbackResult // buffered 1: the first valid answer wins
	end    chan EndPage        // buffered 1: the page for the browser once Login is done with a code
}

func (c *callback) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	w.Header().Set("Cache-Control", "no-store")
	w.Header().Set("Referrer-Policy", "no-referrer")
	w.Header().Set("Content-Security-Policy", "default-src 'none'")
	// A Host check answers DNS rebinding from web pages.
	if r.Method != http.MethodGet || r.URL.Path != "/callback" || r.Host != c.host {
		http.NotFound(w, r)
		return
	}
	q := r.URL.Query()
	if subtle.ConstantTimeCompare([]byte(q.Get("state")), []byte(c.state)) != 1 {
		page(w, http.StatusBadRequest, "This answer is not for the sign-in ferry is waiting for.")
		return
	}
	var res callbackResult
	switch code, e := q.Get("code"), q.Get("error"); {
	case e != "":
		res.err = fmt.Errorf("%w: %s", ErrSignInFailed, failureReason(e, q.Get("error_description")))
	case code == "":
		res.err = fmt.Errorf("%w: no code in the answer", ErrSignInFailed)
	default:
		res.code = code
	}
	select {
	case c.result <- res:
	default:
		page(w, http.StatusConflict, "This sign-in has already been answered.")
		return
	}
	if res.err != nil {
		writeEnd(w, http.StatusOK, EndPage{Title: "Sign-in failed", Failed: true,
			Lines: []string{sentence(failureReason(q.Get("error"), q.Get("error_description"))), "The terminal says the same."}})
		return
	}
	// Hold the browser until Login has redeemed the code (and finished),
	// so the page can say who is signed in and what comes next.
	t := time.NewTimer(endWait)
	defer t.Stop()
	select {
	case p := <-c.end:
		writeEnd(w, http.StatusOK, p)
	case <-t.C:
		writeEnd(w, http.StatusOK, EndPage{Title: "Signed in", Lines: []string{"Return to the terminal: it says how the sign-in ended."}})
	case <-r.Context().Done():
	}
}

// maxReason bounds the reason shown from a failed sign-in's answer.
const maxReason = 300

// failureReason is what a failed sign-in's answer says: the server's
// description for the person when there is one, else the error code, cut
// to maxReason printable characters (it comes from the network).
func failureReason(code, desc string) string {
	s := desc
	if s == "" {
		s = code
	}
	s = strings.Map(func(r rune) rune {
		if r < 0x20 || r == 0x7f {
			return -1
		}
		return r
	}, s)
	if len(s) > maxReason {
		s = s[:maxReason]
	}
	if s == "" {
		s = "no reason given"
	}
	return s
}

func page(w http.ResponseWriter, status int, msg string) {
	w.Header().Set("Content-Type", "text/html; charset=utf-8")
	w.WriteHeader(status)
	fmt.Fprintf(w, "<!doctype html>\n<html lang=\"en\"><head><meta charset=\"utf-8\"><meta name=\"viewport\" content=\"width=device-width, initial-scale=1\"><title>ferry</title></head>"+
		"<body><main><h1>ferry</h1><p id=\"message\">%s</p></main></body></html>\n", html.EscapeString(msg))
}

// maxResponseBytes bounds the token response read.
const maxResponseBytes = 64 << 10

// redeem trades the code and verifier for a session token.
func redeem(ctx context.Context, base *url.URL, tlsConf *tls.Config, req wire.AuthTokenRequest) (wire.AuthTokenResponse, error) {
	body, err := json.Marshal(req)
	if err != nil {
		return wire.AuthTokenResponse{}, err
	}
	hr, err := http.NewRequestWithContext(ctx, http.MethodPost, base.JoinPath(wire.PathAuthToken).String(), bytes.NewReader(body))
	if err != nil {
		return wire.AuthTokenResponse{}, err
	}
	hr.Header.Set("Content-Type", "application/json")
	hr.Header.Set("Accept", "application/json")
	client := &http.Client{
		Timeout:   30 * time.Second,
		Transport: &http.Transport{TLSClientConfig: tlsConf, Proxy: http.ProxyFromEnvironment, ForceAttemptHTTP2: true},
		// The token endpoint never redirects; following one could send
		// the code elsewhere.
		CheckRedirect: func(*http.Request, []*http.Request) error { return http.ErrUseLastResponse },
	}
	defer client.CloseIdleConnections()
	resp, err := client.Do(hr)
	if err != nil {
		return wire.AuthTokenResponse{}, fmt.Errorf("redeeming the sign-in code: %w", err)
	}
	defer resp.Body.Close()
	raw, err := io.ReadAll(io.LimitReader(resp.Body, maxResponseBytes))
	if err != nil {
		return wire.AuthTokenResponse{}, fmt.Errorf("reading the token response: %w", err)
	}
	if resp.StatusCode != http.StatusOK {
		var e wire.Error
		_ = json.Unmarshal(raw, &e)
		if resp.StatusCode == http.StatusForbidden {
			return wire.AuthTokenResponse{}, fmt.Errorf("%w (%s)", ErrDenied, e.Error)
		}
		return wire.AuthTokenResponse{}, fmt.Errorf("%w: %s (%s)", ErrRefused, resp.Status, e.Error)
	}
	var out wire.AuthTokenResponse
	if err := json.Unmarshal(raw, &out); err != nil {
		return wire.AuthTokenResponse{}, fmt.Errorf("decoding the token response: %w", err)
	}
	if out.Token == "" {
		return wire.AuthTokenResponse{}, errors.New("loginflow: the token response holds no token")
	}
	return out, nil
}
