package signals_test

import (
	"io"
	"net/http"
	"net/url"
	"strings"
	"testing"

	"github.com/ferryvpn/ferry/authn/signals"
)

// FuzzTokens posts arbitrary logout tokens and SETs: never a server error,
// never an action.
func FuzzTokens(f *testing.F) {
	e := newEnv(f)
	f.Add(false, "eyJhbGciOiJSUzI1NiJ9.e30.AAAA")
	f.Add(true, "eyJhbGciOiJub25lIn0.eyJldmVudHMiOnt9fQ.")
	f.Add(true, "a.b.c.d.e")
	f.Fuzz(func(t *testing.T, set bool, token string) {
		var resp *http.Response
		var err error
		if set {
			resp, err = e.client.Post(e.srv.URL+signals.PathSSFEvents, "application/secevent+jwt", strings.NewReader(token))
		} else {
			resp, err = e.client.PostForm(e.srv.URL+signals.PathBackChannelLogout, url.Values{"logout_token": {token}})
		}
		if err != nil {
			t.Fatal(err)
		}
		io.Copy(io.Discard, resp.Body)
		resp.Body.Close()
		if resp.StatusCode != http.StatusBadRequest {
			t.Fatalf("%q: status %d, want 400", token, resp.StatusCode)
		}
		if calls := e.rev.take(); len(calls) != 0 {
			t.Fatalf("%q: acted: %q", token, calls)
		}
	})
}
