package audit

import (
	"strconv"
	"time"
)

// Flow records are the journal's bulk: at 1,000 users with five active
// destinations a minute they outnumber every other event by orders of
// magnitude. So one flow event (flow.accept or flow.deny) carries the
// tuples of one client, verdict and interval in Flows (the tunnel splits
// them over several events past a few kilobytes), with short keys and
// integer times, and its shared fields (who, device, profile and version,
// node, time, interval) once. The event stays one journal record, chained
// and exported like any other; FlowRecords expands it into one event per
// tuple, in the shape flow events had before batching, for readers that
// want a destination per event (reports, CEF and OCSF text).

// Flow is one flow tuple of a flow event: (destination, protocol, port)
// with its counts for the interval. Keys are short because there are
// millions a day; docs/reports.md lists them. Fields are declared in
// canonical (sorted) key order, as the journal stores them.
type Flow struct {
	// BytesIn and BytesOut are bytes each way, from the client's side
	// (out is what it sent).
	BytesIn  uint64 `json:"bi,omitempty"`
	BytesOut uint64 `json:"bo,omitempty"`
	// Coarse marks a tuple folded under load: Proto and Port are not
	// kept (and Dst neither past the second level).
	Coarse bool `json:"coarse,omitempty"`
	// Dst is the destination address.
	Dst string `json:"dst,omitempty"`
	// Folded counts the contributions folded into a coarse tuple.
	Folded uint64 `json:"fold,omitempty"`
	// Host is, for a tuple admitted by a host rule, the name whose DNS
	// answer granted the address.
	Host string `json:"host,omitempty"`
	// Interim counts the interim reports of open connections included.
	Interim uint64 `json:"int,omitempty"`
	// Flows counts connections (each once) or, for a deny, attempts.
	Flows uint64 `json:"n,omitempty"`
	// PktsIn and PktsOut are packets each way, from the client's side.
	PktsIn  uint64 `json:"pi,omitempty"`
	PktsOut uint64 `json:"po,omitempty"`
	// Port is the destination port (0 for ICMP or coarse tuples).
	Port int `json:"port,omitempty"`
	// Proto is "tcp", "udp", "icmp" or the IP protocol number.
	Proto string `json:"proto,omitempty"`
	// Rule is the index, in the event's profile at its policy version, of
	// the rule that admitted the tuple's connections, in decimal; empty
	// for denials and coarse tuples. The rule's text is in the event's
	// Details under FlowDetailRule + "." + Rule.
	Rule string `json:"rule,omitempty"`
	// First and Last are when the first and the last packet were seen,
	// in Unix milliseconds.
	First int64 `json:"t0"`
	Last  int64 `json:"t1"`
}

// Details keys of flow events. They are stable: reports and SIEM rules
// read them. On a batched flow event only FlowDetailInterval and
// FlowDetailRule+".N" are stored; FlowRecords fills the others.
const (
	FlowDetailFlows      = "flows"       // connections (accept) or attempts (deny)
	FlowDetailPacketsOut = "packets_out" // packets the client sent
	FlowDetailPacketsIn  = "packets_in"  // packets the client got
	FlowDetailFirst      = "first"       // RFC 3339, first packet seen
	FlowDetailLast       = "last"        // RFC 3339, last packet seen
	FlowDetailInterval   = "interval"    // the aggregation interval
	FlowDetailRule       = "rule"        // "N: tcp 10.0.0.0/24 443", the profile rule that admitted it
	FlowDetailHost       = "host"        // the name whose DNS answer granted it, for host rules
	FlowDetailInterim    = "interim"     // interim reports of open connections included
	FlowDetailFolded     = "folded"      // contributions folded into this coarse record
	FlowDetailKey        = "key"         // "coarse" when folded under load
	FlowDetailAttempts   = "attempts"    // deny: attempts (same as flows)
)

// IsFlow reports whether e is a flow event (flow.accept or flow.deny).
func (e *Event) IsFlow() bool { return e.Type == TypeFlowAccept || e.Type == TypeFlowDeny }

// FlowRecords returns e's flow tuples as one event each, in the shape of a
// single-tuple flow event: Target.DstAddr, DstPort and Protocol, BytesIn
// and BytesOut, Duration and the Details keys above. Each gets the ID
// e.ID + "." + its index. A flow event without Flows (as written before
// batching) is returned as it is; any other event yields nothing.
func (e *Event) FlowRecords() []Event {
	if !e.IsFlow() {
		return nil
	}
	if len(e.Flows) == 0 {
		return []Event{*e}
	}
	out := make([]Event, len(e.Flows))
	for i := range e.Flows {
		out[i] = e.flowRecord(i)
	}
	return out
}

// flowRecord expands tuple i.
func (e *Event) flowRecord(i int) Event {
	f := &e.Flows[i]
	r := *e
	r.Flows = nil
	r.ID = e.ID + "." + strconv.Itoa(i)
	r.Target.DstAddr, r.Target.DstPort, r.Target.Protocol = f.Dst, f.Port, f.Proto
	if r.Target.User == "" {
		r.Target.User = e.Actor.UserID
	}
	r.BytesIn, r.BytesOut = f.BytesIn, f.BytesOut
	first, last := time.UnixMilli(f.First).UTC(), time.UnixMilli(f.Last).UTC()
	r.Duration = max(last.Sub(first), 0)
	d := map[string]string{
		FlowDetailFlows:      strconv.FormatUint(f.Flows, 10),
		FlowDetailPacketsOut: strconv.FormatUint(f.PktsOut, 10),
		FlowDetailPacketsIn:  strconv.FormatUint(f.PktsIn, 10),
		FlowDetailFirst:      first.Format(time.RFC3339Nano),
		FlowDetailLast:       last.Format(time.RFC3339Nano),
	}
	if v := e.Details[FlowDetailInterval]; v != "" {
		d[FlowDetailInterval] = v
	}
	if e.Type == TypeFlowDeny {
		d[FlowDetailAttempts] = d[FlowDetailFlows]
	}
	if f.Rule != "" {
		d[FlowDetailRule] = f.Rule
		if text := e.Details[FlowDetailRule+"."+f.Rule]; text != "" {
			d[FlowDetailRule] = f.Rule + ": " + text
		}
	}
	if f.Host != "" {
		d[FlowDetailHost] = f.Host
	}
	if f.Coarse {
		d[FlowDetailKey] = "coarse"
	}
	if f.Interim > 0 {
		d[FlowDetailInterim] = strconv.FormatUint(f.Interim, 10)
	}
	if f.Folded > 0 {
		d[FlowDetailFolded] = strconv.FormatUint(f.Folded, 10)
	}
	r.Details = d
	return r
}

// flowTotals sums a batched flow event's tuples.
func (e *Event) flowTotals() (flows, bytesIn, bytesOut uint64) {
	for i := range e.Flows {
		flows += e.Flows[i].Flows
		bytesIn += e.Flows[i].BytesIn
		bytesOut += e.Flows[i].BytesOut
	}
	return flows, bytesIn, bytesOut
}
