package audit_test

import (
	"bytes"
	"encoding/json"
	"fmt"
	"os"
	"regexp"
	"strconv"
	"strings"
	"testing"
	"time"
	"unicode/utf8"

	"github.com/ferryvpn/ferry/audit"
)

// entryFor returns a chained entry holding e, as the journal would.
func entryFor(e audit.Event, seq uint64) audit.Entry {
	if e.ID == "" {
		e.ID = "0193a1b2c3d4e5f60718293a4b5c6d7e"
	}
	if e.Time.IsZero() {
		e.Time = time.Date(2026, 2, 3, 4, 5, 6, 789000000, time.UTC)
	}
	if e.Node == "" {
		e.Node = "n1"
	}
	data, _ := json.Marshal(&e)
	ent := audit.Entry{Seq: seq, Data: data, Event: &e}
	ent.PrevHash[0] = 0xab
	ent.Hash[31] = 0xcd
	return ent
}

const hostile = "a\nb\rc|d=e\\f]g\"h\x00i\xff\xfej\u2028k"

func hostileEvent() audit.Event {
	e := loginEvent(1)
	e.Outcome = audit.Failure
	e.Reason = hostile
	e.Actor.Email = hostile
	e.Actor.Groups = []string{"x|y", "z=w"}
	e.Source.UserAgent = hostile
	e.Source.Addr = "not an ip | x=y"
	e.Target.Profile = hostile
	e.Details = map[string]string{"k=1": hostile}
	e.Action = hostile
	return e
}

// cefFields splits a CEF line into its 7 header fields and extension,
// undoing the escapes: it is the receiving end of the format.
func cefFields(t testing.TB, line string) ([]string, map[string]string) {
	t.Helper()
	var hdr []string
	var cur strings.Builder
	i := 0
	for ; i < len(line) && len(hdr) < 7; i++ {
		switch c := line[i]; {
		case c == '\\' && i+1 < len(line) && (line[i+1] == '\\' || line[i+1] == '|'):
			cur.WriteByte(line[i+1])
			i++
		case c == '|':
			hdr = append(hdr, cur.String())
			cur.Reset()
		default:
			cur.WriteByte(c)
		}
	}
	if len(hdr) != 7 {
		t.Fatalf("CEF line has %d header fields: %q", len(hdr), line)
	}
	ext := map[string]string{}
	keyRE := regexp.MustCompile(`(?:^| )([A-Za-z0-9_]+)=`)
	rest := line[i:]
	locs := keyRE.FindAllStringSubmatchIndex(rest, -1)
	// A key starts only where the '=' is not escaped.
	var starts [][]int
	for _, l := range locs {
		if l[3] < len(rest) && (l[3] == 0 || rest[l[3]-1] != '\\') {
			starts = append(starts, l)
		}
	}
	for j, l := range starts {
		end := len(rest)
		if j+1 < len(starts) {
			end = starts[j+1][0]
		}
		v := rest[l[1]:end]
		v = strings.NewReplacer(`\\`, `\`, `\=`, `=`, `\n`, "\n", `\r`, "\r").Replace(v)
		ext[rest[l[2]:l[3]]] = v
	}
	return hdr, ext
}

func TestCEFEscapesHostileStrings(t *testing.T) {
	e := hostileEvent()
	ent := entryFor(e, 7)
	b, err := audit.CEF{}.Append(nil, &ent)
	if err != nil {
		t.Fatal(err)
	}
	line := string(b)
	if strings.ContainsAny(line, "\n\r\x00") || !utf8.ValidString(line) {
		t.Fatalf("CEF line holds raw control characters or invalid UTF-8: %q", line)
	}
	hdr, ext := cefFields(t, line)
	clean := "a\nb\rc|d=e\\f]g\"h i\ufffd\ufffdj k" // what survives: controls to spaces, bad bytes to U+FFFD
	tests := []struct {
		name, got, want string
	}{
		{"version", hdr[0], "CEF:0"},
		{"signature (action in admin type)", hdr[4], "auth.login"},
		{"severity", hdr[6], "6"},
		{"reason", ext["reason"], clean},
		{"email", ext["suser"], clean},
		{"user agent", ext["requestClientApplication"], clean},
		{"profile", ext["cs1"], clean},
		{"groups", ext["cs4"], "x|y,z=w"},
		{"non-IP source goes to shost", ext["shost"], "not an ip | x=y"},
		{"seq", ext["cn1"], "7"},
		{"external id", ext["externalId"], "0193a1b2c3d4e5f60718293a4b5c6d7e"},
		{"outcome", ext["outcome"], "failure"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			if tt.got != tt.want {
				t.Fatalf("got %q, want %q\nline: %s", tt.got, tt.want, line)
			}
		})
	}
	// An admin type with hostile action lands in the header, escaped.
	a := entryFor(audit.Event{Type: audit.TypeAdmin, Action: "x|y\nz", Outcome: audit.Success}, 8)
	b, _ = audit.CEF{}.Append(nil, &a)
	if hdr, _ := cefFields(t, string(b)); hdr[4] != "admin.x|y z" {
		t.Fatalf("header signature %q, want %q", hdr[4], "admin.x|y z")
	}
}

// sdParams parses the structured data of an RFC 5424 message, undoing the
// escapes, and returns the header fields and the message.
func parseRFC5424(t testing.TB, msg string) (hdr []string, sd map[string]string, body string) {
	t.Helper()
	for i := 0; i < 6; i++ {
		j := strings.IndexByte(msg, ' ')
		if j < 0 {
			t.Fatalf("short header: %q", msg)
		}
		hdr = append(hdr, msg[:j])
		msg = msg[j+1:]
	}
	if !strings.HasPrefix(msg, "[") {
		t.Fatalf("no structured data: %q", msg)
	}
	sd = map[string]string{}
	i := strings.IndexByte(msg, ' ')
	sd["@id"] = msg[1:i]
	for i < len(msg) && msg[i] == ' ' {
		eq := strings.IndexByte(msg[i:], '=')
		name := msg[i+1 : i+eq]
		i += eq + 2 // past ="
		var v strings.Builder
		for ; msg[i] != '"'; i++ {
			if msg[i] == '\\' && strings.ContainsRune(`"\]`, rune(msg[i+1])) {
				i++
			} else if msg[i] == ']' {
				t.Fatalf("unescaped ] in a value: %q", msg)
			}
			v.WriteByte(msg[i])
		}
		sd[name] = v.String()
		i++
	}
	if msg[i] != ']' || msg[i+1] != ' ' {
		t.Fatalf("structured data not closed at %d: %q", i, msg)
	}
	return hdr, sd, msg[i+2:]
}

func TestSyslogEscapesAndLimits(t *testing.T) {
	e := hostileEvent()
	e.Node = strings.Repeat("h", 300) + " x"
	e.Target.User = strings.Repeat("é", 200) // 400 bytes
	ent := entryFor(e, 9)
	b, err := (&audit.Syslog{}).Append(nil, &ent)
	if err != nil {
		t.Fatal(err)
	}
	if !utf8.Valid(b) {
		t.Fatalf("invalid UTF-8: %q", b)
	}
	hdr, sd, body := parseRFC5424(t, string(b))
	clean := "a b c|d=e\\f]g\"h i\ufffd\ufffdj k"
	tests := []struct {
		name string
		ok   bool
		got  string
	}{
		{"PRI is log audit, warning", hdr[0] == "<108>1", hdr[0]},
		{"timestamp", hdr[1] == "2026-02-03T04:05:06.789000Z", hdr[1]},
		{"hostname cut to 255 printable ASCII", len(hdr[2]) == 255 && !strings.ContainsAny(hdr[2], " "), hdr[2]},
		{"app", hdr[3] == "ferry", hdr[3]},
		{"msgid is printable and at most 32", len(hdr[5]) <= 32 && !strings.ContainsAny(hdr[5], " \n"), hdr[5]},
		{"reason unescapes to the cleaned value", sd["reason"] == clean, sd["reason"]},
		{"email", sd["email"] == clean, sd["email"]},
		{"long value cut at a rune boundary within 256 bytes", len(sd["target_user"]) <= 256 && utf8.ValidString(sd["target_user"]) && len(sd["target_user"]) >= 254, sd["target_user"]},
		{"seq", sd["seq"] == "9", sd["seq"]},
		{"sd id", sd["@id"] == "ferry@32473", sd["@id"]},
		{"body is the native line", strings.HasPrefix(body, `{"seq":9,`), body[:20]},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			if !tt.ok {
				t.Fatalf("got %q", tt.got)
			}
		})
	}
}

type ocsfRequired struct {
	Version string   `json:"version"`
	Base    []string `json:"base"`
	Classes map[string]struct {
		Name       string   `json:"name"`
		Category   int      `json:"category_uid"`
		Required   []string `json:"required"`
		AtLeastOne []string `json:"at_least_one"`
	} `json:"classes"`
}

func lookup(o map[string]any, path string) (any, bool) {
	var cur any = o
	for _, p := range strings.Split(path, ".") {
		m, ok := cur.(map[string]any)
		if !ok {
			return nil, false
		}
		if cur, ok = m[p]; !ok || cur == nil {
			return nil, false
		}
	}
	return cur, true
}

func TestOCSFHasRequiredAttributes(t *testing.T) {
	raw, err := os.ReadFile("testdata/ocsf-required.json")
	if err != nil {
		t.Fatal(err)
	}
	var req ocsfRequired
	if err := json.Unmarshal(raw, &req); err != nil {
		t.Fatal(err)
	}
	cp := audit.Entry{Seq: 12, Data: []byte(`{"checkpoint":{}}`), Checkpoint: &audit.Checkpoint{Seq: 11, Time: time.Unix(1700000000, 0), KeyID: "k"}}
	tests := []struct {
		name  string
		entry audit.Entry
		class int
	}{
		{"login", entryFor(loginEvent(1), 1), 3002},
		{"mfa failure", entryFor(audit.Event{Type: audit.TypeMFA, Outcome: audit.Failure, Reason: "bad code", Actor: audit.Actor{UserID: "u1"}}, 2), 3002},
		{"logout", entryFor(audit.Event{Type: audit.TypeLogout, Outcome: audit.Success, Actor: audit.Actor{Email: "a@b"}}, 3), 3002},
		{"lockout", entryFor(audit.Event{Type: audit.TypeLockout, Outcome: audit.Success, Target: audit.Target{User: "u1"}}, 4), 3001},
		{"user disable", entryFor(audit.Event{Type: audit.TypeUserDisable, Outcome: audit.Success, Actor: audit.Actor{UserID: "admin"}, Target: audit.Target{User: "u2"}}, 5), 3001},
		{"flow accept", entryFor(flowEvent(1), 6), 4001},
		{"flow deny, no source", entryFor(audit.Event{Type: audit.TypeFlowDeny, Outcome: audit.Failure, Target: audit.Target{DstAddr: "10.0.0.1", DstPort: 22, Protocol: "tcp"}}, 7), 4001},
		{"session start", entryFor(audit.Event{Type: audit.TypeSessionStart, Outcome: audit.Success, Actor: audit.Actor{UserID: "u1", Session: "s1"}, Target: audit.Target{Peer: "p1"}}, 8), 4014},
		{"session end", entryFor(audit.Event{Type: audit.TypeSessionEnd, Outcome: audit.Success, BytesIn: 5, Duration: time.Hour}, 9), 4014},
		{"peer issue", entryFor(audit.Event{Type: audit.TypePeerIssue, Outcome: audit.Success, Actor: audit.Actor{UserID: "u1"}, Target: audit.Target{Peer: "p"}}, 10), 6003},
		{"admin action, no actor", entryFor(audit.Event{Type: audit.TypeAdmin, Action: "profile.delete", Outcome: audit.Success}, 11), 6003},
		{"cluster action", entryFor(audit.Event{Type: audit.TypeCluster, Action: "join", Outcome: audit.Success}, 12), 6003},
		{"checkpoint", cp, 0},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			b, err := audit.OCSF{}.Append(nil, &tt.entry)
			if err != nil {
				t.Fatal(err)
			}
			var o map[string]any
			if err := json.Unmarshal(b, &o); err != nil {
				t.Fatal(err)
			}
			cls, ok := req.Classes[strconv.Itoa(tt.class)]
			if !ok {
				t.Fatalf("class %d not in testdata", tt.class)
			}
			for _, a := range append(append([]string{}, req.Base...), cls.Required...) {
				if _, ok := lookup(o, a); !ok {
					t.Errorf("required attribute %s missing", a)
				}
			}
			if len(cls.AtLeastOne) > 0 {
				found := false
				for _, a := range cls.AtLeastOne {
					_, ok := lookup(o, a)
					found = found || ok
				}
				if !found {
					t.Errorf("none of %v present", cls.AtLeastOne)
				}
			}
			num := func(k string) int { v, _ := o[k].(float64); return int(v) }
			if num("class_uid") != tt.class || num("category_uid") != cls.Category || num("type_uid") != tt.class*100+num("activity_id") {
				t.Errorf("class %d category %d type %d activity %d", num("class_uid"), num("category_uid"), num("type_uid"), num("activity_id"))
			}
			if v, _ := lookup(o, "metadata.version"); v != req.Version {
				t.Errorf("metadata.version %v, want %s", v, req.Version)
			}
			if v, _ := lookup(o, "unmapped.seq"); v != float64(tt.entry.Seq) {
				t.Errorf("unmapped.seq %v, want %d", v, tt.entry.Seq)
			}
		})
	}
}

func FuzzCEF(f *testing.F) {
	f.Add("reason", "a=b|c\\d\ne", "auth.login")
	f.Add("\xff\xfe", "]\"\\", "admin")
	f.Fuzz(func(t *testing.T, reason, email, typ string) {
		e := audit.Event{Type: audit.Type(typ), Action: reason, Outcome: audit.Failure, Reason: reason, Actor: audit.Actor{Email: email}, Source: audit.Source{UserAgent: email}}
		ent := entryFor(e, 1)
		b, err := audit.CEF{}.Append(nil, &ent)
		if err != nil {
			t.Fatal(err)
		}
		line := string(b)
		if strings.ContainsAny(line, "\n\r") || !utf8.ValidString(line) {
			t.Fatalf("raw line break or invalid UTF-8: %q", line)
		}
		_, ext := cefFields(t, line)
		if reason != "" && ext["reason"] != cleanCEF(reason) {
			t.Fatalf("reason %q came back as %q", cleanCEF(reason), ext["reason"])
		}
		if email != "" && ext["suser"] != cleanCEF(email) {
			t.Fatalf("email %q came back as %q", cleanCEF(email), ext["suser"])
		}
	})
}

// cleanCEF is what a CEF value may keep of s: control characters other
// than line breaks become spaces, invalid UTF-8 becomes U+FFFD.
func cleanCEF(s string) string {
	var out strings.Builder
	for i := 0; i < len(s); {
		r, n := utf8.DecodeRuneInString(s[i:])
		i += n
		switch {
		case r == '\n' || r == '\r':
		case r < 0x20 || r == 0x7f || (r >= 0x80 && r < 0xa0) || r == 0x2028 || r == 0x2029:
			r = ' '
		}
		out.WriteRune(r)
	}
	return out.String()
}

func FuzzSyslog(f *testing.F) {
	f.Add("reason", "host", "a]b\"c\\d")
	f.Add("\xff", "\n", "")
	f.Fuzz(func(t *testing.T, reason, node, email string) {
		e := audit.Event{Type: audit.TypeLogin, Outcome: audit.Failure, Reason: reason, Node: node, Actor: audit.Actor{Email: email}}
		ent := entryFor(e, 3)
		b, err := (&audit.Syslog{}).Append(nil, &ent)
		if err != nil {
			t.Fatal(err)
		}
		if !utf8.Valid(b) {
			t.Fatalf("invalid UTF-8: %q", b)
		}
		hdr, sd, body := parseRFC5424(t, string(b))
		for i, h := range hdr {
			for _, c := range []byte(h) {
				if c < 33 || c > 126 {
					t.Fatalf("header field %d holds byte %#x: %q", i, c, h)
				}
			}
		}
		if len(hdr[2]) > 255 || len(hdr[5]) > 32 {
			t.Fatalf("header over its limit: %q", hdr)
		}
		if r := sd["reason"]; len(r) > 256 || !utf8.ValidString(r) || strings.ContainsAny(r, "\n\r") {
			t.Fatalf("reason %q", r)
		}
		if !strings.HasPrefix(body, `{"seq":3,`) {
			t.Fatalf("body %q", body)
		}
	})
}

// FuzzVerifyFile feeds arbitrary bytes to the export decoder and verifier:
// they must never panic, and anything accepted must be internally
// consistent.
func FuzzVerifyFile(f *testing.F) {
	ent := entryFor(loginEvent(1), 1)
	ent.PrevHash = audit.Hash{}
	var line bytes.Buffer
	b, _ := audit.JSONLines{}.Append(nil, &ent)
	line.Write(b)
	f.Add(line.Bytes())
	f.Add([]byte(`{"export":{"version":1,"filter":"all"}}` + "\n" + `{"end":{"first":1,"last":1,"count":1}}`))
	f.Add([]byte(`{"seq":1,"prev_hash":"` + strings.Repeat("0", 64) + `","hash":"` + strings.Repeat("0", 64) + `","data":"AAAA"}`))
	f.Fuzz(func(t *testing.T, data []byte) {
		rep, err := audit.VerifyFile(bytes.NewReader(data), audit.VerifyOptions{SkipSignatures: true})
		if err == nil && rep.Records > 0 && rep.Last < rep.First {
			t.Fatalf("accepted with last %d before first %d", rep.Last, rep.First)
		}
		_ = fmt.Sprint(rep)
	})
}

// A profile delete is an OCSF Delete, not an Update; a profile put an
// Update.
func TestOCSFProfileActivities(t *testing.T) {
	for action, want := range map[string]string{"profile.delete": "Delete", "profile.put": "Update"} {
		ent := entryFor(audit.Event{Type: audit.TypeProfileChange, Action: action, Outcome: audit.Success, Target: audit.Target{Profile: "eng"}}, 1)
		b, err := audit.OCSF{}.Append(nil, &ent)
		if err != nil {
			t.Fatal(err)
		}
		var o map[string]any
		json.Unmarshal(b, &o)
		if o["activity_name"] != want {
			t.Errorf("%s: activity %v, want %s", action, o["activity_name"], want)
		}
	}
}

// Privileged changes and security failures rank above informational.
func TestSeverityByEventClass(t *testing.T) {
	for _, tt := range []struct {
		name     string
		ev       audit.Event
		pri, cef string
	}{
		{"login", loginEvent(1), "<110>", "|3|"},
		{"admin change", audit.Event{Type: audit.TypeAdmin, Action: "profile.delete", Outcome: audit.Success}, "<109>", "|5|"},
		{"profile change", audit.Event{Type: audit.TypeProfileChange, Action: "profile.put", Outcome: audit.Success}, "<109>", "|5|"},
		{"refused call", audit.Event{Type: audit.TypeAdmin, Action: "access.denied", Outcome: audit.Failure}, "<108>", "|6|"},
	} {
		ent := entryFor(tt.ev, 1)
		sl, _ := (&audit.Syslog{}).Append(nil, &ent)
		cef, _ := audit.CEF{}.Append(nil, &ent)
		if !strings.HasPrefix(string(sl), tt.pri) || !strings.Contains(string(cef), tt.cef) {
			t.Errorf("%s: syslog %.6s, cef %.60s; want %s and %s", tt.name, sl, cef, tt.pri, tt.cef)
		}
	}
}
