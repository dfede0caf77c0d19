package audit

import (
	"bufio"
	"context"
	"fmt"
	"io"
	"time"

	"github.com/ferryvpn/ferry/audit/auditfile"
)

// The native export format, its parser and its verifier live in package
// auditfile (see its documentation), so that clients can verify exports
// without linking the cluster. This file writes it.

// JSONLines is the native format: auditfile's lines, which carry the chain
// fields and the exact record, so files and streams in this format can be
// verified offline.
type JSONLines struct{}

// Name returns "json".
func (JSONLines) Name() string { return "json" }

// Append appends e's export line.
func (JSONLines) Append(dst []byte, e *Entry) ([]byte, error) {
	l := auditfile.Line{Seq: e.Seq, PrevHash: e.PrevHash, Hash: e.Hash}
	if e.Pruned > 0 {
		l.Pruned = e.Pruned
		return auditfile.AppendLine(dst, &l)
	}
	if e.rawJSON() {
		l.Record = e.Data
	} else {
		l.Data = e.Data
	}
	return auditfile.AppendLine(dst, &l)
}

// Header opens a pull export (auditfile.Header).
type Header = auditfile.Header

// Trailer closes a pull export; its signature covers every field but Sig
// (auditfile.Trailer).
type Trailer = auditfile.Trailer

// ExportOptions selects what Export writes.
type ExportOptions struct {
	// Filter selects records; the zero Filter selects all.
	Filter Filter
	// Format is the output format; default JSONLines. Only JSONLines
	// exports get a header and a signed trailer.
	Format Format
	// Signer signs the export's first checkpoint, which covers the header,
	// and the trailer. Without one a JSONLines export has an unsigned
	// version 1 header and no trailer, and verification cannot detect
	// truncation.
	Signer *Signer
	// Now stamps the header and trailer; default time.Now.
	Now func() time.Time
}

// ExportStats reports what Export wrote.
type ExportStats struct {
	Records     uint64
	First, Last uint64
}

// Export writes the records opts.Filter selects from j to w, one per line,
// up to the journal head when it starts. It is what `ferryctl audit export`
// serves.
func Export(ctx context.Context, w io.Writer, j Journal, opts ExportOptions) (ExportStats, error) {
	f := opts.Format
	if f == nil {
		f = JSONLines{}
	}
	now := opts.Now
	if now == nil {
		now = time.Now
	}
	_, native := f.(JSONLines)
	bw := bufio.NewWriterSize(w, 64<<10)
	filter := opts.Filter.String()
	var buf []byte
	// The header opens a native export; with a signer, the export's first
	// checkpoint follows it, signing the header's digest and the hash of
	// the record before the first exported one, which is known only once
	// that record is read.
	var opened bool
	var headerDigest Hash // what the first checkpoint and the trailer sign
	open := func(first *Entry) error {
		if opened || !native {
			return nil
		}
		opened = true
		h := &Header{Version: 1, Filter: filter, Time: now().UTC()}
		if opts.Signer != nil {
			h.Version = auditfile.HeaderVersion
		}
		raw, err := auditfile.EncodeHeader(h)
		if err != nil {
			return err
		}
		if buf, err = auditfile.AppendLine(buf[:0], &auditfile.Line{Export: h}); err != nil {
			return err
		}
		bw.Write(append(buf, '\n'))
		if opts.Signer == nil {
			return nil
		}
		cp := &Checkpoint{Time: h.Time}
		if first != nil {
			cp.Seq, cp.Hash = first.Seq-1, first.PrevHash
		}
		if headerDigest, err = auditfile.HeaderDigest(raw); err != nil {
			return err
		}
		cp.Export = headerDigest
		opts.Signer.SignCheckpoint(cp)
		if buf, err = auditfile.AppendLine(buf[:0], &auditfile.Line{Checkpoint: cp}); err != nil {
			return err
		}
		_, err = bw.Write(append(buf, '\n'))
		return err
	}
	var st ExportStats
	d := auditfile.NewDigest()
	var lastHash Hash
	err := Scan(ctx, j, opts.Filter, func(e *Entry) error {
		if err := open(e); err != nil {
			return err
		}
		var err error
		if buf, err = f.Append(buf[:0], e); err != nil {
			return fmt.Errorf("formatting record %d: %w", e.Seq, err)
		}
		if _, err := bw.Write(append(buf, '\n')); err != nil {
			return err
		}
		if st.Records == 0 {
			st.First = e.Seq
		}
		st.Records++
		st.Last = e.LastSeq()
		d.Add(e.Seq, e.Hash)
		lastHash = e.Hash
		return nil
	})
	if err != nil {
		return st, err
	}
	if err := open(nil); err != nil {
		return st, err
	}
	if native && opts.Signer != nil {
		t := &Trailer{First: st.First, Last: st.Last, Count: d.Count(), Digest: d.Sum(), LastHash: lastHash,
			Filter: filter, Time: now().UTC(), Header: headerDigest}
		opts.Signer.SignTrailer(t)
		if buf, err = auditfile.AppendLine(buf[:0], &auditfile.Line{End: t}); err != nil {
			return st, err
		}
		bw.Write(append(buf, '\n'))
	}
	return st, bw.Flush()
}
