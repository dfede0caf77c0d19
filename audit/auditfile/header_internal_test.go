package auditfile

import (
	"bytes"
	"crypto/ed25519"
	"errors"
	"strings"
	"testing"
	"time"
)

// Exports written with a version 2 header (signed on its own, before the
// export's first checkpoint covered the header) still verify, and an edit
// of such a header is still reported.
func TestVersion2HeaderVerifies(t *testing.T) {
	s := NewSigner(ed25519.NewKeyFromSeed(bytes.Repeat([]byte{9}, ed25519.SeedSize)))
	at := time.Date(2026, 3, 1, 0, 0, 0, 0, time.UTC)
	h := &Header{Version: 2, Filter: "all", Time: at, KeyID: s.KeyID()}
	h.Sig = ed25519.Sign(s.priv, h.signedBytes())
	var out []byte
	add := func(l *Line) {
		b, err := AppendLine(nil, l)
		if err != nil {
			t.Fatal(err)
		}
		out = append(append(out, b...), '\n')
	}
	add(&Line{Export: h})
	d := NewDigest()
	var prev Hash
	for seq := uint64(1); seq <= 3; seq++ {
		data := []byte(`{"id":"e` + string(rune('0'+seq)) + `","type":"auth.login"}`)
		hh := ChainHash(prev, seq, data)
		add(&Line{Seq: seq, PrevHash: prev, Hash: hh, Record: data})
		d.Add(seq, hh)
		prev = hh
	}
	tr := &Trailer{First: 1, Last: 3, Count: 3, Digest: d.Sum(), LastHash: prev, Filter: "all", Time: at}
	s.SignTrailer(tr)
	add(&Line{End: tr})
	rep, err := VerifyFile(bytes.NewReader(out), VerifyOptions{Keys: s.Keys(), RequireTrailer: true})
	if err != nil || !rep.HeaderSigned || !rep.Trailer || rep.Events != 3 {
		t.Fatalf("version 2 export: %+v, %v", rep, err)
	}
	edited := bytes.Replace(out, []byte(`"time":"2026-03-01`), []byte(`"time":"2025-03-01`), 1)
	rep, err = VerifyFile(bytes.NewReader(edited), VerifyOptions{Keys: s.Keys(), RequireTrailer: true})
	if !errors.Is(err, ErrTampered) || rep.HeaderSigned || !strings.Contains(err.Error(), "export header: invalid signature") {
		t.Fatalf("edited version 2 header: %+v, %v", rep, err)
	}
}
