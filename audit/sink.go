package audit

import (
	"context"
	"fmt"
	"regexp"
)

// Sink delivers entries to one destination (a file, a syslog receiver, a
// Splunk indexer). The exporter drives each sink from a single goroutine;
// implementations need not be safe for concurrent use.
//
// Delivery is at least once: the exporter resends everything after the
// sink's durable cursor whenever a sink fails or leadership moves, so a
// destination may see an entry twice; the event ID (and the sequence
// number) identify duplicates.
type Sink interface {
	// Name identifies the sink; its cursor is stored under
	// audit/cursor/<name>. It must match [a-z0-9][a-z0-9-]*.
	Name() string
	// Send delivers entries, which follow everything sent since the last
	// Reset, and returns the highest sequence number the destination has
	// confirmed so far (0 if none). entries may be empty: Send then only
	// collects confirmations. After an error the sink's state is unknown:
	// the exporter calls Reset and sends again from its cursor.
	Send(ctx context.Context, entries []Entry) (confirmed uint64, err error)
	// Reset forgets whatever was sent but not confirmed and drops
	// connections.
	Reset()
	// Close releases the sink.
	Close() error
}

var sinkName = regexp.MustCompile(`^[a-z0-9][a-z0-9-]{0,62}$`)

func checkSinkName(n string) error {
	if !sinkName.MatchString(n) {
		return fmt.Errorf("audit sink name %q: want 1-63 lowercase letters, digits or dashes", n)
	}
	return nil
}

// pendingBatch is a batch written to a destination that has not confirmed
// it yet.
type pendingBatch struct {
	last uint64 // last sequence number in the batch
	at   int64  // when it was written (unix nanoseconds), or its ack ID
	ack  uint64
}
