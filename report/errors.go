package report

import "errors"

// Errors returned by the package.
var (
	// ErrInvalidQuery is returned when a report's filter is malformed:
	// a bad prefix, port or time range. The error names the field.
	ErrInvalidQuery = errors.New("report: invalid query")
	// ErrClosed is returned by a Rollup's methods after Close.
	ErrClosed = errors.New("report: rollup closed")
)
