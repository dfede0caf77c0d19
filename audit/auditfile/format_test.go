package auditfile_test

import (
	"bytes"
	"crypto/ed25519"
	"encoding/base64"
	"errors"
	"reflect"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/ferryvpn/ferry/audit/auditfile"
)

// writeFile builds an export of records the way the journal chains them,
// with a checkpoint after every tenth record, and a signed trailer.
func writeFile(t testing.TB, s *auditfile.Signer, n int) []byte {
	t.Helper()
	var out []byte
	add := func(l *auditfile.Line) {
		var err error
		if out, err = auditfile.AppendLine(out, l); err != nil {
			t.Fatal(err)
		}
		out = append(out, '\n')
	}
	at := time.Date(2026, 1, 2, 3, 4, 5, 0, time.UTC)
	add(&auditfile.Line{Export: &auditfile.Header{Version: 1, Filter: "all", Time: at}})
	d := auditfile.NewDigest()
	var prev auditfile.Hash
	var seq uint64
	record := func(data []byte, raw bool) {
		seq++
		h := auditfile.ChainHash(prev, seq, data)
		l := auditfile.Line{Seq: seq, PrevHash: prev, Hash: h}
		if raw {
			l.Record = data
		} else {
			l.Data = data
		}
		add(&l)
		d.Add(seq, h)
		prev = h
	}
	for i := 1; i <= n; i++ {
		switch {
		case i%10 == 0:
			cp := auditfile.Checkpoint{Seq: seq, Hash: prev, Time: at, Node: "n1"}
			s.SignCheckpoint(&cp)
			b, err := auditfile.EncodeCheckpoint(&cp)
			if err != nil {
				t.Fatal(err)
			}
			record(b, true)
		case i%7 == 0:
			record([]byte("not json\nat all"), false)
		default:
			record([]byte(`{"id":"e`+strings.Repeat("x", i%5)+strconv.Itoa(i)+`","type":"auth.login"}`), true)
		}
	}
	tr := &auditfile.Trailer{First: 1, Last: seq, Count: d.Count(), Digest: d.Sum(), LastHash: prev, Filter: "all", Time: at}
	s.SignTrailer(tr)
	add(&auditfile.Line{End: tr})
	return out
}

func testSigner() *auditfile.Signer {
	return auditfile.NewSigner(ed25519.NewKeyFromSeed(bytes.Repeat([]byte{7}, ed25519.SeedSize)))
}

func TestRoundTrip(t *testing.T) {
	s := testSigner()
	file := writeFile(t, s, 45)
	rep, err := auditfile.VerifyFile(bytes.NewReader(file), auditfile.VerifyOptions{Keys: s.Keys(), RequireTrailer: true})
	if err != nil {
		t.Fatal(err)
	}
	want := auditfile.Report{Records: 45, Events: 35, Checkpoints: 4, First: 1, Last: 45, Signed: 45, Anchored: true, Trailer: true}
	if rep.Problems != nil || rep.Unsigned != 0 {
		t.Fatalf("problems %+v, unsigned %d", rep.Problems, rep.Unsigned)
	}
	rep.Problems = nil
	if !reflect.DeepEqual(rep, want) {
		t.Fatalf("report %+v, want %+v", rep, want)
	}
	if got := rep.Summary(); got != "45 records (1..45, 35 events, 4 checkpoints) verified; signed through 45" {
		t.Errorf("summary %q", got)
	}
	// Every line parses back to what was written.
	for i, b := range bytes.Split(bytes.TrimSuffix(file, []byte("\n")), []byte("\n")) {
		l, err := auditfile.ParseLine(b)
		if err != nil {
			t.Fatalf("line %d: %v", i+1, err)
		}
		again, err := auditfile.AppendLine(nil, &l)
		if err != nil || !bytes.Equal(again, b) {
			t.Fatalf("line %d does not round-trip (%v):\n%s\n%s", i+1, err, b, again)
		}
	}
}

func TestKeys(t *testing.T) {
	s := testSigner()
	rec := `{"key_id":"` + s.KeyID() + `","public_key":"` + encode(s.Public()) + `"}`
	keys, err := auditfile.ParseKeys([]byte(rec))
	if err != nil || !keys[s.KeyID()].Equal(s.Public()) {
		t.Fatalf("ParseKeys: %v %v", keys, err)
	}
	for name, bad := range map[string]string{
		"not json":      `{`,
		"short key":     `{"key_id":"` + s.KeyID() + `","public_key":"AAAA"}`,
		"wrong key id":  `{"key_id":"0000000000000000","public_key":"` + encode(s.Public()) + `"}`,
		"missing field": `{"key_id":"` + s.KeyID() + `"}`,
	} {
		if _, err := auditfile.ParseKeys([]byte(bad)); !errors.Is(err, auditfile.ErrMalformed) {
			t.Errorf("%s: %v", name, err)
		}
	}
	if _, err := auditfile.VerifyFile(strings.NewReader(""), auditfile.VerifyOptions{}); !errors.Is(err, auditfile.ErrNoKey) {
		t.Errorf("no keys: %v", err)
	}
	if got := s.String(); strings.Contains(got, encode(s.Public())) || !strings.Contains(got, s.KeyID()) {
		t.Errorf("String() = %q", got)
	}
}

// encode is how encoding/json writes a []byte.
func encode(b []byte) string { return base64.StdEncoding.EncodeToString(b) }

// FuzzVerifyFile feeds arbitrary files to the verifier: it must never
// panic, and whatever it rejects it rejects with a TamperError or a
// malformed-input error.
func FuzzVerifyFile(f *testing.F) {
	s := testSigner()
	file := writeFile(f, s, 23)
	f.Add(file)
	f.Add(file[:len(file)/2])
	f.Add([]byte(`{"seq":1,"prev_hash":"","hash":"","data":""}`))
	f.Add([]byte("{\"export\":{}}\n{\"end\":{}}\n"))
	// Stubs of pruned records: one, one whose count overflows, two
	// overlapping, one inside a file.
	stub := func(seq, n uint64) []byte {
		b, _ := auditfile.AppendLine(nil, &auditfile.Line{Seq: seq, Pruned: n})
		return append(b, '\n')
	}
	f.Add(stub(1, 3))
	f.Add(stub(5, ^uint64(0)))
	f.Add(append(stub(4, 10), stub(2, 5)...))
	f.Add(append(append([]byte(nil), file[:len(file)/3]...), stub(9, 4)...))
	f.Fuzz(func(t *testing.T, b []byte) {
		_, err := auditfile.VerifyFile(bytes.NewReader(b), auditfile.VerifyOptions{Keys: s.Keys()})
		var te *auditfile.TamperError
		if err != nil && !errors.As(err, &te) && !errors.Is(err, auditfile.ErrMalformed) {
			t.Fatalf("unexpected error kind: %v", err)
		}
	})
}

// A file of many batches (the verifier reads lines into batches it reuses
// once verified) verifies in full, and problems far apart, in different
// batches, are each reported: a batch reused too early would lose or
// mix up lines.
func TestVerifyManyBatches(t *testing.T) {
	s := testSigner()
	file := writeFile(t, s, 5000)
	rep, err := auditfile.VerifyFile(bytes.NewReader(file), auditfile.VerifyOptions{Keys: s.Keys(), RequireTrailer: true})
	if err != nil || rep.Records != 5000 || rep.Signed != 5000 {
		t.Fatalf("%+v, %v", rep, err)
	}
	ls := bytes.Split(file, []byte("\n"))
	for _, seq := range []int{7 * 11, 7 * 301, 7 * 701} { // lines holding "not json" records
		i := seq // line 0 is the header: line seq holds record seq
		if !bytes.Contains(ls[i], []byte(`"data":"`)) {
			t.Fatalf("line %d: %s", i, ls[i])
		}
		ls[i] = bytes.Replace(ls[i], []byte(`"data":"`), []byte(`"data":"AAAA`), 1)
	}
	rep, err = auditfile.VerifyFile(bytes.NewReader(bytes.Join(ls, []byte("\n"))), auditfile.VerifyOptions{Keys: s.Keys(), RequireTrailer: true})
	var edited []uint64
	for _, p := range rep.Problems {
		if p.Kind == auditfile.Edited {
			edited = append(edited, p.First)
		}
	}
	if !errors.Is(err, auditfile.ErrTampered) || !reflect.DeepEqual(edited, []uint64{77, 2107, 4907}) || rep.Records != 5000 {
		t.Fatalf("edited %v, report %+v, %v", edited, rep, err)
	}
}
