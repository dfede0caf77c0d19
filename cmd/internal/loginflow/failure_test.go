package loginflow

import (
	"errors"
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"
)

// TestCallbackCarriesTheReason: a refused sign-in's loopback answer ends
// the wait with the server's reason, which the client prints and the page
// shows (issue: the clients waited out 10 minutes with no reason).
func TestCallbackCarriesTheReason(t *testing.T) {
	c := &callback{host: "127.0.0.1:49152", state: "s1", result: make(chan callbackResult, 1)}
	req := httptest.NewRequest(http.MethodGet, "http://127.0.0.1:49152/callback?error=access_denied&state=s1&error_description="+
		"your+account+is+not+in+a+group+allowed+to+use+this+service%3B+ask+your+administrator+for+access%0A%1B[31m", nil)
	w := httptest.NewRecorder()
	c.ServeHTTP(w, req)
	res := <-c.result
	if !errors.Is(res.err, ErrSignInFailed) || !strings.Contains(res.err.Error(), "not in a group allowed") {
		t.Errorf("client error: %v", res.err)
	}
	if strings.ContainsAny(res.err.Error(), "\n\x1b") {
		t.Errorf("control characters from the network reach the terminal: %q", res.err)
	}
	// The page fits a phone's screen (issue: no viewport, rendered at 980 px).
	if body := w.Body.String(); !strings.Contains(body, `name="viewport"`) {
		t.Errorf("no viewport: %s", body)
	}
	if body := w.Body.String(); !strings.Contains(body, "not in a group allowed") {
		t.Errorf("page: %s", body)
	}
}
