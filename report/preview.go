package report

import (
	"context"
	"slices"
	"time"

	"github.com/ferryvpn/ferry/audit"
	"github.com/ferryvpn/ferry/authn"
	"github.com/ferryvpn/ferry/profiles"
)

// Preview is what applying a profile file would do, before it is
// applied: the plan of profiles.Store.Apply's dry run, the people who
// would no longer be assigned a profile it changes or deletes, and the
// replay of the recorded traffic through those profiles against the
// proposed rules.
type Preview struct {
	Plan profiles.Plan
	// Losing are the people who hold a changed or deleted profile now
	// and would not under the file (groups or users changed, profile
	// deleted, people not admitted at all).
	Losing []Loss
	// Replays are the changed and deleted profiles' recorded traffic
	// over [since, until) that the file's rules would decide differently
	// (ReplayPlan).
	Replays []ReplayReport
	Source  Source
}

// Loss is one person who would lose a profile.
type Loss struct {
	User, Email, Profile string
	// Via is how the profile is held now ("group eng").
	Via string
	// Why is why it would not be held under the file.
	Why string
}

// PreviewApply previews applying want (a parsed profile file) to store
// as actor would, over the traffic recorded between since and until,
// with the rollup brought up to the journal's head first. It changes
// nothing; ferryctl profile apply --dry-run --replay and the admin
// console's preview both show it.
func (r *Rollup) PreviewApply(ctx context.Context, store *profiles.Store, users []authn.User, want []profiles.Profile, since, until time.Time, actor audit.Actor) (Preview, error) {
	plan, err := store.Apply(ctx, want, true, actor)
	if err != nil {
		return Preview{}, err
	}
	out := Preview{Plan: plan}
	names := func(cs []profiles.Change) []string {
		n := make([]string, 0, len(cs))
		for _, c := range cs {
			n = append(n, c.Name)
		}
		return n
	}
	updated, deleted := names(plan.Update), names(plan.Delete)
	if len(updated)+len(deleted) > 0 {
		have, err := store.List(ctx)
		if err != nil {
			return Preview{}, err
		}
		proposed := map[string]*profiles.Profile{}
		for i := range want {
			proposed[want[i].Name] = &want[i]
		}
		for i := range have {
			old := &have[i]
			if !slices.Contains(updated, old.Name) && !slices.Contains(deleted, old.Name) {
				continue
			}
			for _, u := range users {
				held, via, _ := store.Entitle(u, old)
				if !held {
					continue
				}
				why := "profile " + old.Name + " deleted"
				if p := proposed[old.Name]; p != nil {
					var still bool
					if still, _, why = store.Entitle(u, p); still {
						continue
					}
				}
				out.Losing = append(out.Losing, Loss{User: u.ID, Email: u.Email, Profile: old.Name, Via: via, Why: why})
			}
		}
	}
	if _, err := r.Sync(ctx); err != nil {
		return Preview{}, err
	}
	if out.Replays, err = r.ReplayPlan(ctx, want, updated, deleted, since, until); err != nil {
		return Preview{}, err
	}
	if out.Source, err = r.Source(); err != nil {
		return Preview{}, err
	}
	return out, nil
}
