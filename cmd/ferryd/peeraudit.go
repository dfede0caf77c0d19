package main

import (
	"context"
	"log/slog"
	"net"
	"strconv"
	"sync"
	"sync/atomic"
	"time"

	"github.com/ferryvpn/ferry/audit"
	"github.com/ferryvpn/ferry/authn"
	"github.com/ferryvpn/ferry/cluster"
	"github.com/ferryvpn/ferry/cluster/admit"
)

// peerAudit turns what the cluster port reports (cluster.PeerEvent: every
// refused request, every forwarded membership change, restore, promotion
// and renewal) into audit events. The cluster layer may not import audit,
// so the node reports through Config.OnPeerEvent and this adapter records.
//
// Refusals are evidence, but a refused peer retrying must not flood the
// journal: observe never blocks (a full queue drops and counts), and the
// same peer's refusals of one kind are recorded at most once per
// refusalEvery, the suppressed ones counted on the next record.
type peerAudit struct {
	log     *slog.Logger
	ch      chan cluster.PeerEvent
	dropped atomic.Int64
	now     func() time.Time

	wg sync.WaitGroup
}

// Bounds of the peer-event queue and of repeated refusals.
const (
	peerAuditQueue = 256
	refusalEvery   = 10 * time.Second
	peerRecordWait = 10 * time.Second
)

func newPeerAudit(log *slog.Logger) *peerAudit {
	return &peerAudit{log: log, ch: make(chan cluster.PeerEvent, peerAuditQueue), now: time.Now}
}

// observe is the node's Config.OnPeerEvent.
func (p *peerAudit) observe(e cluster.PeerEvent) {
	select {
	case p.ch <- e:
	default:
		p.dropped.Add(1)
	}
}

// start records events into rec until ctx ends; stop waits for it.
func (p *peerAudit) start(ctx context.Context, rec audit.Recorder) {
	p.wg.Add(1)
	go func() {
		defer p.wg.Done()
		p.run(ctx, rec)
	}()
}

func (p *peerAudit) wait() { p.wg.Wait() }

func (p *peerAudit) run(ctx context.Context, rec audit.Recorder) {
	type key struct{ peer, op string }
	last := map[key]time.Time{}
	suppressed := map[key]int{}
	for {
		var e cluster.PeerEvent
		select {
		case <-ctx.Done():
			return
		case e = <-p.ch:
		}
		ae := peerEventToAudit(e)
		if e.Refused {
			k := key{e.Peer, e.Op}
			now := p.now()
			if t, ok := last[k]; ok && now.Sub(t) < refusalEvery {
				suppressed[k]++
				continue
			}
			last[k] = now
			if n := suppressed[k]; n > 0 {
				ae.Details["suppressed_since_last"] = strconv.Itoa(n)
				delete(suppressed, k)
			}
		}
		if n := p.dropped.Swap(0); n > 0 {
			ae.Details["dropped_before"] = strconv.FormatInt(n, 10)
		}
		rctx, cancel := context.WithTimeout(ctx, peerRecordWait)
		if err := rec.Record(rctx, ae); err != nil {
			p.log.Error("recording a cluster peer event failed", "op", e.Op, "peer", e.Peer, "err", err)
		}
		cancel()
	}
}

// peerEventToAudit maps a PeerEvent to the audit schema: cluster.peer.<op>
// for what was served, cluster.peer.refused for what was not.
func peerEventToAudit(e cluster.PeerEvent) audit.Event {
	ae := audit.Event{
		Type: audit.TypeCluster, Action: "peer." + e.Op, Outcome: audit.Success,
		Actor:   audit.Actor{UserID: e.Actor},
		Target:  audit.Target{Node: e.Target},
		Details: map[string]string{"peer": e.Peer, "op": e.Op},
	}
	if e.Serial != "" {
		ae.Details["serial"] = e.Serial
	}
	if host, port, err := net.SplitHostPort(e.Remote); err == nil {
		ae.Source.Addr = host
		ae.Source.Port, _ = strconv.Atoi(port)
	}
	if e.Refused {
		ae.Action, ae.Outcome, ae.Reason = "peer.refused", audit.Failure, e.Reason
	} else if e.Reason != "" {
		ae.Reason = e.Reason
	}
	return ae
}

// late hands the node and the session store to the cluster's authorizer,
// which the node holds before either exists.
type late struct {
	admit    atomic.Pointer[admit.Admitter]
	sessions atomic.Pointer[authn.Sessions]
	audit    atomic.Pointer[audit.Log]
}
