package audit

import (
	"errors"

	"github.com/ferryvpn/ferry/audit/auditfile"
)

// Errors returned by this package. Callers compare them with errors.Is.
var (
	// ErrInvalidEvent is returned by Record when an event is malformed or
	// too large to store; it wraps a message naming the field.
	ErrInvalidEvent = errors.New("audit: invalid event")
	// ErrSinkMisconfigured is returned by a sink whose receiver cannot do
	// what the sink's configuration asks (an HEC receiver without indexer
	// acknowledgement for a sink with ack: true). Resending cannot help:
	// the sink stops sending until its configuration changes.
	ErrSinkMisconfigured = errors.New("audit: sink misconfigured")
	// ErrClosed is returned after Close.
	ErrClosed = errors.New("audit: closed")
	// ErrTampered is returned by verification when a record was edited,
	// deleted, reordered or truncated, or a signature does not hold. The
	// error is a *TamperError that names the record. It is
	// auditfile.ErrTampered.
	ErrTampered = auditfile.ErrTampered
	// ErrNoKey is returned when the cluster holds no audit key yet, or a
	// record is signed by a key the verifier was not given. It is
	// auditfile.ErrNoKey.
	ErrNoKey = auditfile.ErrNoKey
	// ErrMalformed is returned when an export line or stored value cannot
	// be decoded. It is auditfile.ErrMalformed.
	ErrMalformed = auditfile.ErrMalformed
	// ErrUnsigned is returned by file verification when records after
	// the last signature are not covered by any (auditfile.ErrUnsigned).
	ErrUnsigned = auditfile.ErrUnsigned
)

// Tamper names what verification found wrong with a record
// (auditfile.Tamper).
type Tamper = auditfile.Tamper

// Kinds of tampering; see auditfile.
const (
	Edited    = auditfile.Edited
	Missing   = auditfile.Missing
	Reordered = auditfile.Reordered
	Truncated = auditfile.Truncated
	Forged    = auditfile.Forged
	Malformed = auditfile.Malformed
	// DuplicateID: an event ID stored twice (not tampering).
	DuplicateID = auditfile.DuplicateID
)

// TamperError describes the first problem verification found
// (auditfile.TamperError): its kind, the record and the line of a file.
type TamperError = auditfile.TamperError
