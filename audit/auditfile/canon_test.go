package auditfile_test

import (
	"errors"
	"testing"

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
		"duplicate key": `{"a":1,"a":2}`, "lone surrogate": `"\ud800"`, "trailing": `{} x`,
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
