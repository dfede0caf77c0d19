package console

import (
	"context"
	"strconv"

	"github.com/ferryvpn/ferry/authn/webpage"
)

// withCounters fills in the live counters of rows from every node
// (Config.PeerCounters), asked for the administrator of k: the node of
// the latest handshake and its age, the endpoint it came from, and the
// bytes each node's device received and sent, summed. Without counters,
// or for a peer no node knows, the cells say so.
func (c *Console) withCounters(ctx context.Context, k call, rows []deviceRow) bool {
	if c.cfg.PeerCounters == nil || len(rows) == 0 {
		return false
	}
	byKey := c.cfg.PeerCounters(ctx, k.tok)
	now := c.cfg.Now()
	for i := range rows {
		r := &rows[i]
		r.Handshake, r.Endpoint, r.Rx, r.Tx, r.Seen = "never", "—", "0 B", "0 B", "—"
		var rx, tx int64
		var latest *PeerCounter
		cs := byKey[r.publicKey]
		for j := range cs {
			rx += cs[j].RxBytes
			tx += cs[j].TxBytes
			if !cs[j].LastHandshake.IsZero() && (latest == nil || cs[j].LastHandshake.After(latest.LastHandshake)) {
				latest = &cs[j]
			}
		}
		if len(cs) > 0 {
			r.Rx, r.Tx = humanBytes(uint64(max(rx, 0))), humanBytes(uint64(max(tx, 0)))
			r.Seen = strconv.Itoa(len(cs)) + " node"
			if len(cs) > 1 {
				r.Seen += "s"
			}
		}
		if latest != nil {
			r.Handshake = webpage.Relative(now, latest.LastHandshake) + " on " + latest.Node
			if latest.Endpoint != "" {
				r.Endpoint = latest.Endpoint
			}
		}
	}
	return true
}
