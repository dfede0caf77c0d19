package console

import (
	"fmt"
	"net/http"
	"sort"
	"time"

	"github.com/ferryvpn/ferry/audit"
)

// sinkLagAlert is how many records a network sink may trail the journal
// before the overview raises an alert.
const sinkLagAlert = 1000

// certAlert is how close a node certificate's expiry may come before the
// overview raises an alert (members renew well before).
const certAlert = 24 * time.Hour

type overviewData struct {
	Node                          string
	State, Leader                 string
	Term, Commit, Applied, Last   uint64
	JournalSeq                    uint64
	Ready                         string
	Members                       []memberRow
	Sinks                         []sinkRow
	SinksKnown                    bool
	Users, Sessions, Peers, Nodes int
	Alerts                        []string
}

type memberRow struct {
	ID, Addr, Role, Health, CertExpiry string
}

type sinkRow struct {
	Name, Type, Format, Target string
	Cursor, Lag                uint64
	LastError                  string
}

// overview shows the cluster, its audit sinks, counts and alerts, as
// this node sees them.
func (c *Console) overview(w http.ResponseWriter, r *http.Request, k call) {
	ctx := r.Context()
	now := c.cfg.Now()
	st := c.cfg.Node.Status()
	d := overviewData{Node: st.NodeID, State: st.State, Leader: st.LeaderID, Term: st.Term, Commit: st.CommitIndex,
		Applied: st.AppliedIndex, Last: st.LastIndex, JournalSeq: st.JournalSeq, Ready: "ready"}
	if err := c.cfg.Node.Ready(); err != nil {
		d.Ready = "not ready: " + err.Error()
		d.Alerts = append(d.Alerts, "This node is not ready: "+err.Error())
	}
	if st.LeaderID == "" {
		d.Alerts = append(d.Alerts, "No leader is known: the cluster cannot accept changes.")
	}
	var expiry map[string]time.Time
	if c.cfg.Admit != nil {
		var err error
		if expiry, err = c.cfg.Admit.CertExpiry(ctx); err != nil {
			c.fail(w, "certificate list", err)
			return
		}
	}
	for _, m := range st.Members {
		row := memberRow{ID: m.ID, Addr: m.Addr, Role: "follower", Health: "unknown here (the leader knows)", CertExpiry: "—"}
		switch {
		case m.Leader:
			row.Role = "leader"
		case !m.Voter:
			row.Role = "non-voter"
		}
		if m.Healthy != nil {
			row.Health = "healthy"
			if !*m.Healthy {
				row.Health = "unhealthy"
				d.Alerts = append(d.Alerts, "Node "+m.ID+" is unhealthy: the leader has not heard from it.")
			}
		}
		if t, ok := expiry[m.ID]; ok {
			row.CertExpiry = t.UTC().Format("2 Jan 2006 15:04 UTC")
			if t.Sub(now) < certAlert {
				d.Alerts = append(d.Alerts, "The certificate of node "+m.ID+" expires "+t.UTC().Format("2 Jan 15:04 UTC")+".")
			}
		}
		d.Members = append(d.Members, row)
	}
	d.Nodes = len(st.Members)
	if c.cfg.Sinks != nil {
		d.SinksKnown = true
		specs, err := c.cfg.Sinks.List(ctx)
		if err != nil {
			c.fail(w, "audit sink list", err)
			return
		}
		states := map[string]string{}
		if c.cfg.SinkStates != nil {
			for _, s := range c.cfg.SinkStates() {
				states[s.Name] = s.ConfigError
			}
		}
		for _, s := range specs {
			p := s.Public()
			cur, _, err := audit.ReadCursor(ctx, c.cfg.Node, s.Name)
			if err != nil {
				c.fail(w, "audit sink cursor", err)
				return
			}
			row := sinkRow{Name: p.Name, Type: p.Type, Format: p.Format, Target: p.Addr + p.URL, Cursor: cur, LastError: states[s.Name]}
			if st.JournalSeq > cur {
				row.Lag = st.JournalSeq - cur
			}
			if row.Lag > sinkLagAlert {
				d.Alerts = append(d.Alerts, fmt.Sprintf("Audit sink %s is %d records behind: it may be stalled.", p.Name, row.Lag))
			}
			if row.LastError != "" {
				d.Alerts = append(d.Alerts, "Audit sink "+p.Name+" is stopped: "+row.LastError)
			}
			d.Sinks = append(d.Sinks, row)
		}
		if len(specs) == 0 {
			d.Alerts = append(d.Alerts, "No network audit sink is configured: audit records leave the cluster only by export.")
		}
	}
	var err error
	if d.Users, err = c.cfg.Users.Count(ctx); err != nil {
		c.fail(w, "user count", err)
		return
	}
	if d.Sessions, err = c.cfg.Sessions.Count(ctx); err != nil {
		c.fail(w, "session count", err)
		return
	}
	if d.Peers, err = c.cfg.Profiles.CountValid(ctx); err != nil {
		c.fail(w, "peer count", err)
		return
	}
	sort.Strings(d.Alerts)
	c.render(w, http.StatusOK, "overview", k, page{Title: "Overview", Nav: "overview", D: d})
}
