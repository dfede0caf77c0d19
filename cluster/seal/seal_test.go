package seal

import (
	"bytes"
	"errors"
	"testing"
)

// testKey returns a fresh random key or fails the test.
func testKey(t testing.TB) Key {
	t.Helper()
	k, err := GenerateKey()
	if err != nil {
		t.Fatalf("GenerateKey: %v", err)
	}
	return k
}

func TestSealOpenRoundTrip(t *testing.T) {
	k := testKey(t)
	tests := []struct {
		name      string
		plaintext []byte
		ad        []byte
	}{
		{name: "empty plaintext and ad", plaintext: nil, ad: nil},
		{name: "empty plaintext", plaintext: []byte{}, ad: []byte("totp/alice")},
		{name: "short", plaintext: []byte("JBSWY3DPEHPK3PXP"), ad: []byte("totp/alice")},
		{name: "binary", plaintext: bytes.Repeat([]byte{0, 0xff}, 1000), ad: []byte("wireguard/interface-key")},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			sealed, err := Seal(k, tt.plaintext, tt.ad)
			if err != nil {
				t.Fatalf("Seal: %v", err)
			}
			if got, want := len(sealed), len(tt.plaintext)+Overhead; got != want {
				t.Errorf("len(sealed) = %d, want %d", got, want)
			}
			if sealed[0] != version1 {
				t.Errorf("version byte = %#x, want %#x", sealed[0], version1)
			}
			if len(tt.plaintext) >= 8 && bytes.Contains(sealed, tt.plaintext) {
				t.Errorf("sealed value contains the plaintext")
			}
			got, err := Open(k, sealed, tt.ad)
			if err != nil {
				t.Fatalf("Open: %v", err)
			}
			if !bytes.Equal(got, tt.plaintext) {
				t.Errorf("Open = %q, want %q", got, tt.plaintext)
			}
		})
	}
}

func TestSealUsesFreshNonces(t *testing.T) {
	k := testKey(t)
	a, err := Seal(k, []byte("same"), nil)
	if err != nil {
		t.Fatal(err)
	}
	b, err := Seal(k, []byte("same"), nil)
	if err != nil {
		t.Fatal(err)
	}
	if bytes.Equal(a[1:1+nonceSize], b[1:1+nonceSize]) {
		t.Errorf("two Seal calls used the same nonce")
	}
}

func TestOpenRejects(t *testing.T) {
	k, other := testKey(t), testKey(t)
	ad := []byte("totp/alice")
	sealed, err := Seal(k, []byte("JBSWY3DPEHPK3PXP"), ad)
	if err != nil {
		t.Fatal(err)
	}
	sealedBob, err := Seal(k, []byte("KRSXG5CTMVRXEZLU"), []byte("totp/bob"))
	if err != nil {
		t.Fatal(err)
	}
	withVersion := func(v byte) []byte {
		b := bytes.Clone(sealed)
		b[0] = v
		return b
	}

	tests := []struct {
		name   string
		key    Key
		sealed []byte
		ad     []byte
		want   error
	}{
		{name: "wrong key", key: other, sealed: sealed, ad: ad, want: ErrDecrypt},
		{name: "wrong associated data", key: k, sealed: sealed, ad: []byte("totp/bob"), want: ErrDecrypt},
		{name: "missing associated data", key: k, sealed: sealed, ad: nil, want: ErrDecrypt},
		{name: "value swapped between records", key: k, sealed: sealedBob, ad: ad, want: ErrDecrypt},
		{name: "appended byte", key: k, sealed: append(bytes.Clone(sealed), 0), ad: ad, want: ErrDecrypt},
		{name: "nil", key: k, sealed: nil, ad: ad, want: ErrDecrypt},
		{name: "version zero", key: k, sealed: withVersion(0x00), ad: ad, want: ErrVersion},
		{name: "version two", key: k, sealed: withVersion(0x02), ad: ad, want: ErrVersion},
		{name: "zero key", key: Key{}, sealed: sealed, ad: ad, want: ErrZeroKey},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			got, err := Open(tt.key, tt.sealed, tt.ad)
			if !errors.Is(err, tt.want) {
				t.Fatalf("Open error = %v, want %v", err, tt.want)
			}
			if got != nil {
				t.Errorf("Open returned plaintext %q with an error", got)
			}
		})
	}
}

func TestOpenRejectsEveryTamperedByte(t *testing.T) {
	k := testKey(t)
	ad := []byte("totp/alice")
	sealed, err := Seal(k, []byte("JBSWY3DPEHPK3PXP"), ad)
	if err != nil {
		t.Fatal(err)
	}
	for i := range sealed {
		for _, mask := range []byte{0x01, 0x80, 0xff} {
			tampered := bytes.Clone(sealed)
			tampered[i] ^= mask
			_, err := Open(k, tampered, ad)
			want := ErrDecrypt
			if i == 0 {
				want = ErrVersion
			}
			if !errors.Is(err, want) {
				t.Errorf("byte %d ^ %#x: Open error = %v, want %v", i, mask, err, want)
			}
		}
	}
}

func TestOpenRejectsEveryTruncation(t *testing.T) {
	k := testKey(t)
	ad := []byte("totp/alice")
	sealed, err := Seal(k, []byte("JBSWY3DPEHPK3PXP"), ad)
	if err != nil {
		t.Fatal(err)
	}
	for n := range len(sealed) {
		for _, in := range [][]byte{sealed[:n], sealed[len(sealed)-n:]} {
			got, err := Open(k, in, ad)
			if err == nil {
				t.Errorf("Open of %d-byte truncation = %q, want an error", n, got)
			}
		}
	}
}

func TestSealRejectsZeroKey(t *testing.T) {
	if _, err := Seal(Key{}, []byte("x"), nil); !errors.Is(err, ErrZeroKey) {
		t.Errorf("Seal with zero key: error = %v, want %v", err, ErrZeroKey)
	}
}

func TestDeriveKey(t *testing.T) {
	k, other := testKey(t), testKey(t)
	join := DeriveKey(k, "join-token")
	tests := []struct {
		name  string
		got   []byte
		equal bool
	}{
		{name: "deterministic", got: DeriveKey(k, "join-token"), equal: true},
		{name: "other purpose", got: DeriveKey(k, "audit-checkpoint"), equal: false},
		{name: "other key", got: DeriveKey(other, "join-token"), equal: false},
		{name: "not the master key", got: k.k[:], equal: false},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			if len(tt.got) != 32 {
				t.Fatalf("len = %d, want 32", len(tt.got))
			}
			if bytes.Equal(tt.got, join) != tt.equal {
				t.Errorf("equal to DeriveKey(k, %q) = %v, want %v", "join-token", !tt.equal, tt.equal)
			}
		})
	}
}

func FuzzOpen(f *testing.F) {
	k, err := GenerateKey()
	if err != nil {
		f.Fatal(err)
	}
	valid, err := Seal(k, []byte("JBSWY3DPEHPK3PXP"), []byte("totp/alice"))
	if err != nil {
		f.Fatal(err)
	}
	f.Add(valid, []byte("totp/alice"))
	f.Add([]byte{}, []byte{})
	f.Add([]byte{version1}, []byte("x"))
	f.Add(make([]byte, Overhead), []byte(nil))
	f.Fuzz(func(t *testing.T, sealed, ad []byte) {
		got, err := Open(k, sealed, ad)
		if err == nil {
			// Only the seeded value may open: anything else would be a forgery.
			if !bytes.Equal(sealed, valid) || string(ad) != "totp/alice" {
				t.Fatalf("Open accepted a value that Seal did not produce: %x", sealed)
			}
			if string(got) != "JBSWY3DPEHPK3PXP" {
				t.Fatalf("Open = %q", got)
			}
		}
	})
}
