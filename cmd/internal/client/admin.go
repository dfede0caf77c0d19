package client

import (
	"context"
	"net/http"
	"net/url"
	"strconv"
	"strings"

	"github.com/ferryvpn/ferry/cmd/internal/wire"
)

func pathWith(pattern, name, value string) string {
	return strings.Replace(pattern, "{"+name+"}", url.PathEscape(value), 1)
}

// Me returns the caller's session.
func (c *Client) Me(ctx context.Context) (wire.Me, error) {
	var out wire.Me
	return out, c.do(ctx, http.MethodGet, wire.PathMe, nil, &out)
}

// Logout ends the caller's own session.
func (c *Client) Logout(ctx context.Context) error {
	var out struct{}
	return c.do(ctx, http.MethodDelete, wire.PathMe, nil, &out)
}

// Profiles lists the caller's profiles, or with all (admin) every profile.
func (c *Client) Profiles(ctx context.Context, all bool) ([]wire.Profile, error) {
	var out wire.ProfileList
	q := url.Values{}
	if all {
		q.Set("all", "1")
	}
	return out.Profiles, c.doQuery(ctx, http.MethodGet, wire.PathProfiles, q, nil, &out, nil)
}

// Profile returns one profile.
func (c *Client) Profile(ctx context.Context, name string) (wire.Profile, error) {
	var out wire.Profile
	return out, c.do(ctx, http.MethodGet, pathWith(wire.PathProfile, "name", name), nil, &out)
}

// CreateProfile creates a profile (admin).
func (c *Client) CreateProfile(ctx context.Context, p wire.Profile) (wire.Profile, error) {
	var out wire.Profile
	return out, c.do(ctx, http.MethodPost, wire.PathProfiles, p, &out)
}

// UpdateProfile replaces a profile (admin) if it is still at version.
func (c *Client) UpdateProfile(ctx context.Context, p wire.Profile, version uint64) (wire.Profile, error) {
	var out wire.Profile
	hdr := http.Header{"If-Match": {strconv.FormatUint(version, 10)}}
	return out, c.doQuery(ctx, http.MethodPut, pathWith(wire.PathProfile, "name", p.Name), nil, p, &out, hdr)
}

// DeleteProfile deletes a profile and revokes its peers (admin).
func (c *Client) DeleteProfile(ctx context.Context, name string) error {
	var out struct{}
	return c.do(ctx, http.MethodDelete, pathWith(wire.PathProfile, "name", name), nil, &out)
}

// ApplyProfiles makes the cluster's profiles match a declarative file
// (admin); with dryRun it only returns the plan.
func (c *Client) ApplyProfiles(ctx context.Context, file string, dryRun bool) (wire.ApplyResponse, error) {
	var out wire.ApplyResponse
	return out, c.do(ctx, http.MethodPost, wire.PathProfileApply, wire.ApplyRequest{File: file, DryRun: dryRun}, &out)
}

// Issue asks for a device's peer and configuration.
func (c *Client) Issue(ctx context.Context, req wire.IssueRequest) (wire.IssueResponse, error) {
	var out wire.IssueResponse
	return out, c.do(ctx, http.MethodPost, wire.PathPeers, req, &out)
}

// PeerFilter selects peers; empty fields match all.
type PeerFilter struct {
	User, Profile, Node string
	// Counters asks for every node's live WireGuard counters of each peer
	// (administrators).
	Counters bool
}

// Peers lists the caller's peers (admin: every peer, filtered).
func (c *Client) Peers(ctx context.Context, f PeerFilter) ([]wire.Peer, error) {
	l, err := c.PeerList(ctx, f)
	return l.Peers, err
}

// PeerList is Peers with the nodes that were asked for counters.
func (c *Client) PeerList(ctx context.Context, f PeerFilter) (wire.PeerList, error) {
	var out wire.PeerList
	q := url.Values{}
	for k, v := range map[string]string{"user": f.User, "profile": f.Profile, "node": f.Node} {
		if v != "" {
			q.Set(k, v)
		}
	}
	if f.Counters {
		q.Set("counters", "1")
	}
	return out, c.doQuery(ctx, http.MethodGet, wire.PathPeers, q, nil, &out, nil)
}

// Peer returns one peer.
func (c *Client) Peer(ctx context.Context, id string) (wire.Peer, error) {
	var out wire.Peer
	return out, c.do(ctx, http.MethodGet, pathWith(wire.PathPeer, "id", id), nil, &out)
}

// RevokePeer revokes a peer (the caller's own, or any as admin).
func (c *Client) RevokePeer(ctx context.Context, id, reason string) error {
	var out wire.RevokeResponse
	return c.do(ctx, http.MethodDelete, pathWith(wire.PathPeer, "id", id), wire.RevokeRequest{Reason: reason}, &out)
}

// RevokeAll revokes every device of a user, or every peer of a profile
// (admin): exactly one of user and profile.
func (c *Client) RevokeAll(ctx context.Context, user, profile, reason string) (int, error) {
	var out wire.RevokeResponse
	q := url.Values{}
	if user != "" {
		q.Set("user", user)
	}
	if profile != "" {
		q.Set("profile", profile)
	}
	err := c.doQuery(ctx, http.MethodDelete, wire.PathPeers, q, wire.RevokeRequest{Reason: reason}, &out, nil)
	return out.Revoked, err
}

// Users lists users (admin).
func (c *Client) Users(ctx context.Context) ([]wire.User, error) {
	var out wire.UserList
	return out.Users, c.do(ctx, http.MethodGet, wire.PathUsers, nil, &out)
}

// User returns one user (admin).
func (c *Client) User(ctx context.Context, id string) (wire.User, error) {
	var out wire.User
	return out, c.do(ctx, http.MethodGet, pathWith(wire.PathUser, "id", id), nil, &out)
}

// DisableUser disables a user, ending their sessions and revoking their
// peers (admin).
func (c *Client) DisableUser(ctx context.Context, id string) (wire.User, error) {
	var out wire.User
	return out, c.do(ctx, http.MethodPost, pathWith(wire.PathUserDisable, "id", id), struct{}{}, &out)
}

// EnableUser enables a user again (admin).
func (c *Client) EnableUser(ctx context.Context, id string) (wire.User, error) {
	var out wire.User
	return out, c.do(ctx, http.MethodPost, pathWith(wire.PathUserEnable, "id", id), struct{}{}, &out)
}

// ResetMFA removes a user's TOTP enrollment (admin): they enroll again at
// their next sign-in.
func (c *Client) ResetMFA(ctx context.Context, id string) (wire.User, error) {
	var out wire.User
	return out, c.do(ctx, http.MethodPost, pathWith(wire.PathUserResetMFA, "id", id), struct{}{}, &out)
}

// UnlockUser ends a user's second-factor lockout without touching their
// enrollment (admin).
func (c *Client) UnlockUser(ctx context.Context, id string) (wire.User, error) {
	var out wire.User
	return out, c.do(ctx, http.MethodPost, pathWith(wire.PathUserUnlock, "id", id), struct{}{}, &out)
}

// ClearRevocation lets the owner of a device an administrator revoked
// reissue it under the same name (admin).
func (c *Client) ClearRevocation(ctx context.Context, peerID string) error {
	return c.do(ctx, http.MethodPost, pathWith(wire.PathPeerClear, "id", peerID), struct{}{}, nil)
}

// Sessions lists sessions (admin), optionally of one user.
func (c *Client) Sessions(ctx context.Context, user string) ([]wire.Session, error) {
	var out wire.SessionList
	q := url.Values{}
	if user != "" {
		q.Set("user", user)
	}
	return out.Sessions, c.doQuery(ctx, http.MethodGet, wire.PathSessions, q, nil, &out, nil)
}

// KillSession revokes a session (admin).
func (c *Client) KillSession(ctx context.Context, id string) error {
	var out struct{}
	return c.do(ctx, http.MethodDelete, pathWith(wire.PathSession, "id", id), nil, &out)
}
