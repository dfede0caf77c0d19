package audit

import (
	"strconv"
	"time"
	"unicode/utf8"
)

// Field limits of RFC 5424 (section 6): header fields are printable
// US-ASCII of bounded length, SD names at most 32 characters.
const (
	maxHostname = 255
	maxAppName  = 48
	maxMsgID    = 32
	maxSDName   = 32
	// maxSDValue bounds each structured-data value. The full record is in
	// the message body; structured data is for indexing, so a hostile
	// user agent or reason cannot bloat every message.
	maxSDValue = 256
)

// Syslog formats entries as RFC 5424 messages:
//
//	<PRI>1 TIMESTAMP HOSTNAME APP-NAME - MSGID [SD-ID id=.. seq=.. hash=.. ...] MSG
//
// MSGID is the event type, structured data carries the chain fields and the
// fields SIEM rules key on, and MSG is the entry in the Inner format (the
// native JSON line by default, so a syslog stream can be verified offline).
// Structured-data values escape '"', '\' and ']' with a backslash as the
// RFC requires, replace control characters with spaces and invalid UTF-8
// with U+FFFD, and are cut to 256 bytes; header fields keep to printable
// US-ASCII and their length limits. The MSG carries no BOM.
//
// Framing (octet counting for TCP and TLS, RFC 5425/6587) is the sink's
// job, not the format's.
type Syslog struct {
	// Inner formats MSG; default JSONLines.
	Inner Format
	// Hostname fills HOSTNAME; default the event's node.
	Hostname string
	// AppName fills APP-NAME; default "ferry".
	AppName string
	// Facility is the syslog facility; default 13 (log audit).
	Facility int
	// SDID names the structured-data element; default "ferry@32473"
	// (32473 is the private enterprise number reserved for examples, RFC
	// 5612: set your own).
	SDID string
}

// Name returns "syslog".
func (s *Syslog) Name() string { return "syslog" }

// Append appends e as one RFC 5424 message, without framing.
func (s *Syslog) Append(dst []byte, e *Entry) ([]byte, error) {
	facility := s.Facility
	if facility <= 0 || facility > 23 {
		facility = 13
	}
	app, sdid := s.AppName, s.SDID
	if app == "" {
		app = "ferry"
	}
	if sdid == "" {
		sdid = "ferry@32473"
	}
	sev, msgID, t, host := 6, "audit.record", time.Time{}, s.Hostname
	if ev := e.Event; ev != nil {
		sev, msgID, t = syslogSeverity(ev), ev.FullType(), ev.Time
		if host == "" {
			host = ev.Node
		}
	} else if c := e.Checkpoint; c != nil {
		msgID, t = "audit.checkpoint", c.Time
		if host == "" {
			host = c.Node
		}
	}
	dst = append(dst, '<')
	dst = strconv.AppendInt(dst, int64(facility*8+sev), 10)
	dst = append(dst, ">1 "...)
	if t.IsZero() {
		dst = append(dst, '-')
	} else {
		dst = t.UTC().AppendFormat(dst, "2006-01-02T15:04:05.000000Z07:00")
	}
	dst = append(dst, ' ')
	dst = appendHeaderField(dst, host, maxHostname)
	dst = append(dst, ' ')
	dst = appendHeaderField(dst, app, maxAppName)
	dst = append(dst, " - "...)
	dst = appendHeaderField(dst, msgID, maxMsgID)
	dst = append(dst, " ["...)
	dst = appendSDName(dst, sdid)
	sd := sdParams{b: dst}
	sd.add("seq", strconv.FormatUint(e.Seq, 10))
	sd.add("hash", e.Hash.String())
	sd.add("prev_hash", e.PrevHash.String())
	if ev := e.Event; ev != nil {
		sd.add("id", ev.ID)
		sd.add("outcome", string(ev.Outcome))
		sd.add("reason", ev.Reason)
		sd.add("user", ev.Actor.UserID)
		sd.add("email", ev.Actor.Email)
		sd.add("session", ev.Actor.Session)
		sd.add("src", ev.Source.Addr)
		sd.add("target_user", ev.Target.User)
		sd.add("profile", ev.Target.Profile)
		sd.add("peer", ev.Target.Peer)
		sd.add("dst", ev.Target.DstAddr)
		if ev.PolicyVersion != 0 {
			sd.add("policy_version", strconv.FormatUint(ev.PolicyVersion, 10))
		}
	} else if c := e.Checkpoint; c != nil {
		sd.add("covers", strconv.FormatUint(c.Seq, 10))
		sd.add("key_id", c.KeyID)
	}
	dst = append(sd.b, "] "...)
	inner := s.Inner
	if inner == nil {
		inner = JSONLines{}
	}
	return inner.Append(dst, e)
}

// privileged reports whether e records a privileged change: an
// administrator's or the cluster's action, a profile change, a user's
// disable, enable or MFA reset, or a revocation.
func (e *Event) privileged() bool {
	switch e.Type {
	case TypeAdmin, TypeCluster, TypeProfileChange, TypeUserDisable, TypeUserEnable, TypeMFAReset, TypePeerRevoke:
		return true
	}
	return false
}

// syslogSeverity maps an event to a syslog severity.
func syslogSeverity(ev *Event) int {
	switch {
	case ev.Type == TypeLockout:
		return 2 // critical
	case ev.Outcome == Failure && ev.Type != TypeFlowDeny:
		return 4 // warning: security failures, refused access
	case ev.privileged(), ev.Type == TypeFlowDeny:
		return 5 // notice: privileged changes, denied flows
	}
	return 6 // informational
}

type sdParams struct{ b []byte }

func (p *sdParams) add(name, v string) {
	if v == "" {
		return
	}
	p.b = append(p.b, ' ')
	p.b = append(p.b, name...)
	p.b = append(p.b, `="`...)
	p.b = appendSDValue(p.b, v, maxSDValue)
	p.b = append(p.b, '"')
}

// appendSDValue escapes a PARAM-VALUE: '"', '\' and ']' get a backslash,
// control characters (line breaks included) become spaces, invalid UTF-8
// becomes U+FFFD, and the value is cut at a rune boundary to limit bytes.
func appendSDValue(dst []byte, s string, limit int) []byte {
	n := 0
	for i := 0; i < len(s); {
		r, size := utf8.DecodeRuneInString(s[i:])
		i += size
		switch {
		case r == utf8.RuneError && size <= 1:
		case r < 0x20 || r == 0x7f || (r >= 0x80 && r < 0xa0) || r == 0x2028 || r == 0x2029:
			r = ' '
		}
		w := utf8.RuneLen(r)
		if r == '"' || r == '\\' || r == ']' {
			w++
		}
		if n+w > limit {
			break
		}
		n += w
		if w == 2 && r < utf8.RuneSelf {
			dst = append(dst, '\\')
		}
		dst = utf8.AppendRune(dst, r)
	}
	return dst
}

// appendSDName writes an SD-ID: a header field that also excludes '=',
// ']' and '"'.
func appendSDName(dst []byte, s string) []byte {
	start := len(dst)
	dst = appendHeaderField(dst, s, maxSDName)
	for i := start; i < len(dst); i++ {
		if dst[i] == '=' || dst[i] == ']' || dst[i] == '"' {
			dst[i] = '_'
		}
	}
	return dst
}

// appendHeaderField writes a header field: printable US-ASCII (33-126)
// only, other bytes become '_', at most limit bytes; "-" when empty.
func appendHeaderField(dst []byte, s string, limit int) []byte {
	if s == "" {
		return append(dst, '-')
	}
	for i := 0; i < len(s) && i < limit; i++ {
		c := s[i]
		if c < 33 || c > 126 {
			c = '_'
		}
		dst = append(dst, c)
	}
	return dst
}
