package auditfile

import (
	"errors"
	"fmt"
)

// Errors returned by this package. Callers compare them with errors.Is.
// Package audit returns the same values under the same names.
var (
	// ErrTampered is returned by verification when a record was edited,
	// deleted, reordered or truncated, or a signature does not hold. The
	// error is a *TamperError that names the record.
	ErrTampered = errors.New("audit: tampering detected")
	// ErrNoKey is returned when verification was given no audit key, or a
	// record is signed by a key the verifier was not given.
	ErrNoKey = errors.New("audit: no audit key")
	// ErrUnsigned is returned by verification when nothing was tampered
	// with but records after the last checkpoint or trailer are not
	// covered by any signature (they could have been forged), unless
	// VerifyOptions.AcceptUnsignedTail.
	ErrUnsigned = errors.New("audit: records not covered by a signature")
	// ErrMalformed is returned when an export line, key record or stored
	// value cannot be decoded.
	ErrMalformed = errors.New("audit: malformed input")
)

// Tamper names what verification found wrong with a record.
type Tamper uint8

// Kinds of tampering.
const (
	// Edited: a record's contents no longer match its hash, or a signed
	// hash.
	Edited Tamper = iota + 1
	// Missing: a record was deleted from the middle.
	Missing
	// Reordered: records appear out of order.
	Reordered
	// Truncated: records at the end are gone.
	Truncated
	// Forged: a checkpoint or seal does not carry a valid signature.
	Forged
	// Malformed: a line is not an audit export line at all.
	Malformed
	// DuplicateID: two records carry the same event ID. Not tampering
	// (both are chained and signed), but the event was stored twice.
	DuplicateID
)

func (t Tamper) String() string {
	switch t {
	case Edited:
		return "edited"
	case Missing:
		return "missing"
	case Reordered:
		return "reordered"
	case Truncated:
		return "truncated"
	case Forged:
		return "forged"
	case Malformed:
		return "malformed"
	case DuplicateID:
		return "duplicate event id"
	}
	return fmt.Sprintf("tamper(%d)", uint8(t))
}

// Problem is one problem verification found: Count records from First to
// Last (sequence numbers; 0 when none applies), first seen on Line.
// Consecutive records with the same problem are reported as one range.
type Problem struct {
	Kind        Tamper
	First, Last uint64
	Count       uint64
	Line        int
	Detail      string
}

// MaxProblems bounds the problems a report lists; the rest are counted.
const MaxProblems = 1000

// TamperError describes the first problem verification found. Seq is the
// record it concerns (0 when none applies) and Line the 1-based line of an
// export file (0 for live verification).
type TamperError struct {
	Kind   Tamper
	Seq    uint64
	Line   int
	Detail string
	// More counts the further problems found (listed in the Report).
	More int
}

func (e *TamperError) Error() string {
	s := "audit: " + e.Detail
	if e.Line > 0 {
		s += fmt.Sprintf(" (line %d)", e.Line)
	}
	if e.More > 0 {
		s += fmt.Sprintf(", and %d more problems", e.More)
	}
	return s
}

// Is reports whether target is ErrTampered.
func (e *TamperError) Is(target error) bool { return target == ErrTampered }
