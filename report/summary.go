package report

import (
	"bytes"
	"cmp"
	"context"
	"encoding/binary"
	"errors"
	"fmt"
	"slices"
	"strconv"
	"time"

	bolt "go.etcd.io/bbolt"

	"github.com/ferryvpn/ferry/audit"
)

// Rollups across a prune.
//
// Past the flow window the leader prunes raw flow records from the journal
// (audit.Trimmer.Prune), leaving stubs. Before it does, it records
// flow.summary events (Summarize): the pruned records' daily totals by the
// rollup's key. A rollup that folded the raw records skips the summaries;
// one that meets the stubs instead (a rebuild after the prune) folds them,
// so both hold the same daily figures. Whichever it did, folding a summary
// drops the hourly buckets of its day on every node, so that a rollup
// always equals a rebuild from its journal. Which case holds is decided
// per prune: the summaries name the prune's range and how many records it
// removes, and the rollup counts the records it met as stubs in that
// range (bucketPruned). A rollup that met part of a range raw and part as
// stubs (it was folding the range when the prune committed) rebuilds.

// bucketPruned holds the stubs the rollup met, first seq → last seq (8
// bytes each), until the last summary of their prune is folded.
var bucketPruned = []byte("pruned")

// summaryTuples bounds the tuples of one summary event.
const summaryTuples = 256

// errRebuild is returned by foldPage when the rollup met part of a
// pruned range raw and part as stubs: only a rebuild gets it right.
var errRebuild = errors.New("report: rollup met a prune in progress; rebuilding")

// Summarize returns the flow.summary events that keep the daily figures of
// the flow records plan prunes, read from j: per day, client (user, email,
// device), profile and version and verdict, one event (or several, of at
// most 256 tuples each) whose Flows hold the totals per destination tuple.
// Every event names the prune's range and record count; the last one is
// marked (audit.FlowSummaryLast). It is audit.TrimmerConfig.Summarize.
func Summarize(ctx context.Context, j audit.Journal, plan audit.PrunePlan) ([]audit.Event, error) {
	if len(plan.Runs) == 0 {
		return nil, nil
	}
	type group struct {
		day time.Time
		k   key // Dst, Proto, Port, Host empty
	}
	type tuple struct {
		Dst, Proto, Host string
		Port             uint16
	}
	groups := map[group]map[tuple]*counts{}
	for _, run := range plan.Runs {
		err := audit.Scan(ctx, j, audit.Filter{FromSeq: run.First, ToSeq: run.Last}, func(e *audit.Entry) error {
			if e.Event == nil || !e.Event.IsFlow() || e.Seq < run.First {
				return nil
			}
			t := e.Event.Time.UTC()
			day := time.Date(t.Year(), t.Month(), t.Day(), 0, 0, 0, 0, time.UTC)
			for _, rec := range e.Event.FlowRecords() {
				k, v, ok := flowOf(&rec)
				if !ok {
					continue
				}
				g := group{day: day, k: key{User: k.User, Email: k.Email, Device: k.Device, Profile: k.Profile, Version: k.Version, Deny: k.Deny}}
				tu := tuple{Dst: k.Dst, Proto: k.Proto, Host: k.Host, Port: k.Port}
				m := groups[g]
				if m == nil {
					m = map[tuple]*counts{}
					groups[g] = m
				}
				if c := m[tu]; c != nil {
					c.add(v)
				} else {
					m[tu] = &v
				}
			}
			return nil
		})
		if err != nil {
			return nil, fmt.Errorf("reading flow records %d to %d: %w", run.First, run.Last, err)
		}
	}
	base := plan.SummaryDetails()
	gs := make([]group, 0, len(groups))
	for g := range groups {
		gs = append(gs, g)
	}
	slices.SortFunc(gs, func(a, b group) int {
		return cmp.Or(a.day.Compare(b.day), bytes.Compare(a.k.encode(a.day), b.k.encode(b.day)))
	})
	var out []audit.Event
	for _, g := range gs {
		ts := make([]tuple, 0, len(groups[g]))
		for tu := range groups[g] {
			ts = append(ts, tu)
		}
		slices.SortFunc(ts, func(a, b tuple) int {
			return cmp.Or(cmp.Compare(a.Dst, b.Dst), cmp.Compare(a.Proto, b.Proto), cmp.Compare(a.Port, b.Port), cmp.Compare(a.Host, b.Host))
		})
		for len(ts) > 0 {
			chunk := ts[:min(len(ts), summaryTuples)]
			ts = ts[len(chunk):]
			ev := audit.Event{
				Type: audit.TypeFlowSummary, Time: g.day, Outcome: audit.Success,
				Actor:  audit.Actor{UserID: g.k.User, Email: g.k.Email},
				Target: audit.Target{Device: g.k.Device, Profile: g.k.Profile}, PolicyVersion: g.k.Version,
				Details: map[string]string{audit.FlowSummaryDay: g.day.Format(time.DateOnly), audit.FlowSummaryVerdict: "accept"},
			}
			if g.k.Deny {
				ev.Details[audit.FlowSummaryVerdict] = "deny"
			}
			for k, v := range base {
				ev.Details[k] = v
			}
			for _, tu := range chunk {
				c := groups[g][tu]
				ev.Flows = append(ev.Flows, audit.Flow{Dst: tu.Dst, Proto: tu.Proto, Port: int(tu.Port), Host: tu.Host,
					Flows: c.Flows + c.Denied, PktsIn: c.PktsIn, PktsOut: c.PktsOut, BytesIn: c.BytesIn, BytesOut: c.BytesOut,
					First: c.First / int64(time.Millisecond), Last: c.Last / int64(time.Millisecond)})
			}
			out = append(out, ev)
		}
	}
	if len(out) == 0 {
		// Nothing to total, but the rollups still learn the prune's range.
		out = append(out, audit.Event{Type: audit.TypeFlowSummary, Outcome: audit.Success, Details: map[string]string{}})
		for k, v := range base {
			out[0].Details[k] = v
		}
	}
	out[len(out)-1].Details[audit.FlowSummaryLast] = "true"
	return out, nil
}

// foldStub notes a stub the rollup met after cursor (the last record it
// folded before): its records are gone, their figures come with the
// prune's summaries. A stub that starts at or before the cursor covers
// records folded raw: errRebuild.
func foldStub(tx *bolt.Tx, e *audit.Entry, cursor uint64) error {
	if cursor != 0 && e.Seq <= cursor {
		return errRebuild
	}
	return tx.Bucket(bucketPruned).Put(binary.BigEndian.AppendUint64(nil, e.Seq), binary.BigEndian.AppendUint64(nil, e.LastSeq()))
}

// foldSummary folds a flow.summary event into days when the rollup met its
// prune's records as stubs, skips it when it folded them raw, and drops
// the hourly buckets of its day either way (from the bucket and from the
// page's hours not yet written).
func foldSummary(tx *bolt.Tx, ev *audit.Event, days, hours map[string]*counts) error {
	pu := func(name string) uint64 {
		v, _ := strconv.ParseUint(ev.Details[name], 10, 64)
		return v
	}
	from, to, records := pu(audit.FlowSummaryFrom), pu(audit.FlowSummaryTo), pu(audit.FlowSummaryRecords)
	if from == 0 || to < from {
		return nil // not a summary this version wrote
	}
	pruned := tx.Bucket(bucketPruned)
	var met uint64
	var inRange [][2]uint64
	c := pruned.Cursor()
	for k, v := c.First(); k != nil; k, v = c.Next() {
		first, last := binary.BigEndian.Uint64(k), binary.BigEndian.Uint64(v)
		if first > to {
			break
		}
		if last < from {
			continue
		}
		met += min(last, to) - max(first, from) + 1
		inRange = append(inRange, [2]uint64{first, last})
	}
	switch {
	case met == records:
		if err := foldSummaryDays(ev, days); err != nil {
			return err
		}
	case met != 0:
		return errRebuild
	}
	if d, err := time.Parse(time.DateOnly, ev.Details[audit.FlowSummaryDay]); err == nil {
		if err := dropHours(tx, hours, d); err != nil {
			return err
		}
	}
	if ev.Details[audit.FlowSummaryLast] == "true" {
		// Forget the range; a stub that a later prune extended past it
		// keeps its later part, which that prune's summaries count.
		for _, s := range inRange {
			if err := pruned.Delete(binary.BigEndian.AppendUint64(nil, s[0])); err != nil {
				return err
			}
			if s[1] > to {
				if err := pruned.Put(binary.BigEndian.AppendUint64(nil, to+1), binary.BigEndian.AppendUint64(nil, s[1])); err != nil {
					return err
				}
			}
		}
	}
	return nil
}

// foldSummaryDays adds a summary's tuples to the page's day totals.
func foldSummaryDays(ev *audit.Event, days map[string]*counts) error {
	d, err := time.Parse(time.DateOnly, ev.Details[audit.FlowSummaryDay])
	if err != nil {
		return nil // nothing totalled
	}
	deny := ev.Details[audit.FlowSummaryVerdict] == "deny"
	for _, f := range ev.Flows {
		k := key{User: ev.Actor.UserID, Email: ev.Actor.Email, Device: ev.Target.Device, Profile: ev.Target.Profile,
			Version: ev.PolicyVersion, Dst: f.Dst, Proto: f.Proto, Port: uint16(f.Port), Host: f.Host, Deny: deny}
		v := counts{PktsOut: f.PktsOut, PktsIn: f.PktsIn, BytesOut: f.BytesOut, BytesIn: f.BytesIn,
			First: f.First * int64(time.Millisecond), Last: f.Last * int64(time.Millisecond)}
		if deny {
			v.Denied = f.Flows
		} else {
			v.Flows = f.Flows
		}
		bk := string(k.encode(d))
		if cur := days[bk]; cur != nil {
			cur.add(v)
		} else {
			days[bk] = &v
		}
	}
	return nil
}

// dropHours deletes the hourly buckets of day d, stored and pending.
func dropHours(tx *bolt.Tx, hours map[string]*counts, d time.Time) error {
	lo, hi := uint64(d.Unix()), uint64(d.Add(24*time.Hour).Unix())
	for k := range hours {
		if p := binary.BigEndian.Uint64([]byte(k)[:8]); p >= lo && p < hi {
			delete(hours, k)
		}
	}
	c := tx.Bucket(bucketHour).Cursor()
	for k, _ := c.Seek(binary.BigEndian.AppendUint64(nil, lo)); k != nil && binary.BigEndian.Uint64(k) < hi; k, _ = c.Seek(binary.BigEndian.AppendUint64(nil, lo)) {
		if err := c.Delete(); err != nil {
			return err
		}
	}
	return nil
}
