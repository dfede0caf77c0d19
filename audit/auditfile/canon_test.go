package auditfile_test

import (
	"bytes"
	"errors"
	"testing"
	"time"

	"github.com/ferryvpn/ferry/audit/auditfile"
)

func TestCanonical(t *testing.T) {
	tests := []struct{ name, in, want string }{
		// RFC 8785, section 3.2.2.
		{"rfc 8785 example", `{
  "numbers": [333333333.33333329, 1E30, 4.50, 2e-3, 0.000000000000000000000000001],
  "string": "\u20ac$\u000F\u000aA'\u0042\u0022\u005c\\\"\/",
  "literals": [null, true, false]
}`, `{"literals":[null,true,false],"numbers":[333333333.3333333,1e+30,4.5,0.002,1e-27],"string":"€$\u000f\nA'B\"\\\\\"/"}`},
		// RFC 8785, section 3.2.3: sorting by UTF-16 code units.
		{"rfc 8785 sorting", `{"\u20ac":"Euro Sign","\r":"Carriage Return","\ufb33":"Hebrew Letter Dalet With Dagesh","1":"One","\ud83d\ude00":"Emoji: Grinning Face","\u0080":"Control","\u00f6":"Latin Small Letter O With Diaeresis"}`,
			"{\"\\r\":\"Carriage Return\",\"1\":\"One\",\"\u0080\":\"Control\",\"\u00f6\":\"Latin Small Letter O With Diaeresis\",\"\u20ac\":\"Euro Sign\",\"\U0001F600\":\"Emoji: Grinning Face\",\"\ufb33\":\"Hebrew Letter Dalet With Dagesh\"}"},
		{"go escapes", `{"ua":"\u003cscript\u003e \u0026 \u2028"}`, "{\"ua\":\"<script> & \u2028\"}"},
		{"python ascii", `{"b": 1, "a": "\u00e9\ud83d\ude00"}`, `{"a":"é😀","b":1}`},
		{"nested", `{"z":{"y":[1,{"b":2,"a":1}]},"a":-0}`, `{"a":0,"z":{"y":[1,{"a":1,"b":2}]}}`},
		{"big integer kept", `{"n":18446744073709551615}`, `{"n":18446744073709551615}`},
		{"empty", `{"a":{},"b":[]}`, `{"a":{},"b":[]}`},
		{"in order, spaced", `{ "a" : 1 , "b" : [ {"c":"\u003c"} , {} ] , "c" : {"d":null} }`, `{"a":1,"b":[{"c":"<"},{}],"c":{"d":null}}`},
		{"one member", `{"a" : {"b" : "x"}}`, `{"a":{"b":"x"}}`},
		{"numbers", `[1e21,1e-7,123e-2,0.1,-1.5E3]`, `[1e+21,1e-7,1.23,0.1,-1500]`},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			got, err := auditfile.Canonical([]byte(tt.in))
			if err != nil {
				t.Fatal(err)
			}
			if string(got) != tt.want {
				t.Fatalf("got  %s\nwant %s", got, tt.want)
			}
			again, err := auditfile.Canonical(got)
			if err != nil || string(again) != string(got) {
				t.Fatalf("not idempotent: %s (%v)", again, err)
			}
		})
	}
	for name, bad := range map[string]string{
		"duplicate key": `{"a":1,"a":2}`, "duplicate key in order": `{"a":1,"b":2,"b":3}`, "lone surrogate": `"\ud800"`, "trailing": `{} x`,
		"invalid utf-8": "\"\xff\"", "control": "\"\x01\"", "deep": string(make([]byte, 0)) + deep(100),
		"bad number": `01`, "unterminated": `{"a":`,
	} {
		if _, err := auditfile.Canonical([]byte(bad)); err == nil {
			t.Errorf("%s: accepted", name)
		} else if !errors.Is(err, auditfile.ErrMalformed) {
			t.Errorf("%s: %v does not wrap ErrMalformed", name, err)
		}
	}
}

func deep(n int) string {
	s := ""
	for i := 0; i < n; i++ {
		s += "["
	}
	for i := 0; i < n; i++ {
		s += "]"
	}
	return s
}

// FuzzCanonical: canonicalization never panics, and its output is a fixed
// point.
func FuzzCanonical(f *testing.F) {
	f.Add([]byte(`{"b":[1,2.5,"x\u003c"],"a":null}`))
	f.Fuzz(func(t *testing.T, b []byte) {
		out, err := auditfile.Canonical(b)
		if err != nil {
			return
		}
		again, err := auditfile.Canonical(out)
		if err != nil || string(again) != string(out) {
			t.Fatalf("%q canonicalizes to %q, then to %q (%v)", b, out, again, err)
		}
	})
}

// Exports written before records were canonical (format 1: encoding/json
// with "id" first and '<' escaped, an unsigned version 1 header) still
// verify as written.
func TestOldFormatExportVerifies(t *testing.T) {
	s := testSigner()
	at := time.Date(2025, 6, 1, 0, 0, 0, 0, time.UTC)
	var out []byte
	add := func(l *auditfile.Line) {
		b, err := auditfile.AppendLine(nil, l)
		if err != nil {
			t.Fatal(err)
		}
		out = append(append(out, b...), '\n')
	}
	add(&auditfile.Line{Export: &auditfile.Header{Version: 1, Filter: "all", Time: at}})
	d := auditfile.NewDigest()
	var prev auditfile.Hash
	for seq := uint64(1); seq <= 3; seq++ {
		data := []byte(`{"id":"e` + string(rune('0'+seq)) + `","type":"auth.login","source":{"user_agent":"\u003cb\u003e \u0026"}}`)
		h := auditfile.ChainHash(prev, seq, data)
		add(&auditfile.Line{Seq: seq, PrevHash: prev, Hash: h, Record: data})
		d.Add(seq, h)
		prev = h
	}
	tr := &auditfile.Trailer{First: 1, Last: 3, Count: 3, Digest: d.Sum(), LastHash: prev, Filter: "all", Time: at}
	s.SignTrailer(tr)
	add(&auditfile.Line{End: tr})
	rep, err := auditfile.VerifyFile(bytes.NewReader(out), auditfile.VerifyOptions{Keys: s.Keys(), RequireTrailer: true})
	if err != nil || rep.Events != 3 || !rep.Trailer || rep.HeaderSigned {
		t.Fatalf("old-format export: %+v, %v", rep, err)
	}
}
