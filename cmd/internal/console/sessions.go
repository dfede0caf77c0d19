package console

import (
	"context"
	"net/http"
	"strings"

	"github.com/ferryvpn/ferry/authn"
	"github.com/ferryvpn/ferry/profiles"
)

// listLimit is how many sessions or peers a page lists; filters narrow
// further.
const listLimit = 200

type sessionsData struct {
	User, Profile, Node   string
	Sessions              []sessionRow
	SessionsTotal         int
	Peers                 []deviceRow
	PeersTotal            int
	SessionsCut, PeersCut bool
	// Counters reports whether the peers carry live counters.
	Counters bool
}

// sessions lists live sessions and active peers, filtered by user (ID or
// email), profile and node.
func (c *Console) sessions(w http.ResponseWriter, r *http.Request, k call) {
	ctx := r.Context()
	q := r.URL.Query()
	d := sessionsData{User: strings.TrimSpace(q.Get("user")), Profile: strings.TrimSpace(q.Get("profile")), Node: strings.TrimSpace(q.Get("node"))}
	userID := ""
	if d.User != "" {
		u, err := c.cfg.Users.Resolve(ctx, d.User)
		if err != nil {
			c.fail(w, "user", err)
			return
		}
		userID = u.ID
	}
	ss, err := c.cfg.Sessions.List(ctx, userID)
	if err != nil {
		c.fail(w, "session list", err)
		return
	}
	d.SessionsTotal = len(ss)
	for i := len(ss) - 1; i >= 0 && len(d.Sessions) < listLimit; i-- { // newest first
		d.Sessions = append(d.Sessions, c.sessionRow(ss[i]))
	}
	d.SessionsCut = len(ss) > len(d.Sessions)
	peers, err := c.cfg.Profiles.Peers(ctx, profiles.PeerFilter{UserID: userID, Profile: d.Profile, Node: d.Node})
	if err != nil {
		c.fail(w, "peer list", err)
		return
	}
	now := c.cfg.Now()
	for _, p := range peers {
		if !p.Valid(now) {
			continue
		}
		d.PeersTotal++
		if len(d.Peers) < listLimit {
			d.Peers = append(d.Peers, c.deviceRow(p))
		}
	}
	d.PeersCut = d.PeersTotal > len(d.Peers)
	d.Counters = c.withCounters(ctx, k, d.Peers)
	c.render(w, http.StatusOK, "sessions", k, page{Title: "Sessions and peers", Nav: "sessions", D: d})
}

// killAction ends one session, as ferryctl session kill does.
func (c *Console) killAction(w http.ResponseWriter, r *http.Request, k call) (action, bool) {
	id := r.PathValue("id")
	var found *authn.Session
	ss, err := c.cfg.Sessions.List(r.Context(), "")
	if err != nil {
		c.fail(w, "session list", err)
		return action{}, false
	}
	for i := range ss {
		if ss[i].ID == id {
			found = &ss[i]
		}
	}
	if found == nil {
		c.fail(w, "session", authn.ErrUnknownSession)
		return action{}, false
	}
	who := found.Identity.Display()
	return action{Title: "End a session of " + who, Button: "End session", Back: pathSessions, Done: "The session of " + who + " is ended.",
		Warning: "The session of " + who + " that signed in " + found.AuthTime.UTC().Format("2 Jan 15:04 UTC") + " from " + found.SourceIP +
			" ends at once: its browser and desktop client must sign in again.",
		run: func(ctx context.Context) error { return c.cfg.Sessions.Revoke(ctx, id, k.actor()) }}, true
}
