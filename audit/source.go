package audit

import (
	"context"
	"strconv"
	"unicode/utf8"
)

type sourceKey struct{}

// WithSource returns ctx carrying the client a request came from. A
// Recorder fills the Source of events recorded with that context that
// carry none, so every record that has a client names it (address, port,
// user agent), whichever package records it.
func WithSource(ctx context.Context, s Source) context.Context {
	return context.WithValue(ctx, sourceKey{}, s)
}

// SourceFrom returns the client WithSource put in ctx.
func SourceFrom(ctx context.Context) (Source, bool) {
	s, ok := ctx.Value(sourceKey{}).(Source)
	return s, ok
}

// Limits on what one event stores: a client controls user agents, reasons
// and names, and the journal keeps every record for the retention period on
// every node, so attacker-sized strings must not reach it.
const (
	// MaxFieldLen bounds each string field, detail key and detail value,
	// in bytes.
	MaxFieldLen = 512
	// MaxDetails bounds the details of one event.
	MaxDetails = 32
	// MaxGroups bounds the actor's groups listed.
	MaxGroups = 64
)

// capString cuts s to MaxFieldLen bytes (at a rune boundary) and marks the
// cut with the original length: "…[truncated, 7000 bytes]".
func capString(s string) string {
	if len(s) <= MaxFieldLen {
		return s
	}
	marker := "…[truncated, " + strconv.Itoa(len(s)) + " bytes]"
	cut := MaxFieldLen - len(marker)
	for cut > 0 && !utf8.RuneStart(s[cut]) {
		cut--
	}
	return s[:cut] + marker
}

// capStrings applies the limits above to every string e holds.
func (e *Event) capStrings() {
	for _, p := range []*string{&e.Action, &e.Reason,
		&e.Actor.UserID, &e.Actor.Email, &e.Actor.Session, &e.Actor.Role,
		&e.Source.Addr, &e.Source.UserAgent,
		&e.Target.Peer, &e.Target.Device, &e.Target.Profile, &e.Target.User, &e.Target.Node, &e.Target.DstAddr, &e.Target.Protocol} {
		*p = capString(*p)
	}
	long := len(e.Actor.Groups) > MaxGroups
	for _, g := range e.Actor.Groups {
		long = long || len(g) > MaxFieldLen
	}
	if long { // copy: the caller's slice stays as it was
		n := len(e.Actor.Groups)
		gs := make([]string, 0, min(n, MaxGroups)+1)
		for _, g := range e.Actor.Groups[:min(n, MaxGroups)] {
			gs = append(gs, capString(g))
		}
		if n > MaxGroups {
			gs = append(gs, "…[truncated, "+strconv.Itoa(n)+" groups]")
		}
		e.Actor.Groups = gs
	}
	if len(e.Details) == 0 {
		return
	}
	capped := make(map[string]string, min(len(e.Details), MaxDetails+1))
	n := 0
	for k, v := range e.Details {
		if n == MaxDetails {
			capped["truncated_details"] = strconv.Itoa(len(e.Details))
			break
		}
		capped[capString(k)] = capString(v)
		n++
	}
	e.Details = capped
}
