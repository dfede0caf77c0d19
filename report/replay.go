package report

import (
	"cmp"
	"context"
	"errors"
	"net/netip"
	"slices"
	"strconv"
	"time"

	bolt "go.etcd.io/bbolt"
	berrors "go.etcd.io/bbolt/errors"

	"github.com/ferryvpn/ferry/profiles"
)

// ReplayRow is one (user, destination service) whose verdict a proposed
// profile changes, with what was recorded.
type ReplayRow struct {
	User     string    `json:"user"`
	Email    string    `json:"email,omitempty"`
	Dst      string    `json:"dst"`
	Protocol string    `json:"protocol"`
	Port     uint16    `json:"port,omitempty"`
	Flows    uint64    `json:"flows"`  // recorded accepted flows (would be denied)
	Denied   uint64    `json:"denied"` // recorded denied attempts (would be allowed)
	Last     time.Time `json:"last"`
}

// ReplayReport is what a proposed profile would have decided differently
// over recorded traffic.
type ReplayReport struct {
	Profile string    `json:"profile"`
	Since   time.Time `json:"since"`
	Until   time.Time `json:"until"`
	// WouldDeny are recorded accepted flows the proposed rules do not
	// admit; WouldAllow are recorded denied attempts they admit.
	WouldDeny  []ReplayRow `json:"would_deny"`
	WouldAllow []ReplayRow `json:"would_allow"`
	// Folded counts recorded flows folded under load (no port or
	// destination kept) that could not be replayed.
	Folded uint64 `json:"folded"`
	Source Source `json:"source"`
}

// ipProto maps a record's protocol name to its IP protocol number.
func ipProto(s string) (uint8, bool) {
	switch s {
	case profiles.ProtoTCP:
		return 6, true
	case profiles.ProtoUDP:
		return 17, true
	case profiles.ProtoICMP:
		return 1, true
	}
	n, err := strconv.ParseUint(s, 10, 8)
	return uint8(n), err == nil
}

// Replay replays the traffic recorded through the profile named
// proposed.Name between since and until (whole hours) against the proposed
// rules: accepted flows they would deny and denied attempts they would
// allow, grouped by user and destination service with counts. It changes
// nothing.
func (r *Rollup) Replay(ctx context.Context, proposed profiles.Profile, since, until time.Time) (ReplayReport, error) {
	rep := ReplayReport{Profile: proposed.Name, Since: since, Until: until, WouldDeny: []ReplayRow{}, WouldAllow: []ReplayRow{}}
	type rowKey struct {
		user, dst, proto string
		port             uint16
		deny             bool
	}
	rows := map[rowKey]*ReplayRow{}
	var cur cursor
	err := r.db.View(func(tx *bolt.Tx) error {
		var err error
		if cur, err = readCursorTx(tx); err != nil {
			return err
		}
		return scanPeriods(ctx, tx, since, until, func(k key, c counts) {
			if k.Profile != proposed.Name {
				return
			}
			dst, err := netip.ParseAddr(k.Dst)
			proto, ok := ipProto(k.Proto)
			if err != nil || !ok {
				rep.Folded += c.Flows + c.Denied
				return
			}
			_, admits := proposed.RuleFor(dst, proto, k.Port)
			if admits == k.Deny {
				rk := rowKey{k.User, k.Dst, k.Proto, k.Port, k.Deny}
				row := rows[rk]
				if row == nil {
					row = &ReplayRow{User: k.User, Email: k.Email, Dst: k.Dst, Protocol: k.Proto, Port: k.Port}
					rows[rk] = row
				}
				row.Flows += c.Flows
				row.Denied += c.Denied
				if l := time.Unix(0, c.Last).UTC(); l.After(row.Last) {
					row.Last = l
				}
			}
		})
	})
	if errors.Is(err, berrors.ErrDatabaseNotOpen) {
		return ReplayReport{}, ErrClosed
	}
	if err != nil {
		return ReplayReport{}, err
	}
	rep.Source = sourceOf(cur)
	for k, row := range rows {
		if k.deny {
			rep.WouldAllow = append(rep.WouldAllow, *row)
		} else {
			rep.WouldDeny = append(rep.WouldDeny, *row)
		}
	}
	order := func(a, b ReplayRow) int {
		return cmp.Or(cmp.Compare(a.User, b.User), cmp.Compare(a.Dst, b.Dst), cmp.Compare(a.Protocol, b.Protocol), cmp.Compare(a.Port, b.Port))
	}
	slices.SortFunc(rep.WouldDeny, order)
	slices.SortFunc(rep.WouldAllow, order)
	return rep, nil
}

// ReplayPlan replays a proposed profile set: the profiles of want named in
// updated (Replay with their proposed rules) and the profiles deleted
// (replayed with no rules: all their recorded traffic would be denied).
// New profiles have no recorded traffic; unchanged ones change nothing.
func (r *Rollup) ReplayPlan(ctx context.Context, want []profiles.Profile, updated, deleted []string, since, until time.Time) ([]ReplayReport, error) {
	var proposed []profiles.Profile
	for _, p := range want {
		if slices.Contains(updated, p.Name) {
			proposed = append(proposed, p)
		}
	}
	for _, name := range deleted {
		proposed = append(proposed, profiles.Profile{Name: name})
	}
	out := make([]ReplayReport, 0, len(proposed))
	for _, p := range proposed {
		rep, err := r.Replay(ctx, p, since, until)
		if err != nil {
			return nil, err
		}
		out = append(out, rep)
	}
	return out, nil
}
