package audit

import (
	"encoding/base64"
	"encoding/json"
	"net/netip"
	"strconv"
	"strings"
	"unicode/utf8"
)

// CEF formats entries as ArcSight Common Event Format (CEF:0) lines:
//
//	CEF:0|Ferry|ferry|<version>|<type>|<name>|<severity>|<extension>
//
// Header fields escape backslash and pipe; extension values escape
// backslash and equals sign and write line breaks as \n and \r, as the CEF
// specification requires. Other control characters become spaces and
// invalid UTF-8 becomes U+FFFD, so no field can break the line or forge
// another field. Chain fields travel in cn1 (seq), cs5 (hash) and cs6
// (prev hash); checkpoints are events of type audit.checkpoint whose msg
// holds the signed checkpoint.
type CEF struct {
	// ProductVersion fills the Device Version header field; default "1".
	ProductVersion string
}

// Name returns "cef".
func (CEF) Name() string { return "cef" }

// Append appends e as one CEF line.
func (c CEF) Append(dst []byte, e *Entry) ([]byte, error) {
	version := c.ProductVersion
	if version == "" {
		version = "1"
	}
	sig, name, sev := "audit.record", "audit record", 1
	if ev := e.Event; ev != nil {
		sig = ev.FullType()
		name = sig + " " + string(ev.Outcome)
		sev = cefSeverity(ev)
	} else if e.Checkpoint != nil {
		sig, name = "audit.checkpoint", "audit checkpoint"
	}
	dst = append(dst, "CEF:0|Ferry|ferry|"...)
	for _, h := range []string{version, sig, name} {
		dst = appendCEFHeader(dst, h)
		dst = append(dst, '|')
	}
	dst = strconv.AppendInt(dst, int64(sev), 10)
	dst = append(dst, '|')
	x := cefExt{b: dst}
	x.num("cn1", e.Seq)
	x.str("cn1Label", "seq")
	x.str("cs5", e.Hash.String())
	x.str("cs5Label", "hash")
	x.str("cs6", e.PrevHash.String())
	x.str("cs6Label", "prevHash")
	switch {
	case e.Event != nil:
		x.event(e.Event)
	case e.Checkpoint != nil:
		x.num("rt", uint64(e.Checkpoint.Time.UnixMilli()))
		x.str("dvchost", e.Checkpoint.Node)
		x.str("msg", string(e.Data))
	default:
		x.str("msg", base64.StdEncoding.EncodeToString(e.Data))
	}
	return x.b, nil
}

// cefSeverity maps an event to CEF's 0-10 scale.
func cefSeverity(ev *Event) int {
	switch {
	case ev.Type == TypeLockout:
		return 8
	case ev.Outcome == Failure && ev.Type == TypeFlowDeny:
		return 5
	case ev.Outcome == Failure:
		return 6
	case ev.Type == TypeFlowDeny, ev.privileged():
		return 5
	}
	return 3
}

type cefExt struct {
	b     []byte
	first bool
}

func (x *cefExt) sep(key string) {
	if x.first {
		x.b = append(x.b, ' ')
	}
	x.first = true
	x.b = append(x.b, key...)
	x.b = append(x.b, '=')
}

func (x *cefExt) str(key, v string) {
	if v == "" {
		return
	}
	x.sep(key)
	x.b = appendCEFValue(x.b, v)
}

func (x *cefExt) num(key string, v uint64) {
	if v == 0 {
		return
	}
	x.sep(key)
	x.b = strconv.AppendUint(x.b, v, 10)
}

func (x *cefExt) event(ev *Event) {
	x.num("rt", uint64(ev.Time.UnixMilli()))
	x.str("dvchost", ev.Node)
	x.str("externalId", ev.ID)
	x.str("act", ev.Action)
	x.str("outcome", string(ev.Outcome))
	x.str("reason", ev.Reason)
	x.str("suid", ev.Actor.UserID)
	x.str("suser", ev.Actor.Email)
	x.str("spriv", ev.Actor.Role)
	x.str("cs3", ev.Actor.Session)
	x.str("cs3Label", label(ev.Actor.Session, "session"))
	x.str("cs4", strings.Join(ev.Actor.Groups, ","))
	x.str("cs4Label", label(strings.Join(ev.Actor.Groups, ","), "groups"))
	x.endpoint("src", "shost", ev.Source.Addr)
	x.num("spt", uint64(max(ev.Source.Port, 0)))
	x.str("requestClientApplication", ev.Source.UserAgent)
	x.endpoint("dst", "dhost", ev.Target.DstAddr)
	x.num("dpt", uint64(max(ev.Target.DstPort, 0)))
	x.str("proto", ev.Target.Protocol)
	x.str("duser", ev.Target.User)
	x.str("cs1", ev.Target.Profile)
	x.str("cs1Label", label(ev.Target.Profile, "profile"))
	x.str("cs2", ev.Target.Peer)
	x.str("cs2Label", label(ev.Target.Peer, "peer"))
	x.str("flexString1", ev.Target.Device)
	x.str("flexString1Label", label(ev.Target.Device, "device"))
	x.str("destinationServiceName", ev.Target.Node)
	x.num("cn2", ev.PolicyVersion)
	x.str("cn2Label", label(strconv.FormatUint(ev.PolicyVersion, 10), "policyVersion"))
	x.num("in", ev.BytesIn)
	x.num("out", ev.BytesOut)
	if ev.Duration > 0 {
		x.num("cn3", uint64(ev.Duration.Milliseconds()))
		x.str("cn3Label", "durationMs")
	}
	if len(ev.Flows) > 0 {
		x.flows(ev)
		return
	}
	if len(ev.Details) > 0 {
		if b, err := json.Marshal(ev.Details); err == nil {
			x.str("msg", string(b))
		}
	}
}

// flows writes a batched flow event's totals (cnt: flows or attempts, in,
// out), its destination when it has a single tuple, and in msg its details
// and tuples as JSON: one CEF line per journal record, like every record.
func (x *cefExt) flows(ev *Event) {
	n, in, out := ev.flowTotals()
	x.num("cnt", n)
	x.num("in", in)
	x.num("out", out)
	if len(ev.Flows) == 1 {
		f := &ev.Flows[0]
		x.endpoint("dst", "dhost", f.Dst)
		x.num("dpt", uint64(max(f.Port, 0)))
		x.str("proto", f.Proto)
	}
	b, err := json.Marshal(struct {
		Details map[string]string `json:"details,omitempty"`
		Flows   []Flow            `json:"flows"`
	}{ev.Details, ev.Flows})
	if err == nil {
		x.str("msg", string(b))
	}
}

// endpoint writes an address as ipKey when it is an IP address, else as
// hostKey.
func (x *cefExt) endpoint(ipKey, hostKey, addr string) {
	if addr == "" {
		return
	}
	if ip, err := netip.ParseAddr(addr); err == nil {
		x.str(ipKey, ip.String())
		return
	}
	x.str(hostKey, addr)
}

func label(v, l string) string {
	if v == "" || v == "0" {
		return ""
	}
	return l
}

// appendCEFHeader escapes a header field: backslash and pipe get a
// backslash; line breaks and other control characters become spaces.
func appendCEFHeader(dst []byte, s string) []byte {
	return appendClean(dst, s, func(dst []byte, r rune) []byte {
		switch r {
		case '\\', '|':
			return append(dst, '\\', byte(r))
		case '\n', '\r':
			return append(dst, ' ')
		}
		return utf8.AppendRune(dst, r)
	})
}

// appendCEFValue escapes an extension value: backslash and equals sign get
// a backslash, line breaks are written as \n and \r.
func appendCEFValue(dst []byte, s string) []byte {
	return appendClean(dst, s, func(dst []byte, r rune) []byte {
		switch r {
		case '\\', '=':
			return append(dst, '\\', byte(r))
		case '\n':
			return append(dst, '\\', 'n')
		case '\r':
			return append(dst, '\\', 'r')
		}
		return utf8.AppendRune(dst, r)
	})
}

// appendClean walks s rune by rune, replacing invalid UTF-8 with U+FFFD and
// control characters other than \n and \r with spaces, and lets esc write
// each remaining rune.
func appendClean(dst []byte, s string, esc func([]byte, rune) []byte) []byte {
	for i := 0; i < len(s); {
		r, n := utf8.DecodeRuneInString(s[i:])
		i += n
		switch {
		case r == utf8.RuneError && n <= 1:
			r = utf8.RuneError
		case r == '\n' || r == '\r':
		case r < 0x20 || r == 0x7f || (r >= 0x80 && r < 0xa0) || r == 0x2028 || r == 0x2029:
			r = ' '
		}
		dst = esc(dst, r)
	}
	return dst
}
