package api

import (
	"net/http"

	"github.com/ferryvpn/ferry/cluster"
	"github.com/ferryvpn/ferry/cmd/internal/wire"
)

// Starting returns the handler a node serves while it starts: it is alive
// (/healthz 200) but not ready (/readyz 503 with what it waits for, such
// as catching up with the leader), and every other request is answered 503
// with Retry-After, so a load balancer or a client goes to another node.
// ferryd swaps in the full handler (New) once its services run.
func Starting(node *cluster.Node) http.Handler {
	mux := http.NewServeMux()
	mux.HandleFunc("GET "+wire.PathHealthz, func(w http.ResponseWriter, r *http.Request) {
		writeText(w, http.StatusOK, "ok")
	})
	mux.HandleFunc("GET "+wire.PathReadyz, func(w http.ResponseWriter, r *http.Request) {
		reason := "starting"
		if err := node.Ready(); err != nil {
			reason += ": " + err.Error()
		} else {
			reason += ": starting services"
		}
		writeText(w, http.StatusServiceUnavailable, "not ready: "+reason)
	})
	mux.HandleFunc("/", func(w http.ResponseWriter, r *http.Request) {
		w.Header().Set("Retry-After", "5")
		writeError(w, http.StatusServiceUnavailable, "this node is starting (catching up with the cluster); try again or ask another node")
	})
	return secureHeaders(mux)
}
