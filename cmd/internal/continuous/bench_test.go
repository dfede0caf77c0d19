package continuous_test

import (
	"encoding/json"
	"fmt"
	"slices"
	"testing"
	"time"

	"github.com/ferryvpn/ferry/authn"
	"github.com/ferryvpn/ferry/authn/devop"
	"github.com/ferryvpn/ferry/tunnel/tunneltest"
)

// benchUsers is how many users the removal benchmark takes access from.
const benchUsers = 100

// BenchmarkIdPGroupRemoval times what the issue's benchmark names: a
// user's group removed at the identity provider to that user's client map
// entry gone on all three nodes, for 100 users, one at a time, through the
// user record (what a revalidation, a sign-in or a SCIM push writes); and
// one revalidation round that finds all 100 removed at the OP. It reports
// p50 and p99 per user, and the round's time to the last entry gone.
//
// Another deprovisioning path (SCIM active=false, a Shared Signals event)
// is added as one more measureRemoval call with its own take function.
func BenchmarkIdPGroupRemoval(b *testing.B) {
	var users []devop.User
	for i := range benchUsers {
		name := fmt.Sprintf("u%03d", i)
		users = append(users, devop.User{Username: name, Password: name, Groups: []string{"eng"}})
	}
	e := startEnv(b, users)
	for b.Loop() {
		ids, addrs := e.benchPeers(users)
		lat := e.measureRemoval(b, addrs, func(i int) {
			id := ids[i]
			id.Groups = []string{"staff"}
			v, _ := json.Marshal(id)
			e.nodes[i%3].Must(b, tunneltest.Request{Op: "access.provision", Key: "revalidation", Value: v})
		})
		report(b, "group-removal", lat)

		// One revalidation round that finds every user removed at the OP.
		ids, addrs = e.benchPeers(users)
		for _, u := range users {
			if err := e.op.SetGroups(u.Username, []string{"staff"}); err != nil {
				b.Fatal(err)
			}
		}
		e.nodes[0].Must(b, tunneltest.Request{Op: "access.advance", Timeout: authn.DefaultRevalidateInterval + time.Second})
		round := e.measureAll(b, addrs, func() { e.nodes[0].Must(b, tunneltest.Request{Op: "access.revalidate"}) })
		b.ReportMetric(float64(round.Milliseconds()), "revalidation-round-100-ms")
		for _, u := range users {
			e.op.SetGroups(u.Username, []string{"eng"})
		}
		_ = ids
	}
}

// benchPeers signs every user in again (groups from the OP, refresh
// token kept) and gives each a fresh peer, present on every node.
func (e *env) benchPeers(users []devop.User) ([]authn.Identity, []string) {
	var ids []authn.Identity
	var addrs []string
	for i, u := range users {
		id := e.signIn(u.Username, i%3)
		p, _ := e.issue(id, (i+1)%3, fmt.Sprintf("dev-%d", time.Now().UnixNano()))
		ids, addrs = append(ids, id), append(addrs, p.Address.String())
	}
	for _, a := range addrs {
		for _, n := range e.nodes {
			n.Must(e.t, tunneltest.Request{Op: "access.waitpresent", Addr: a, Timeout: 10 * time.Second})
		}
	}
	return ids, addrs
}

// measureRemoval calls take(i) for each user in turn and times it to the
// user's client map entry (addrs[i]) gone on all three nodes.
func (e *env) measureRemoval(b *testing.B, addrs []string, take func(i int)) []time.Duration {
	b.Helper()
	var out []time.Duration
	for i, a := range addrs {
		start := time.Now()
		take(i)
		worst, err := e.goneEverywhere(a, start)
		if err != nil {
			b.Fatal(err)
		}
		out = append(out, worst)
	}
	return out
}

// measureAll runs act once and times it to every addr gone on all nodes.
func (e *env) measureAll(b *testing.B, addrs []string, act func()) time.Duration {
	b.Helper()
	start := time.Now()
	act()
	var worst time.Duration
	for _, a := range addrs {
		w, err := e.goneEverywhere(a, start)
		if err != nil {
			b.Fatal(err)
		}
		worst = max(worst, w)
	}
	return worst
}

func report(b *testing.B, name string, lat []time.Duration) {
	slices.Sort(lat)
	pct := func(q float64) float64 {
		return float64(lat[min(len(lat)-1, int(q*float64(len(lat))))].Microseconds()) / 1000
	}
	b.ReportMetric(pct(0.5), name+"-p50-ms")
	b.ReportMetric(pct(0.99), name+"-p99-ms")
	b.ReportMetric(float64(lat[len(lat)-1].Microseconds())/1000, name+"-max-ms")
}
