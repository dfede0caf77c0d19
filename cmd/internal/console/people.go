package console

import (
	"context"
	"net/http"
	"net/url"
	"slices"
	"strconv"
	"strings"

	"github.com/ferryvpn/ferry/authn"
	"github.com/ferryvpn/ferry/profiles"
)

// peoplePerPage is how many people the list shows at once.
const peoplePerPage = 50

type peopleData struct {
	Query      string
	Rows       []personRow
	Total      int
	Page, Last int
	Prev, Next string
}

type personRow struct {
	ID, Link, Name, Email, Groups, Role, MFA, Lockout, LastLogin, State string
	Devices                                                             int
	// Locked reports whether failed codes are counted or the lock holds.
	Locked bool
}

// timeText shows a time to a person, or "never".
func timeText(t interface{ IsZero() bool }, s string) string {
	if t.IsZero() {
		return "never"
	}
	return s
}

// people lists users with their groups, role, second factor, lockout,
// devices and last sign-in; q filters by name, email, ID or group.
func (c *Console) people(w http.ResponseWriter, r *http.Request, k call) {
	ctx := r.Context()
	q := strings.TrimSpace(r.URL.Query().Get("q"))
	us, err := c.cfg.Users.List(ctx)
	if err != nil {
		c.fail(w, "user list", err)
		return
	}
	if q != "" {
		lq := strings.ToLower(q)
		us = slices.DeleteFunc(us, func(u authn.User) bool {
			hay := strings.ToLower(u.ID + " " + u.Email + " " + u.Name + " " + strings.Join(u.Groups, " "))
			return !strings.Contains(hay, lq)
		})
	}
	d := peopleData{Query: q, Total: len(us), Page: 1}
	d.Last = max(1, (len(us)+peoplePerPage-1)/peoplePerPage)
	if n, err := strconv.Atoi(r.URL.Query().Get("page")); err == nil && n > 1 {
		d.Page = min(n, d.Last)
	}
	link := func(p int) string {
		v := url.Values{"page": {strconv.Itoa(p)}}
		if q != "" {
			v.Set("q", q)
		}
		return pathPeople + "?" + v.Encode()
	}
	if d.Page > 1 {
		d.Prev = link(d.Page - 1)
	}
	if d.Page < d.Last {
		d.Next = link(d.Page + 1)
	}
	lo := (d.Page - 1) * peoplePerPage
	us = us[lo:min(len(us), lo+peoplePerPage)]
	peers, err := c.cfg.Profiles.Peers(ctx, profiles.PeerFilter{})
	if err != nil {
		c.fail(w, "peer list", err)
		return
	}
	now := c.cfg.Now()
	devices := map[string]int{}
	for i := range peers {
		if peers[i].Valid(now) {
			devices[peers[i].UserID]++
		}
	}
	policy := c.cfg.Sessions.Policy()
	for _, u := range us {
		row, err := c.personRow(ctx, u, policy)
		if err != nil {
			c.fail(w, "user", err)
			return
		}
		row.Devices = devices[u.ID]
		d.Rows = append(d.Rows, row)
	}
	c.render(w, http.StatusOK, "people", k, page{Title: "People", Nav: "people", D: d})
}

func (c *Console) personRow(ctx context.Context, u authn.User, policy authn.Policy) (personRow, error) {
	row := personRow{ID: u.ID, Link: pathPeople + "/" + url.PathEscape(u.ID), Name: u.Name, Email: u.Email,
		Groups: strings.Join(u.Groups, ", "), Role: policy.Role(u.Groups), MFA: "not enrolled", Lockout: "—",
		LastLogin: timeText(u.LastLogin, u.LastLogin.UTC().Format("2 Jan 2006 15:04 UTC")), State: "active"}
	if row.Name == "" {
		row.Name = u.Display()
	}
	switch {
	case u.Disabled:
		row.State = "disabled"
	case u.Suspended != "":
		row.State = "suspended: " + u.Suspended
	}
	enrolled, err := c.cfg.MFA.Enrolled(ctx, u.ID)
	if err != nil {
		return row, err
	}
	if enrolled {
		row.MFA = "TOTP"
	}
	lk, err := c.cfg.MFA.Lockout(ctx, u.ID)
	if err != nil {
		return row, err
	}
	switch {
	case !lk.LockedUntil.IsZero():
		row.Locked = true
		row.Lockout = "locked until " + lk.LockedUntil.UTC().Format("15:04 UTC")
	case lk.Failures > 0:
		row.Locked = true
		row.Lockout = strconv.Itoa(lk.Failures) + " failed codes"
	}
	return row, nil
}

type personData struct {
	Row                        personRow
	Disabled, Locked, Enrolled bool
	Grants                     []grantRow
	Devices                    []deviceRow
	Sessions                   []sessionRow
	Change                     string
	DisableURL, EnableURL      string
	UnlockURL, ResetURL        string
}

type grantRow struct {
	What, Held, How string
}

type deviceRow struct {
	ID, Device, User, UserLink, Profile, Address, State, Issued, Expires, Node, RevokeURL string
	// Live counters (Config.PeerCounters): the node of the latest
	// handshake, its age, the endpoint, and bytes summed over the nodes.
	Handshake, Endpoint, Rx, Tx, Seen string
	publicKey                         string
}

type sessionRow struct {
	ID, User, UserLink, Role, Started, LastSeen, Expires, From, Agent, KillURL string
}

// person shows one user: the record, why each profile and the admin role
// is or is not held (profiles.Store.Explain, as ferryctl user show), the
// devices and sessions, and the actions.
func (c *Console) person(w http.ResponseWriter, r *http.Request, k call) {
	ctx := r.Context()
	u, ok, err := c.cfg.Users.Get(ctx, r.PathValue("id"))
	if err == nil && !ok {
		err = authn.ErrUnknownUser
	}
	if err != nil {
		c.fail(w, "user", err)
		return
	}
	row, err := c.personRow(ctx, u, c.cfg.Sessions.Policy())
	if err != nil {
		c.fail(w, "user", err)
		return
	}
	all, err := c.cfg.Profiles.List(ctx)
	if err != nil {
		c.fail(w, "profile list", err)
		return
	}
	d := personData{Row: row, Disabled: u.Disabled, Locked: row.Locked,
		Enrolled: row.MFA != "not enrolled"}
	for _, g := range c.cfg.Profiles.Explain(u, all) {
		gr := grantRow{What: "profile " + g.Profile, Held: "no", How: g.Why}
		if g.Profile == "" {
			gr.What = "role " + g.Role
		}
		if g.Held {
			gr.Held, gr.How = "yes", g.Via
		}
		d.Grants = append(d.Grants, gr)
	}
	peers, err := c.cfg.Profiles.Peers(ctx, profiles.PeerFilter{UserID: u.ID})
	if err != nil {
		c.fail(w, "device list", err)
		return
	}
	for _, p := range peers {
		d.Devices = append(d.Devices, c.deviceRow(p))
	}
	ss, err := c.cfg.Sessions.List(ctx, u.ID)
	if err != nil {
		c.fail(w, "session list", err)
		return
	}
	for _, s := range ss {
		d.Sessions = append(d.Sessions, c.sessionRow(s))
	}
	if ch := u.Change; ch != nil {
		d.Change = ch.What + " — by " + ch.By + ", " + ch.At.UTC().Format("2 Jan 2006 15:04 UTC")
	}
	base := row.Link + "/"
	d.DisableURL, d.EnableURL, d.UnlockURL, d.ResetURL = base+"disable", base+"enable", base+"unlock", base+"reset-mfa"
	c.render(w, http.StatusOK, "person", k, page{Title: row.Name, Nav: "people", D: d})
}

func (c *Console) deviceRow(p profiles.Peer) deviceRow {
	now := c.cfg.Now()
	row := deviceRow{ID: p.ID, Device: p.Device, User: p.Email, UserLink: pathPeople + "/" + url.PathEscape(p.UserID), Profile: p.Profile,
		Address: p.Address.String(), State: p.State(now), Issued: p.Issued.UTC().Format("2 Jan 15:04 UTC"),
		Expires: p.Expires.UTC().Format("2 Jan 15:04 UTC"), Node: p.Node, publicKey: p.PublicKey}
	if row.User == "" {
		row.User = p.UserID
	}
	if p.Revoked != nil && p.RevokedReason != "" {
		row.State += " (" + p.RevokedReason + ")"
	}
	if p.Valid(now) {
		row.RevokeURL = "/admin/devices/" + url.PathEscape(p.ID) + "/revoke"
	}
	return row
}

func (c *Console) sessionRow(s authn.Session) sessionRow {
	return sessionRow{ID: s.ID, User: s.Identity.Display(), UserLink: pathPeople + "/" + url.PathEscape(s.Identity.UserID), Role: s.Role,
		Started: s.AuthTime.UTC().Format("2 Jan 15:04 UTC"), LastSeen: s.LastSeen.UTC().Format("2 Jan 15:04 UTC"),
		Expires: s.Expires.UTC().Format("2 Jan 15:04 UTC"), From: s.SourceIP, Agent: s.UserAgent,
		KillURL: pathSessions + "/" + url.PathEscape(s.ID) + "/kill"}
}

// userAction is one of disable, enable, unlock and reset-mfa, each the
// domain call ferryctl's twin makes.
func (c *Console) userAction(w http.ResponseWriter, r *http.Request, k call) (action, bool) {
	u, ok, err := c.cfg.Users.Get(r.Context(), r.PathValue("id"))
	if err == nil && !ok {
		err = authn.ErrUnknownUser
	}
	if err != nil {
		c.fail(w, "user", err)
		return action{}, false
	}
	who, back := u.Display(), pathPeople+"/"+url.PathEscape(u.ID)
	src := source(r)
	switch r.PathValue("action") {
	case "disable":
		return action{Title: "Disable " + who, Button: "Disable", Back: back, Done: who + " is disabled.",
			Warning: who + " will be signed out everywhere and every device revoked at once, on every node. They cannot sign in until enabled again.",
			run: func(ctx context.Context) error {
				_, err := c.cfg.Profiles.SetUserDisabled(ctx, u.ID, true, k.actor(), src)
				return err
			}}, true
	case "enable":
		return action{Title: "Enable " + who, Button: "Enable", Back: back, Done: who + " is enabled.",
			Warning: who + " will be able to sign in again and get the profiles their groups grant.",
			run: func(ctx context.Context) error {
				_, err := c.cfg.Profiles.SetUserDisabled(ctx, u.ID, false, k.actor(), src)
				return err
			}}, true
	case "unlock":
		return action{Title: "Unlock " + who, Button: "Unlock", Back: back, Done: who + "'s second factor is unlocked.",
			Warning: "The failed-code count of " + who + " is cleared, so they can try codes again.",
			run:     func(ctx context.Context) error { return c.cfg.MFA.Unlock(ctx, u.ID, k.actor(), src) }}, true
	case "reset-mfa":
		return action{Title: "Reset the second factor of " + who, Button: "Reset second factor", Back: back, Done: who + "'s second factor is reset.",
			Warning: who + "'s authenticator and recovery codes stop working; they enrol a new authenticator at their next sign-in.",
			run:     func(ctx context.Context) error { return c.cfg.MFA.Reset(ctx, u.ID, k.actor(), src) }}, true
	}
	c.notFound(w, r, k)
	return action{}, false
}

// deviceAction revokes one device.
func (c *Console) deviceAction(w http.ResponseWriter, r *http.Request, k call) (action, bool) {
	p, err := c.cfg.Profiles.Peer(r.Context(), r.PathValue("id"))
	if err != nil {
		c.fail(w, "device", err)
		return action{}, false
	}
	who := p.Email
	if who == "" {
		who = p.UserID
	}
	name := "“" + p.Device + "” of " + who
	return action{Title: "Revoke the device " + name, Button: "Revoke device", Back: pathPeople + "/" + url.PathEscape(p.UserID),
		Done: "The device " + name + " is revoked.",
		Warning: "The device " + name + " (" + p.Address.String() + ", profile " + p.Profile + ") loses its tunnel on every node at once. " +
			"Its owner cannot get a new profile under the same device name until an administrator clears the revocation.",
		run: func(ctx context.Context) error {
			return c.cfg.Profiles.RevokePeer(ctx, p.ID, "revoked by "+k.s.Identity.Display(), k.actor())
		}}, true
}
