package cluster

import (
	"encoding/binary"
	"errors"
	"fmt"
	"slices"
)

// Commands are replicated through the Raft log in a small binary format:
//
//	command = version(1) type(1) body
//	txn     = n(uvarint) compare*n  m(uvarint) op*m
//	txnj    = txn  k(uvarint) (key(bytes) record(bytes) at(uvarint))*k   (k > 0; at: RevisionAt)
//	compare = kind(1) key(bytes) version(uvarint) value(bytes)
//	op      = kind(1) key(bytes) value(bytes)
//	append  = n(uvarint) record(bytes)*n
//	batch   = n(uvarint) command(bytes)*n   (nested commands are not batches)
//	trim    = before(uvarint)
//	keyed   = n(uvarint) (key(bytes) record(bytes))*n
//	bytes   = len(uvarint) data
//
// Decoding checks every length against the package limits, so a corrupt or
// hostile entry yields an error, never a panic or a huge allocation.

const codecVersion = 1

type cmdType uint8

const (
	cmdTxn    cmdType = 1
	cmdAppend cmdType = 2
	cmdBatch  cmdType = 3
	cmdTrim   cmdType = 4
	// cmdAppendKeyed is an append whose records carry idempotency keys.
	cmdAppendKeyed cmdType = 5
	// cmdPrune replaces runs of journal records by stubs (prune.go).
	cmdPrune cmdType = 6
	// cmdTxnJournal is a transaction that carries journal records
	// (Txn.Journal). A transaction without is still encoded as cmdTxn,
	// byte for byte as before.
	cmdTxnJournal cmdType = 7
)

// maxBatch bounds how many commands one batch entry carries.
const maxBatch = 1 << 12

// command is the decoded form of one log entry (or one member of a batch).
type command struct {
	typ     cmdType
	txn     Txn
	records [][]byte
	keyed   []KeyedRecord
	batch   []command
	before  uint64 // trim: drop journal records with seq < before
	runs    []PruneRun
}

var errTruncated = errors.New("truncated")

func appendBytes(b, p []byte) []byte {
	b = binary.AppendUvarint(b, uint64(len(p)))
	return append(b, p...)
}

func encodeTxn(b []byte, t *Txn) []byte {
	typ := cmdTxn
	if len(t.Journal) > 0 {
		typ = cmdTxnJournal
	}
	b = append(b, codecVersion, byte(typ))
	b = binary.AppendUvarint(b, uint64(len(t.Compares)))
	for _, c := range t.Compares {
		b = append(b, byte(c.Kind))
		b = appendBytes(b, []byte(c.Key))
		b = binary.AppendUvarint(b, c.Version)
		b = appendBytes(b, c.Value)
	}
	b = binary.AppendUvarint(b, uint64(len(t.Ops)))
	for _, o := range t.Ops {
		b = append(b, byte(o.Kind))
		b = appendBytes(b, []byte(o.Key))
		b = appendBytes(b, o.Value)
	}
	if typ == cmdTxnJournal {
		b = binary.AppendUvarint(b, uint64(len(t.Journal)))
		for _, r := range t.Journal {
			b = appendBytes(b, r.Key)
			b = appendBytes(b, r.Data)
			b = binary.AppendUvarint(b, uint64(r.RevisionAt))
		}
	}
	return b
}

func encodeAppend(b []byte, recs [][]byte) []byte {
	n := 2 + binary.MaxVarintLen32
	for _, r := range recs {
		n += len(r) + uvarintLen(uint64(len(r)))
	}
	b = slices.Grow(b, n)
	b = append(b, codecVersion, byte(cmdAppend))
	b = binary.AppendUvarint(b, uint64(len(recs)))
	for _, r := range recs {
		b = appendBytes(b, r)
	}
	return b
}

func encodeAppendKeyed(b []byte, recs []KeyedRecord) []byte {
	n := 2 + binary.MaxVarintLen32
	for _, r := range recs {
		n += len(r.Data) + len(r.Key) + 2*binary.MaxVarintLen32
	}
	b = slices.Grow(b, n)
	b = append(b, codecVersion, byte(cmdAppendKeyed))
	b = binary.AppendUvarint(b, uint64(len(recs)))
	for _, r := range recs {
		b = appendBytes(b, r.Key)
		b = appendBytes(b, r.Data)
	}
	return b
}

func encodeTrim(b []byte, before uint64) []byte {
	b = append(b, codecVersion, byte(cmdTrim))
	return binary.AppendUvarint(b, before)
}

// encodeBatch wraps already encoded commands into one batch entry.
func encodeBatch(cmds [][]byte) []byte {
	n := 3
	for _, c := range cmds {
		n += len(c) + binary.MaxVarintLen32
	}
	b := make([]byte, 0, n)
	b = append(b, codecVersion, byte(cmdBatch))
	b = binary.AppendUvarint(b, uint64(len(cmds)))
	for _, c := range cmds {
		b = appendBytes(b, c)
	}
	return b
}

// decoder reads the format above; the first error sticks.
type decoder struct {
	b   []byte
	err error
}

func (d *decoder) fail(err error) {
	if d.err == nil {
		d.err = err
	}
}

func (d *decoder) byte() byte {
	if d.err != nil {
		return 0
	}
	if len(d.b) < 1 {
		d.fail(errTruncated)
		return 0
	}
	c := d.b[0]
	d.b = d.b[1:]
	return c
}

func (d *decoder) uvarint() uint64 {
	if d.err != nil {
		return 0
	}
	v, n := binary.Uvarint(d.b)
	if n <= 0 {
		d.fail(errTruncated)
		return 0
	}
	if n != uvarintLen(v) {
		// One encoding per value, so every node reads an entry one way.
		d.fail(errors.New("non-minimal varint"))
		return 0
	}
	d.b = d.b[n:]
	return v
}

// count reads a element count and checks it against max and against what
// the remaining input could possibly hold (each element is at least one byte).
func (d *decoder) count(max int, what string) int {
	n := d.uvarint()
	if d.err == nil && (n > uint64(max) || n > uint64(len(d.b))) {
		d.fail(fmt.Errorf("%s count %d out of range", what, n))
	}
	if d.err != nil {
		return 0
	}
	return int(n)
}

// bytes returns a copy of the next length-prefixed field.
func (d *decoder) bytes(max int, what string) []byte {
	p := d.view(max, what)
	if p == nil {
		return nil
	}
	return append(make([]byte, 0, len(p)), p...)
}

// view returns the next length-prefixed field as a slice of the input,
// without copying it; the result is nil only on error.
func (d *decoder) view(max int, what string) []byte {
	n := d.uvarint()
	if d.err != nil {
		return nil
	}
	if n > uint64(max) {
		d.fail(fmt.Errorf("%s longer than %d bytes", what, max))
		return nil
	}
	if n > uint64(len(d.b)) {
		d.fail(errTruncated)
		return nil
	}
	p := d.b[:n:n]
	d.b = d.b[n:]
	return p
}

// decodeCommand decodes one log entry. It never panics on bad input.
// Journal records and batch members are slices of b, not copies: b must
// not change while the command is in use. Keys and values of transactions
// are copies, since watchers keep them.
func decodeCommand(b []byte) (command, error) {
	return decodeCommandDepth(b, 0)
}

func decodeCommandDepth(b []byte, depth int) (command, error) {
	d := &decoder{b: b}
	if v := d.byte(); d.err == nil && v != codecVersion {
		return command{}, fmt.Errorf("decoding command: unknown codec version %d", v)
	}
	c := command{typ: cmdType(d.byte())}
	switch c.typ {
	case cmdTxn, cmdTxnJournal:
		n := d.count(MaxTxnOps, "compare")
		for i := 0; i < n && d.err == nil; i++ {
			var cmp Compare
			cmp.Kind = CompareKind(d.byte())
			cmp.Key = string(d.bytes(MaxKeyLen, "key"))
			cmp.Version = d.uvarint()
			cmp.Value = d.bytes(MaxValueLen, "value")
			c.txn.Compares = append(c.txn.Compares, cmp)
		}
		n = d.count(MaxTxnOps, "op")
		for i := 0; i < n && d.err == nil; i++ {
			var op Op
			op.Kind = OpKind(d.byte())
			op.Key = string(d.bytes(MaxKeyLen, "key"))
			op.Value = d.bytes(MaxValueLen, "value")
			c.txn.Ops = append(c.txn.Ops, op)
		}
		if c.typ == cmdTxnJournal {
			n = d.count(MaxTxnOps, "journal record")
			if d.err == nil && n == 0 {
				d.fail(errors.New("transaction journal without records"))
			}
			for i := 0; i < n && d.err == nil; i++ {
				var r TxnRecord
				r.Key = d.bytes(MaxJournalKeyLen, "journal key")
				r.Data = d.bytes(MaxRecordLen, "record")
				at := d.uvarint()
				if d.err == nil && at > uint64(len(r.Data)) {
					d.fail(fmt.Errorf("revision offset %d outside record", at))
				}
				r.RevisionAt = int(at)
				c.txn.Journal = append(c.txn.Journal, r)
			}
		}
	case cmdAppend:
		n := d.count(MaxAppendRecs, "record")
		c.records = make([][]byte, 0, n)
		for i := 0; i < n && d.err == nil; i++ {
			c.records = append(c.records, d.view(MaxRecordLen, "record"))
		}
	case cmdAppendKeyed:
		n := d.count(MaxAppendRecs, "record")
		c.keyed = make([]KeyedRecord, 0, n)
		for i := 0; i < n && d.err == nil; i++ {
			k := d.view(MaxJournalKeyLen, "journal key")
			c.keyed = append(c.keyed, KeyedRecord{Key: k, Data: d.view(MaxRecordLen, "record")})
		}
	case cmdTrim:
		c.before = d.uvarint()
	case cmdPrune:
		n := d.count(MaxPruneRuns, "prune run")
		c.runs = make([]PruneRun, 0, n)
		for i := 0; i < n && d.err == nil; i++ {
			c.runs = append(c.runs, PruneRun{First: d.uvarint(), Last: d.uvarint()})
		}
	case cmdBatch:
		if depth > 0 {
			d.fail(errors.New("nested batch"))
			break
		}
		n := d.count(maxBatch, "batch")
		for i := 0; i < n && d.err == nil; i++ {
			raw := d.view(len(d.b), "batch member")
			if d.err != nil {
				break
			}
			sub, err := decodeCommandDepth(raw, depth+1)
			if err != nil {
				d.fail(fmt.Errorf("batch member %d: %w", i, err))
				break
			}
			c.batch = append(c.batch, sub)
		}
	default:
		if d.err == nil {
			d.fail(fmt.Errorf("unknown command type %d", c.typ))
		}
	}
	if d.err == nil && len(d.b) != 0 {
		d.fail(fmt.Errorf("%d trailing bytes", len(d.b)))
	}
	if d.err != nil {
		return command{}, fmt.Errorf("decoding command: %w", d.err)
	}
	return c, nil
}

func uvarintLen(v uint64) int {
	n := 1
	for v >= 0x80 {
		v >>= 7
		n++
	}
	return n
}
