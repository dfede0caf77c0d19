// Package auditfile is ferry's native audit export format and its offline
// verifier: the line encoding (header, the export's first checkpoint,
// records with their chain fields, signed trailer), the journal hash, checkpoints and their signatures, the
// audit public key, and [VerifyFile], which names the first record of a
// file that was edited, deleted, reordered or cut off.
//
// It is the part of package audit that needs no cluster: it imports only
// the standard library, so the admin CLI (ferryctl) can verify an export
// on any machine without linking Raft or bbolt. Package audit writes the
// journal, the checkpoints and the exports, and re-exports this package's
// types under its own names (audit.Report is auditfile.Report).
//
// # Format
//
// An export is JSON lines, one object per line:
//
//	{"export":{"version":3,"filter":"seq>=1","time":"..."}}          header (pull exports)
//	{"checkpoint":{"seq":0,"hash":"<hex>","export":"<hex>",...,"sig":...}} the export's first checkpoint
//	{"seq":1,"prev_hash":"<hex>","hash":"<hex>","record":{...}}   one per record
//	{"seq":7,"prev_hash":"<hex>","hash":"<hex>","data":"<b64>"}   a record that is not JSON
//	{"end":{"first":1,"last":900,"count":900,...,"sig":"<b64>"}}  trailer (pull exports)
//
// "record" holds the journal record verbatim: the bytes between `"record":`
// and the line's closing brace are exactly the bytes that were hashed, so a
// verifier recomputes the chain without re-encoding anything. Records are
// stored in RFC 8785 canonical form, so when a receiver re-encoded the
// line (jq, Python, a SIEM pipeline), the verifier canonicalizes the
// record and recovers the hashed bytes. Older records (format 1, written
// by encoding/json) verify as written. Records that
// are not JSON, or hold a line break, travel base64-encoded in "data"
// instead. Checkpoints are records like any other ({"checkpoint":{...}}).
//
// A pull export starts with a header and the export's first checkpoint,
// which signs the header's digest (HeaderDigest: SHA-256 of its RFC 8785
// canonical form) and the hash of the record before the first exported
// one: an edit of any header field, or records cut from the start, are
// reported even without the trailer. (Version 2 headers carried a
// signature of their own, version 1 headers none; both still verify.) It
// ends with a trailer signed by the cluster audit key: the trailer names
// the range, the count, a digest of every exported (seq, hash) pair and
// the header's digest, so cutting the end off an export, dropping records
// from a filtered export, or passing the header off as an old one, is
// detected. Streams to sinks
// carry no header or trailer; there, checkpoints vouch for the records.
//
// # What it does not do
//
// It does not read the journal, store keys or decide what is exported:
// package audit does. It verifies what it is given against the public key
// it is given; a key fetched from the cluster that produced the export
// proves less than one kept apart from it.
package auditfile
