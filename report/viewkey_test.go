package report

import (
	"testing"
	"time"
)

// TestViewKey: viewKey reads the fields key.encode wrote, as decodeKey
// does, and rejects keys without exactly ten fields.
func TestViewKey(t *testing.T) {
	at := time.Date(2026, 3, 1, 5, 0, 0, 0, time.UTC)
	for _, k := range []key{
		{User: "u1", Email: "u1@example.com", Device: "laptop", Profile: "eng", Version: 7, Dst: "10.0.4.17", Proto: "tcp", Port: 5432, Host: "db.internal"},
		{User: "u2", Profile: "ops", Dst: "", Proto: "", Deny: true},
		{},
	} {
		b := k.encode(at)
		v, ok := viewKey(b)
		if !ok {
			t.Fatalf("%+v: not read", k)
		}
		got := key{User: string(v.user), Email: string(v.email), Device: string(v.device), Profile: string(v.profile), Version: parseUint(v.version),
			Dst: string(v.dst), Proto: string(v.proto), Port: v.portNum(), Host: string(v.host), Deny: string(v.verdict) == "d"}
		if want, _, _ := decodeKey(b); got != want {
			t.Errorf("viewKey = %+v, want %+v", got, want)
		}
		for _, bad := range [][]byte{b[:7], b[:len(b)-1], append(b[:len(b):len(b)], 'x'), append(b[:len(b):len(b)], 0), b[:8]} {
			if _, ok := viewKey(bad); ok {
				t.Errorf("%q: read, want rejected", bad)
			}
		}
	}
}

func BenchmarkViewKey(b *testing.B) {
	k := key{User: "u00042", Email: "u00042@example.com", Device: "laptop-3", Profile: "eng", Version: 12, Dst: "10.20.31.4", Proto: "tcp", Port: 8443}.encode(time.Unix(0, 0))
	for b.Loop() {
		if _, ok := viewKey(k); !ok {
			b.Fatal("not read")
		}
	}
}
