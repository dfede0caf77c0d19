package audit

import (
	"bytes"
	"encoding/json"
	"fmt"
	"reflect"
	"testing"
	"time"

	"github.com/ferryvpn/ferry/audit/auditfile"
)

// The fast encoding is exactly the RFC 8785 canonical form of the event.
func TestEncodeCanonicalMatchesCanonicalization(t *testing.T) {
	hostile := []string{"", "plain", "<script>&amp;", "é ü 😀", "\u2028\u2029", "tab\tnl\nquote\"back\\", "\x01\x08\x0c\x1f", "\xff\xfe bad utf-8", "\U0001F600key"}
	for i, s := range hostile {
		for j, k := range hostile {
			e := Event{ID: fmt.Sprint("id", i, j), Time: time.Date(2026, 1, 2, 3, 4, 5, 6789, time.UTC), Node: s, Type: TypeAdmin, Action: k,
				Actor:  Actor{UserID: s, Email: k, Groups: []string{s, k}, Session: "s", Role: "admin"},
				Source: Source{Addr: "198.51.100.1", Port: 443, UserAgent: s}, Target: Target{Peer: k, DstPort: 22, Protocol: "tcp"},
				Outcome: Failure, Reason: s + k, PolicyVersion: 1 << 60, BytesIn: 7, Duration: time.Hour,
				Details: map[string]string{s: k, k + "x": s, "\uffff": "a", "\U0001F600": "b"},
				Flows: []Flow{{BytesIn: 1, BytesOut: 2, Coarse: true, Dst: s, Folded: 3, Interim: 4, Flows: 5, PktsIn: 6, PktsOut: 7, Port: 8,
					Proto: k, Rule: "0", First: 1767258000123, Last: 1767258059999}, {}}}
			got, err := encodeCanonical(&e)
			if err != nil {
				t.Fatal(err)
			}
			raw, _ := json.Marshal(&e)
			want, err := auditfile.Canonical(raw)
			if err != nil {
				t.Fatal(err)
			}
			if !bytes.Equal(got, want) {
				t.Fatalf("event %d/%d:\nfast      %s\ncanonical %s", i, j, got, want)
			}
			var back Event
			if err := json.Unmarshal(got, &back); err != nil || back.ID != e.ID {
				t.Fatalf("does not decode back: %v", err)
			}
		}
	}
}

// The mirror structs keep every field of the structs they mirror.
func TestCanonMirrorsAreComplete(t *testing.T) {
	for _, p := range [][2]any{{Event{}, canonEvent{}}, {Actor{}, canonActor{}}, {Target{}, canonTarget{}}} {
		a, b := reflect.TypeOf(p[0]), reflect.TypeOf(p[1])
		if a.NumField() != b.NumField() {
			t.Errorf("%s has %d fields, its mirror %s %d: add the new field to the mirror (encode.go)", a, a.NumField(), b, b.NumField())
		}
	}
}
