package client

import (
	"context"
	"net/http"
	"net/url"
	"strconv"
	"time"

	"github.com/ferryvpn/ferry/cmd/internal/wire"
)

// AccessFilter filters the access report; zero fields select everything.
type AccessFilter struct {
	User, Profile, Dst, Protocol string
	// By splits rows per "hour" or "day".
	By           string
	Port         int
	Since, Until time.Time
}

// ReportAccess fetches the access report: who accessed what.
func (c *Client) ReportAccess(ctx context.Context, f AccessFilter) (wire.AccessReport, error) {
	q := url.Values{}
	for k, v := range map[string]string{"user": f.User, "profile": f.Profile, "dst": f.Dst, "protocol": f.Protocol, "by": f.By} {
		if v != "" {
			q.Set(k, v)
		}
	}
	if f.Port != 0 {
		q.Set("port", strconv.Itoa(f.Port))
	}
	if !f.Since.IsZero() {
		q.Set("since", f.Since.UTC().Format(time.RFC3339))
	}
	if !f.Until.IsZero() {
		q.Set("until", f.Until.UTC().Format(time.RFC3339))
	}
	var out wire.AccessReport
	return out, c.doQuery(ctx, http.MethodGet, wire.PathReportAccess, q, nil, &out, nil)
}

// ReplayProfiles replays a proposed profile file against the traffic
// recorded since (until: zero for now); nothing changes.
func (c *Client) ReplayProfiles(ctx context.Context, file string, since, until time.Time) (wire.ReplayResponse, error) {
	var out wire.ReplayResponse
	return out, c.do(ctx, http.MethodPost, wire.PathReportReplay, wire.ReplayRequest{File: file, Since: since, Until: until}, &out)
}

// ReportEntitlements fetches who can reach what now, with each rule's use
// between since and until; unused keeps only what went unused.
func (c *Client) ReportEntitlements(ctx context.Context, since, until time.Time, unused bool) (wire.EntitlementsReport, error) {
	return c.ReportEntitlementsAt(ctx, time.Time{}, since, until, unused)
}

// ReportEntitlementsAt is ReportEntitlements as of a past time at (zero:
// now), from the journal's history of users and profiles.
func (c *Client) ReportEntitlementsAt(ctx context.Context, at, since, until time.Time, unused bool) (wire.EntitlementsReport, error) {
	q := url.Values{}
	if !at.IsZero() {
		q.Set("at", at.UTC().Format(time.RFC3339Nano))
	}
	if !since.IsZero() {
		q.Set("since", since.UTC().Format(time.RFC3339))
	}
	if !until.IsZero() {
		q.Set("until", until.UTC().Format(time.RFC3339))
	}
	if unused {
		q.Set("unused", "1")
	}
	var out wire.EntitlementsReport
	return out, c.doQuery(ctx, http.MethodGet, wire.PathReportEntitlements, q, nil, &out, nil)
}
