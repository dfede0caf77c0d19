package audit_test

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"os/exec"
	"strings"
	"testing"
	"time"

	"github.com/ferryvpn/ferry/audit"
	"github.com/ferryvpn/ferry/cluster"
)

// hostileJournal is a journal whose events hold what re-encoders change:
// '<', '>', '&' (escaped by Go), non-ASCII (escaped by Python), U+2028,
// control characters and a details map (key order).
func hostileJournal(t *testing.T, n int) (*cluster.Node, *audit.Signer) {
	t.Helper()
	c := startCluster(t, 1)
	node := c.Node(0)
	s := newSigner(t)
	cp, err := audit.NewCheckpointer(audit.CheckpointerConfig{Store: node, Signer: s, Every: 10, Poll: time.Hour, Logger: quietLogger()})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { cp.Close() })
	l := newLog(t, node)
	for i := 0; i < n; i++ {
		e := loginEvent(i)
		e.Source.UserAgent = fmt.Sprintf("<script>alert(%d)</script> & \"quotes\" é 😀 \u2028 \x01 \t", i)
		e.Details = map[string]string{"zeta": "<z>", "alpha": "a&b", "Mid": "ü"}
		if err := l.Record(context.Background(), e); err != nil {
			t.Fatal(err)
		}
		if i%10 == 9 {
			if _, err := cp.Checkpoint(context.Background()); err != nil {
				t.Fatal(err)
			}
		}
	}
	return node, s
}

// reencoders re-encode an export line by line the way receivers do.
func reencoders(t *testing.T) map[string]func([]byte) []byte {
	t.Helper()
	out := map[string]func([]byte) []byte{
		// A Go pipeline: decode into maps, encode without HTML escaping
		// (keys come out sorted, '<' literal).
		"go maps": func(b []byte) []byte {
			var buf bytes.Buffer
			for _, l := range splitLines(b) {
				var v any
				if err := json.Unmarshal([]byte(l), &v); err != nil {
					t.Fatal(err)
				}
				enc := json.NewEncoder(&buf)
				enc.SetEscapeHTML(false)
				enc.Encode(v)
			}
			return buf.Bytes()
		},
	}
	if py, err := exec.LookPath("python3"); err == nil {
		for name, script := range map[string]string{
			"python json.loads/json.dumps": "import json,sys\nfor l in sys.stdin: print(json.dumps(json.loads(l)))",
			"python sort_keys":             "import json,sys\nfor l in sys.stdin: print(json.dumps(json.loads(l), sort_keys=True, ensure_ascii=False))",
			"python reversed keys": "import json,sys\n" +
				"def rev(v):\n" +
				"  if isinstance(v, dict): return {k: rev(v[k]) for k in reversed(list(v))}\n" +
				"  if isinstance(v, list): return [rev(x) for x in v]\n" +
				"  return v\n" +
				"for l in sys.stdin: print(json.dumps(rev(json.loads(l)), indent=None, separators=(' , ', ' : ')))",
		} {
			out[name] = pipe(t, py, "-c", script)
		}
	} else {
		t.Log("python3 not found: its re-encodings are not tried")
	}
	if jq, err := exec.LookPath("jq"); err == nil {
		out["jq -c"] = pipe(t, jq, "-c", ".")
		out["jq -c -S"] = pipe(t, jq, "-c", "-S", ".")
	} else {
		t.Log("jq not found: its re-encodings are not tried")
	}
	return out
}

// splitLinesAt returns line i of b (0 the header, 1 the export's first
// checkpoint, 2 the first record).
func splitLinesAt(b []byte, i int) []byte { return []byte(splitLines(b)[i]) }

func pipe(t *testing.T, name string, args ...string) func([]byte) []byte {
	return func(b []byte) []byte {
		cmd := exec.Command(name, args...)
		cmd.Stdin = bytes.NewReader(b)
		out, err := cmd.Output()
		if err != nil {
			t.Fatalf("%s %v: %v", name, args, err)
		}
		return out
	}
}

// A SIEM's copy of an export, re-encoded by its pipeline, still verifies:
// records are hashed over their RFC 8785 canonical form.
func TestReencodedExportVerifies(t *testing.T) {
	node, s := hostileJournal(t, 35)
	file := export(t, node, s, audit.Filter{})
	if !bytes.Contains(file, []byte("<script>")) {
		t.Fatalf("export escapes '<': records are not stored in canonical form:\n%s", recordLines(splitLines(file))[0])
	}
	for name, re := range reencoders(t) {
		t.Run(name, func(t *testing.T) {
			copy := re(file)
			changed := !bytes.Equal(splitLinesAt(copy, 2), splitLinesAt(file, 2))
			rep, err := audit.VerifyFile(bytes.NewReader(copy), audit.VerifyOptions{Keys: s.Keys(), RequireTrailer: true})
			if err != nil {
				t.Fatalf("%v\nproblems: %+v\nfirst line: %s", err, rep.Problems, splitLines(copy)[2])
			}
			t.Logf("first record line changed: %v; %d records matched in canonical form", changed, rep.Reencoded)
			if !rep.Trailer || !rep.HeaderSigned || rep.Signed != rep.Last {
				t.Fatalf("report %+v", rep)
			}
		})
	}
}

// Verification reports every problem, not just the first: edits far apart
// are each named, with ranges and counts.
func TestVerifyReportsEveryProblem(t *testing.T) {
	node, s := hostileJournal(t, 60)
	ls := splitLines(export(t, node, s, audit.Filter{}))
	edit := func(seq uint64) {
		i := lineOf(t, ls, seq)
		ls[i] = strings.Replace(ls[i], "198.51.100.7", "203.0.113.9", 1)
	}
	edit(5)
	for seq := uint64(30); seq <= 32; seq++ {
		edit(seq)
	}
	del := lineOf(t, ls, 50)
	ls = append(ls[:del], ls[del+1:]...)
	rep, err := audit.VerifyFile(bytes.NewReader(joinLines(ls)), audit.VerifyOptions{Keys: s.Keys(), RequireTrailer: true})
	var te *audit.TamperError
	if !errors.As(err, &te) || te.Seq != 5 || te.Kind != audit.Edited {
		t.Fatalf("got %v, want record 5 edited first", err)
	}
	want := []struct {
		kind        audit.Tamper
		first, last uint64
	}{{audit.Edited, 5, 5}, {audit.Edited, 30, 32}, {audit.Missing, 50, 50}}
	for _, w := range want {
		found := false
		for _, p := range rep.Problems {
			found = found || (p.Kind == w.kind && p.First == w.first && p.Last == w.last && p.Count == w.last-w.first+1)
		}
		if !found {
			t.Errorf("no %s problem for %d..%d in %+v", w.kind, w.first, w.last, rep.Problems)
		}
	}
	if te.More < 2 || !strings.Contains(err.Error(), "more problems") {
		t.Errorf("error %q does not count the other problems", err)
	}
}

// Records appended after the last checkpoint, with hashes recomputed so the
// chain holds, are reported as not covered by a signature, with an error
// of their own; the operator may accept an unsigned tail explicitly.
func TestVerifyReportsForgedUnsignedTail(t *testing.T) {
	node, s := hostileJournal(t, 20)
	ls := splitLines(export(t, node, s, audit.Filter{}))
	body := recordLines(ls) // as a sink writes it
	var last exportLine
	if err := json.Unmarshal([]byte(body[len(body)-1]), &last); err != nil {
		t.Fatal(err)
	}
	prev := last.Hash
	for i := uint64(1); i <= 3; i++ {
		seq := last.Seq + i
		data := []byte(fmt.Sprintf(`{"id":"forged%d","outcome":"success","type":"auth.login"}`, i))
		h := chainHash(prev, seq, data)
		body = append(body, fmt.Sprintf(`{"seq":%d,"prev_hash":"%s","hash":"%s","record":%s}`, seq, prev, h, data))
		prev = h
	}
	rep, err := audit.VerifyFile(bytes.NewReader(joinLines(body)), audit.VerifyOptions{Keys: s.Keys()})
	if !errors.Is(err, audit.ErrUnsigned) || errors.Is(err, audit.ErrTampered) {
		t.Fatalf("got %v, want ErrUnsigned", err)
	}
	if rep.Unsigned != 3 || rep.UnsignedFirst != last.Seq+1 {
		t.Fatalf("report %+v: want 3 unsigned from %d", rep, last.Seq+1)
	}
	if _, err := audit.VerifyFile(bytes.NewReader(joinLines(body)), audit.VerifyOptions{Keys: s.Keys(), AcceptUnsignedTail: true}); err != nil {
		t.Fatalf("accepted unsigned tail: %v", err)
	}
}

// The export header is covered by the signature of the export's first
// checkpoint (and by the trailer's): editing any of its fields, adding
// one, dropping that checkpoint, or passing the header off as an old
// unsigned one is reported; and the checkpoint anchors the export's start,
// so records cut from it are reported as such.
func TestVerifyHeaderCoveredByFirstCheckpoint(t *testing.T) {
	node, s := hostileJournal(t, 20)
	clean := splitLines(export(t, node, s, audit.Filter{}))
	if !strings.HasPrefix(clean[0], `{"export":{"version":3,`) || !strings.HasPrefix(clean[1], `{"checkpoint":{`) {
		t.Fatalf("export opens with\n%s\n%s\nwant a version 3 header and the export's first checkpoint", clean[0], clean[1])
	}
	rep, err := audit.VerifyFile(bytes.NewReader(joinLines(clean)), audit.VerifyOptions{Keys: s.Keys(), RequireTrailer: true})
	if err != nil || !rep.HeaderSigned || !rep.Anchored || !rep.Trailer {
		t.Fatalf("clean export: %+v, %v", rep, err)
	}
	header := func(old, new string) func([]string) []string {
		return func(ls []string) []string {
			if !strings.Contains(ls[0], old) {
				t.Fatalf("header %s holds no %s", ls[0], old)
			}
			ls[0] = strings.Replace(ls[0], old, new, 1)
			return ls
		}
	}
	tests := []struct {
		name   string
		tamper func(ls []string) []string
		kind   audit.Tamper
		want   string
	}{
		{"filter", header(`"filter":"all"`, `"filter":"user=u1"`), audit.Forged, "export header edited"},
		{"time", header(`"time":"20`, `"time":"19`), audit.Forged, "export header edited"},
		{"version 3 to 4", header(`"version":3`, `"version":4`), audit.Forged, "export header edited"},
		{"version 3 to 1", header(`"version":3`, `"version":1`), audit.Forged, "export header edited"},
		{"version 3 to 2", header(`"version":3`, `"version":2`), audit.Forged, "export header"},
		{"field added", header(`"version":3`, `"version":3,"note":"x"`), audit.Forged, "export header edited"},
		{"checkpoint dropped", func(ls []string) []string { return append(ls[:1], ls[2:]...) }, audit.Forged, "not covered by a signature"},
		{"downgraded to an unsigned version 1 header, checkpoint dropped", func(ls []string) []string {
			ls[0] = strings.Replace(ls[0], `"version":3`, `"version":1`, 1)
			return append(ls[:1], ls[2:]...)
		}, audit.Forged, "the trailer signs a different header"},
		{"checkpoint re-signed by another key", func(ls []string) []string {
			ls[1] = strings.Replace(ls[1], `"key_id":"`, `"key_id":"0`, 1)
			return ls
		}, audit.Forged, "unknown key"},
		{"first records cut", func(ls []string) []string { return append(ls[:2], ls[5:]...) }, audit.Missing, "records 1 to 3 missing"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			ls := append([]string(nil), clean...)
			ls = tt.tamper(ls)
			rep, err := audit.VerifyFile(bytes.NewReader(joinLines(ls)), audit.VerifyOptions{Keys: s.Keys(), RequireTrailer: true})
			found := false
			for _, p := range rep.Problems {
				found = found || (p.Kind == tt.kind && strings.Contains(p.Detail, tt.want))
			}
			if !errors.Is(err, audit.ErrTampered) || !found || rep.HeaderSigned && tt.kind == audit.Forged {
				t.Fatalf("got %v, problems %+v: want %s %q", err, rep.Problems, tt.kind, tt.want)
			}
		})
	}
}

// The same event stored twice (before idempotent appends, or by a forger
// who re-chained it) is reported.
func TestVerifyReportsDuplicateEventIDs(t *testing.T) {
	node, s := hostileJournal(t, 5)
	ls := splitLines(export(t, node, s, audit.Filter{}))
	var l exportLine
	body := recordLines(ls)
	json.Unmarshal([]byte(body[len(body)-1]), &l)
	var first exportLine
	json.Unmarshal([]byte(body[0]), &first)
	h := chainHash(l.Hash, l.Seq+1, first.Record)
	body = append(body, fmt.Sprintf(`{"seq":%d,"prev_hash":"%s","hash":"%s","record":%s}`, l.Seq+1, l.Hash, h, first.Record))
	rep, _ := audit.VerifyFile(bytes.NewReader(joinLines(body)), audit.VerifyOptions{Keys: s.Keys(), AcceptUnsignedTail: true})
	if rep.DuplicateIDs != 1 {
		t.Fatalf("report %+v: want one duplicate event ID", rep)
	}
}
