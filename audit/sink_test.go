package audit_test

import (
	"context"
	"encoding/json"
	"errors"
	"os"
	"path/filepath"
	"sort"
	"strings"
	"testing"

	"github.com/ferryvpn/ferry/audit"
	"github.com/ferryvpn/ferry/audit/audittest"
)

func entries(from, n int) []audit.Entry {
	out := make([]audit.Entry, n)
	for i := range out {
		out[i] = entryFor(loginEvent(from+i), uint64(from+i))
	}
	return out
}

func tokenFile(t *testing.T, tok string) string {
	p := filepath.Join(t.TempDir(), "hec.token")
	if err := os.WriteFile(p, []byte(tok+"\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	return p
}

func TestHECSink(t *testing.T) {
	tests := []struct {
		name string
		ack  bool
		run  func(t *testing.T, h *audittest.HEC, s *audit.HECSink, tokPath string)
	}{
		{"delivers batches gzip-compressed with the token", false, func(t *testing.T, h *audittest.HEC, s *audit.HECSink, _ string) {
			c, err := s.Send(context.Background(), entries(1, 50))
			if err != nil || c != 50 {
				t.Fatalf("confirmed %d, %v; want 50", c, err)
			}
			evs := h.Events()
			if len(evs) != 50 {
				t.Fatalf("%d events indexed, want 50", len(evs))
			}
			var line struct {
				Seq    uint64      `json:"seq"`
				Record audit.Event `json:"record"`
			}
			if err := json.Unmarshal(evs[49], &line); err != nil || line.Seq != 50 || line.Record.Type != audit.TypeLogin {
				t.Fatalf("event 50 = %s (%v)", evs[49], err)
			}
			if m := h.Meta(0); string(m["sourcetype"]) != `"ferry:audit"` || string(m["host"]) != `"n1"` || !strings.HasPrefix(string(m["time"]), "1770091506.789") {
				t.Fatalf("metadata %s", m)
			}
			if posts, gz, _ := h.Stats(); posts != 1 || gz != 1 {
				t.Fatalf("%d posts, %d gzipped; want 1 batch, compressed", posts, gz)
			}
		}},
		{"server busy is an error, then delivery resumes", false, func(t *testing.T, h *audittest.HEC, s *audit.HECSink, _ string) {
			h.FailNext(2, 503, 9, "Server is busy")
			for i := 0; i < 2; i++ {
				_, err := s.Send(context.Background(), entries(1, 5))
				var he *audit.HECError
				if !errors.As(err, &he) || he.Status != 503 || he.Code != 9 {
					t.Fatalf("attempt %d: got %v, want HEC 503 code 9", i, err)
				}
				s.Reset()
			}
			if c, err := s.Send(context.Background(), entries(1, 5)); err != nil || c != 5 {
				t.Fatalf("after busy: %d, %v", c, err)
			}
		}},
		{"invalid token re-reads the token file", false, func(t *testing.T, h *audittest.HEC, s *audit.HECSink, tokPath string) {
			os.WriteFile(tokPath, []byte("wrong\n"), 0o600)
			h.FailNext(1, 403, 4, "Invalid token") // the sink still holds the right token: force a rejection
			_, err := s.Send(context.Background(), entries(1, 1))
			var he *audit.HECError
			if !errors.As(err, &he) || he.Status != 403 || he.Code != 4 {
				t.Fatalf("got %v, want 403 code 4", err)
			}
			if _, err := s.Send(context.Background(), entries(1, 1)); !errors.As(err, &he) || he.Status != 403 {
				t.Fatalf("with the wrong token re-read: %v, want 403", err)
			}
			os.WriteFile(tokPath, []byte(h.Token()+"\n"), 0o600)
			if c, err := s.Send(context.Background(), entries(1, 1)); !errors.As(err, &he) || c != 0 {
				t.Fatalf("token re-read only after a rejection: %d, %v", c, err)
			}
			if c, err := s.Send(context.Background(), entries(1, 1)); err != nil || c != 1 {
				t.Fatalf("with the token restored: %d, %v", c, err)
			}
		}},
		{"invalid data format is reported with its code", false, func(t *testing.T, h *audittest.HEC, s *audit.HECSink, _ string) {
			h.FailNext(1, 400, 6, "Invalid data format")
			_, err := s.Send(context.Background(), entries(1, 1))
			var he *audit.HECError
			if !errors.As(err, &he) || he.Code != 6 || !strings.Contains(err.Error(), "Invalid data format") {
				t.Fatalf("got %v", err)
			}
		}},
		{"with acknowledgement, delivery waits for the indexer", true, func(t *testing.T, h *audittest.HEC, s *audit.HECSink, _ string) {
			c, err := s.Send(context.Background(), entries(1, 10))
			if err != nil || c != 0 {
				t.Fatalf("first send confirmed %d, %v; want 0 before any ack", c, err)
			}
			c, err = s.Send(context.Background(), entries(11, 10))
			if err != nil || c != 10 {
				t.Fatalf("second send confirmed %d, %v; want 10 (first batch acked)", c, err)
			}
			c, err = s.Send(context.Background(), nil)
			if err != nil || c != 20 {
				t.Fatalf("poll confirmed %d, %v; want 20", c, err)
			}
		}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			h := audittest.NewHEC(t, audittest.HECOptions{Ack: tt.ack, AckAfterPolls: 1})
			tok := tokenFile(t, h.Token())
			s, err := audit.NewHECSink(audit.HECSinkConfig{URL: h.URL, TokenFile: tok, Ack: tt.ack})
			if err != nil {
				t.Fatal(err)
			}
			defer s.Close()
			tt.run(t, h, s, tok)
		})
	}
}

// A sink's index reaches the receiver in every event's metadata; without
// one, events carry no index (the token's default index applies).
func TestHECSinkIndex(t *testing.T) {
	for _, index := range []string{"security", ""} {
		h := audittest.NewHEC(t, audittest.HECOptions{})
		s, err := audit.NewHECSink(audit.HECSinkConfig{URL: h.URL, TokenFile: tokenFile(t, h.Token()), Index: index})
		if err != nil {
			t.Fatal(err)
		}
		if c, err := s.Send(context.Background(), entries(1, 3)); err != nil || c != 3 {
			t.Fatalf("confirmed %d, %v", c, err)
		}
		s.Close()
		for i := range 3 {
			got, ok := h.Meta(i)["index"]
			if want := `"` + index + `"`; index != "" && string(got) != want || index == "" && ok {
				t.Fatalf("index %q: event %d metadata %s", index, i, h.Meta(i))
			}
		}
	}
}

func TestFileSinkRotates(t *testing.T) {
	dir := t.TempDir()
	path := filepath.Join(dir, "audit.jsonl")
	s, err := audit.NewFileSink(audit.FileSinkConfig{Path: path, MaxBytes: 8 << 10, MaxFiles: 100})
	if err != nil {
		t.Fatal(err)
	}
	defer s.Close()
	// A real chain, so the files verify.
	c := startCluster(t, 1)
	l := newLog(t, c.Node(0))
	for i := 0; i < 200; i++ {
		l.Record(context.Background(), loginEvent(i))
	}
	var all []audit.Entry
	audit.Scan(context.Background(), c.Node(0), audit.Filter{}, func(e *audit.Entry) error { all = append(all, *e); return nil })
	for i := 0; i < len(all); i += 5 {
		if got, err := s.Send(context.Background(), all[i:i+5]); err != nil || got != all[i+4].Seq {
			t.Fatalf("send: %d, %v", got, err)
		}
	}
	files, _ := filepath.Glob(path + ".*Z") // rotated files, not the cursor
	sort.Strings(files)
	if len(files) < 3 {
		t.Fatalf("%d rotated files, want several", len(files))
	}
	var cat []byte
	for _, f := range append(files, path) {
		b, err := os.ReadFile(f)
		if err != nil {
			t.Fatal(err)
		}
		if len(b) > 8<<10 {
			t.Fatalf("%s is %d bytes, over the limit", f, len(b))
		}
		cat = append(cat, b...)
	}
	rep, err := audit.VerifyFile(strings.NewReader(string(cat)), audit.VerifyOptions{SkipSignatures: true, AcceptUnsignedTail: true})
	if err != nil || rep.Records != 200 {
		t.Fatalf("rotated files: %+v, %v", rep, err)
	}
	s2, _ := audit.NewFileSink(audit.FileSinkConfig{Path: path, MaxBytes: 8 << 10, MaxFiles: 2})
	s2.Send(context.Background(), all[:60])
	s2.Close()
	if files, _ := filepath.Glob(path + ".*Z"); len(files) != 2 {
		t.Fatalf("%d rotated files kept, want 2", len(files))
	}
}

// The file sink creates its directory (0700) and keeps its cursor beside
// the file; a new sink on the same path resumes after the last record.
func TestFileSinkCreatesDirAndKeepsCursor(t *testing.T) {
	dir := filepath.Join(t.TempDir(), "missing", "audit")
	path := filepath.Join(dir, "audit.jsonl")
	s, err := audit.NewFileSink(audit.FileSinkConfig{Path: path})
	if err != nil {
		t.Fatal(err)
	}
	if c, err := s.Send(context.Background(), entries(1, 10)); err != nil || c != 10 {
		t.Fatalf("send: %d, %v", c, err)
	}
	s.Close()
	fi, err := os.Stat(dir)
	if err != nil || fi.Mode().Perm() != 0o700 {
		t.Fatalf("directory: %v, %v; want created with 0700", fi, err)
	}
	s2, _ := audit.NewFileSink(audit.FileSinkConfig{Path: path})
	if c, err := s2.Cursor(); err != nil || c != 10 {
		t.Fatalf("cursor %d, %v; want 10", c, err)
	}
}
