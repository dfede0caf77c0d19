package audit_test

import (
	"bytes"
	"context"
	"crypto/sha256"
	"encoding/binary"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"strings"
	"testing"
	"time"

	"github.com/ferryvpn/ferry/audit"
	"github.com/ferryvpn/ferry/cluster"
)

// journalWithCheckpoints fills a one-node cluster with n events and a
// checkpoint every 10 records, and returns it with the signer.
func journalWithCheckpoints(t *testing.T, n int) (*cluster.Node, *audit.Signer, func()) {
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
		if err := l.Record(context.Background(), loginEvent(i)); err != nil {
			t.Fatal(err)
		}
		if i%10 == 9 {
			if _, err := cp.Checkpoint(context.Background()); err != nil {
				t.Fatal(err)
			}
		}
	}
	return node, s, func() { c.Stop(0) }
}

func export(t *testing.T, node *cluster.Node, s *audit.Signer, f audit.Filter) []byte {
	t.Helper()
	var buf bytes.Buffer
	if _, err := audit.Export(context.Background(), &buf, node, audit.ExportOptions{Filter: f, Signer: s}); err != nil {
		t.Fatal(err)
	}
	return buf.Bytes()
}

// exportLine mirrors the export format for tests that rewrite lines.
type exportLine struct {
	Seq      uint64          `json:"seq"`
	PrevHash string          `json:"prev_hash"`
	Hash     string          `json:"hash"`
	Record   json.RawMessage `json:"record"`
}

func chainHash(prevHex string, seq uint64, data []byte) string {
	var prev [32]byte
	hex.Decode(prev[:], []byte(prevHex))
	h := sha256.New()
	h.Write(prev[:])
	var s [8]byte
	binary.BigEndian.PutUint64(s[:], seq)
	h.Write(s[:])
	h.Write(data)
	return hex.EncodeToString(h.Sum(nil))
}

func splitLines(b []byte) []string { return strings.Split(strings.TrimSuffix(string(b), "\n"), "\n") }

// recordLines returns an export's record lines, as a sink writes them: no
// header, no first checkpoint, no trailer.
func recordLines(ls []string) []string {
	var out []string
	for _, l := range ls {
		if strings.HasPrefix(l, `{"seq":`) {
			out = append(out, l)
		}
	}
	return out
}
func joinLines(ls []string) []byte { return []byte(strings.Join(ls, "\n") + "\n") }

// lineOf returns the index of the line holding record seq.
func lineOf(t *testing.T, ls []string, seq uint64) int {
	t.Helper()
	for i, l := range ls {
		if strings.HasPrefix(l, fmt.Sprintf(`{"seq":%d,`, seq)) {
			return i
		}
	}
	t.Fatalf("no line for record %d", seq)
	return -1
}

func TestVerifyFileDetectsTampering(t *testing.T) {
	node, signer, _ := journalWithCheckpoints(t, 100)
	clean := export(t, node, signer, audit.Filter{})
	head, _, _ := node.JournalHead()
	edit := func(l string) string { return strings.Replace(l, `"user_id":"u`, `"user_id":"x`, 1) }
	tests := []struct {
		name   string
		tamper func(ls []string) []string
		kind   audit.Tamper
		want   string
	}{
		{"untouched", func(ls []string) []string { return ls }, 0, ""},
		{"edit", func(ls []string) []string {
			i := lineOf(t, ls, 50)
			ls[i] = edit(ls[i])
			return ls
		}, audit.Edited, "record 50 edited: its contents do not match its hash"},
		{"edit with recomputed hash", func(ls []string) []string {
			i := lineOf(t, ls, 50)
			var l exportLine
			json.Unmarshal([]byte(edit(ls[i])), &l)
			l.Hash = chainHash(l.PrevHash, l.Seq, l.Record)
			b, _ := json.Marshal(l)
			ls[i] = string(b)
			return ls
		}, audit.Edited, "record 50 edited: record 51 no longer follows it"},
		{"edit with the rest of the chain rewritten", func(ls []string) []string {
			// Rewrite record 50 and every hash after it: only the
			// signed checkpoints can tell.
			i := lineOf(t, ls, 50)
			prev := ""
			for j := i; j < len(ls)-1; j++ {
				var l exportLine
				src := ls[j]
				if j == i {
					src = edit(src)
				}
				json.Unmarshal([]byte(src), &l)
				if prev != "" {
					l.PrevHash = prev
				}
				l.Hash = chainHash(l.PrevHash, l.Seq, l.Record)
				prev = l.Hash
				b, _ := json.Marshal(l)
				ls[j] = string(b)
			}
			return ls
		}, audit.Edited, "checkpoint at"},
		{"delete", func(ls []string) []string {
			i := lineOf(t, ls, 50)
			return append(ls[:i], ls[i+1:]...)
		}, audit.Missing, "record 50 missing"},
		{"delete several", func(ls []string) []string {
			i := lineOf(t, ls, 50)
			return append(ls[:i], ls[i+3:]...)
		}, audit.Missing, "records 50 to 52 missing"},
		{"reorder", func(ls []string) []string {
			i := lineOf(t, ls, 50)
			ls[i], ls[i+1] = ls[i+1], ls[i]
			return ls
		}, audit.Reordered, "records out of order at 50"},
		{"truncate keeping the trailer", func(ls []string) []string {
			i := lineOf(t, ls, head-9)
			return append(ls[:i], ls[len(ls)-1])
		}, audit.Truncated, fmt.Sprintf("export truncated after record %d: the trailer covers records up to %d", head-10, head)},
		{"truncate with the trailer", func(ls []string) []string {
			return ls[:lineOf(t, ls, head-9)]
		}, audit.Truncated, fmt.Sprintf("export truncated after record %d: its signed trailer is missing", head-10)},
		{"cut in the middle of a line", func(ls []string) []string {
			i := lineOf(t, ls, 60)
			ls = ls[:i+1]
			ls[i] = ls[i][:len(ls[i])/2]
			return ls
		}, audit.Truncated, "export truncated after record 59: the last line is cut off"},
		{"forged checkpoint signature", func(ls []string) []string {
			for i, l := range ls {
				if strings.Contains(l, `"record":{"checkpoint"`) {
					ls[i] = strings.Replace(l, `"sig":"`, `"sig":"AAAA`, 1)
					var el exportLine
					json.Unmarshal([]byte(ls[i]), &el)
					el.Hash = chainHash(el.PrevHash, el.Seq, el.Record)
					b, _ := json.Marshal(el)
					ls[i] = string(b)
					break
				}
			}
			return ls
		}, audit.Forged, "checkpoint at 11: invalid signature"},
		{"trailer re-signed by another key", func(ls []string) []string {
			ls[len(ls)-1] = strings.Replace(ls[len(ls)-1], `"key_id":"`, `"key_id":"0`, 1)
			return ls
		}, audit.Forged, "trailer signed by unknown key"},
		{"garbage line", func(ls []string) []string {
			return append(ls[:3], append([]string{"hello"}, ls[3:]...)...)
		}, audit.Malformed, "not an audit export line"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			f := joinLines(tt.tamper(splitLines(clean)))
			if strings.HasPrefix(tt.name, "cut") {
				f = bytes.TrimSuffix(f, []byte("\n")) // a cut file ends mid-line
			}
			rep, err := audit.VerifyFile(bytes.NewReader(f), audit.VerifyOptions{Keys: signer.Keys()})
			if tt.kind == 0 {
				if err != nil {
					t.Fatal(err)
				}
				if !rep.Trailer || rep.Signed != head || rep.Last != head || rep.Events != 100 || !rep.Anchored {
					t.Fatalf("report %+v: want a signed, anchored export of records 1-%d", rep, head)
				}
				return
			}
			var te *audit.TamperError
			if !errors.Is(err, audit.ErrTampered) || !errors.As(err, &te) {
				t.Fatalf("got %v, want a TamperError", err)
			}
			if te.Kind != tt.kind || !strings.Contains(err.Error(), tt.want) {
				t.Fatalf("got %v (%s), want %s naming %q", err, te.Kind, tt.kind, tt.want)
			}
		})
	}
}

// A forged checkpoint whose record hash is consistent is caught by its
// signature.
func TestVerifyFileRejectsForgedCheckpoint(t *testing.T) {
	node, signer, _ := journalWithCheckpoints(t, 30)
	ls := splitLines(export(t, node, signer, audit.Filter{}))
	other := newSigner(t)
	// Verify with the wrong key: every checkpoint is "unknown key".
	rep, err := audit.VerifyFile(bytes.NewReader(joinLines(ls)), audit.VerifyOptions{Keys: other.Keys()})
	var te *audit.TamperError
	if !errors.As(err, &te) || te.Kind != audit.Forged {
		t.Fatalf("got %v, want forged", err)
	}
	found := false
	for _, p := range rep.Problems {
		found = found || (p.Kind == audit.Forged && strings.Contains(p.Detail, "checkpoint at 11: signed by unknown key"))
	}
	if !found {
		t.Fatalf("problems %+v: want checkpoint at 11 forged", rep.Problems)
	}
}

func TestVerifyFilteredExport(t *testing.T) {
	node, signer, _ := journalWithCheckpoints(t, 60)
	f := audit.Filter{User: "u7"}
	ls := splitLines(export(t, node, signer, f))
	rep, err := audit.VerifyFile(bytes.NewReader(joinLines(ls)), audit.VerifyOptions{Keys: signer.Keys()})
	if err != nil || !rep.Filtered || rep.Events != 2 {
		t.Fatalf("filtered export: %+v, %v; want 2 events, filtered", rep, err)
	}
	// Drop one event line (keep header, checkpoints and trailer).
	for i := len(ls) - 1; i >= 0; i-- {
		if strings.Contains(ls[i], `"user_id":"u7"`) {
			ls = append(ls[:i], ls[i+1:]...)
			break
		}
	}
	_, err = audit.VerifyFile(bytes.NewReader(joinLines(ls)), audit.VerifyOptions{Keys: signer.Keys()})
	if !errors.Is(err, audit.ErrTampered) || !strings.Contains(err.Error(), "1 records missing") {
		t.Fatalf("got %v, want a missing record", err)
	}
}

// Sink files carry no trailer and may repeat records after a failure; both
// are fine.
func TestVerifySinkStreamWithDuplicates(t *testing.T) {
	node, signer, _ := journalWithCheckpoints(t, 30)
	ls := splitLines(export(t, node, signer, audit.Filter{}))
	body := recordLines(ls)
	replay := append(append([]string{}, body...), body[10:20]...)
	replay = append(replay, body[20:]...)
	rep, err := audit.VerifyFile(bytes.NewReader(joinLines(replay)), audit.VerifyOptions{Keys: signer.Keys()})
	if err != nil {
		t.Fatal(err)
	}
	if rep.Duplicates != uint64(len(body)-10) || rep.Trailer {
		t.Fatalf("report %+v: want %d duplicates, no trailer", rep, len(body)-10)
	}
}
