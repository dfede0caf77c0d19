package api

import (
	"encoding/json"
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"
	"time"

	"github.com/ferryvpn/ferry/cmd/internal/wire"
)

// FuzzJoinBodies sends arbitrary bodies to the join endpoints: every answer
// is a success or a JSON error, never a server error or a panic.
func FuzzJoinBodies(f *testing.F) {
	tc := newTestCluster(f)
	h, err := New(Config{Node: tc.node, MasterKey: tc.master, Logger: discardLogger()})
	if err != nil {
		f.Fatal(err)
	}
	_, good := joinBody(f, tc.token(f, time.Now().Add(time.Hour), ""))
	f.Add(false, good)
	f.Add(true, `{"token":"x","node_id":"n2","addr":"127.0.0.1:1"}`)
	f.Add(false, `{"token": 5}`)
	f.Add(false, `{"csr": "AAAA", "api_csr": "////"} []`)
	f.Fuzz(func(t *testing.T, members bool, body string) {
		path := wire.PathJoin
		if members {
			path = wire.PathMembers
		}
		req := httptest.NewRequest(http.MethodPost, path, strings.NewReader(body))
		req.Header.Set("Content-Type", "application/json")
		rec := httptest.NewRecorder()
		h.ServeHTTP(rec, req)
		if rec.Code >= 500 {
			t.Fatalf("status %d for %q: %s", rec.Code, body, rec.Body)
		}
		if rec.Code != http.StatusOK {
			var e wire.Error
			if err := json.Unmarshal(rec.Body.Bytes(), &e); err != nil || e.Error == "" {
				t.Fatalf("status %d without a JSON error: %q", rec.Code, rec.Body)
			}
		}
	})
}
