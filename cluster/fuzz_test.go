package cluster

import (
	"bytes"
	"crypto/sha256"
	"path/filepath"
	"testing"

	"github.com/hashicorp/raft"
)

func FuzzDecodeCommand(f *testing.F) {
	f.Add(encodeTxn(nil, &Txn{Compares: []Compare{IfVersion("a", 3), IfValue("b", []byte("x"))}, Ops: []Op{Put("a", []byte("v")), DeletePrefix("p/")}}))
	f.Add(encodeAppend(nil, [][]byte{[]byte("one"), nil}))
	f.Add(encodeTxn(nil, &Txn{Compares: []Compare{IfVersion("u", 2)}, Ops: []Op{Put("u", []byte("v"))},
		Journal: []TxnRecord{{Key: []byte("ev"), Data: []byte(`{"v":}`), RevisionAt: 5}, {Data: []byte("x")}}}))
	f.Add(encodeTrim(nil, 1<<40))
	f.Add(encodePrune(nil, []PruneRun{{3, 5}, {8, 1 << 40}}))
	f.Add([]byte{codecVersion, byte(cmdPrune), 0xff, 0xff, 0xff, 0xff, 0x0f})
	f.Add(encodeBatch([][]byte{encodeAppend(nil, [][]byte{[]byte("r")}), encodeTxn(nil, &Txn{Ops: []Op{Delete("k")}})}))
	f.Add([]byte{codecVersion, byte(cmdBatch), 0xff, 0xff, 0xff, 0xff, 0x0f})
	f.Fuzz(func(t *testing.T, data []byte) {
		c, err := decodeCommand(data)
		if err != nil {
			return
		}
		// Whatever decodes re-encodes to the same bytes (one encoding per
		// command), so every node reads an entry the same way.
		var again []byte
		switch c.typ {
		case cmdTxn, cmdTxnJournal:
			again = encodeTxn(nil, &c.txn)
		case cmdAppend:
			again = encodeAppend(nil, c.records)
		case cmdAppendKeyed:
			again = encodeAppendKeyed(nil, c.keyed)
		case cmdTrim:
			again = encodeTrim(nil, c.before)
		case cmdPrune:
			again = encodePrune(nil, c.runs)
		case cmdBatch:
			return // members are re-encoded individually above
		}
		if !bytes.Equal(again, data) {
			t.Fatalf("decode/encode mismatch:\n in  %x\n out %x", data, again)
		}
	})
}

func FuzzRestoreSnapshot(f *testing.F) {
	good, _ := newFuzzFSMSnapshot(f)
	f.Add(good)
	f.Add(good[:len(good)/2])
	f.Add([]byte("FERRYSN1"))
	f.Add([]byte("FERRYSN1\x02\xff\xff\xff\xff\x0f"))
	f.Fuzz(func(t *testing.T, data []byte) {
		path := filepath.Join(t.TempDir(), "state.db")
		if err := buildState(path, bytes.NewReader(data)); err != nil {
			return
		}
		// Only a stream with its own checksum intact is ever accepted.
		n := len(data) - sha256.Size
		if n < len(snapMagic) {
			t.Fatalf("accepted %d bytes", len(data))
		}
		if sum := sha256.Sum256(data[:n]); !bytes.Equal(sum[:], data[n:]) {
			t.Fatalf("accepted a snapshot whose checksum does not match: %x", data)
		}
	})
}

func newFuzzFSMSnapshot(f *testing.F) ([]byte, error) {
	path := filepath.Join(f.TempDir(), "state.db")
	s, err := openFSM(path, newWatchHub())
	if err != nil {
		f.Fatal(err)
	}
	defer s.close()
	s.Apply(&raft.Log{Index: 1, Type: raft.LogCommand, Data: encodeTxn(nil, &Txn{Ops: []Op{Put("k", []byte("v"))}})})
	s.Apply(&raft.Log{Index: 2, Type: raft.LogCommand, Data: encodeAppend(nil, [][]byte{[]byte("r")})})
	var buf bytes.Buffer
	_, err = (&Node{fsm: s}).Backup(&buf)
	if err != nil {
		f.Fatal(err)
	}
	return buf.Bytes(), nil
}
