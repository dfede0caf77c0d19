package audit

import (
	"context"
	"crypto/tls"
	"errors"
	"fmt"
	"regexp"
	"syscall"
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

// NodeLocal is a sink that runs on every node, leader or not, from the
// node's own copy of the journal, keeping its own cursor: Cursor returns
// the last record it holds. Its cursor is not in the cluster and does not
// hold back retention.
type NodeLocal interface {
	Sink
	Cursor() (uint64, error)
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

// explainTLS turns what a TLS receiver's refusal of the client certificate
// looks like on the wire — an alert, or with TLS 1.3 often only a broken
// pipe or reset on the first write after the handshake — into an error
// that says so, instead of a bare "broken pipe".
func explainTLS(err error, cfg *tls.Config) error {
	if err == nil || cfg == nil {
		return err
	}
	hasCert := len(cfg.Certificates) > 0 || cfg.GetClientCertificate != nil
	var alert tls.AlertError
	if errors.As(err, &alert) {
		switch alert {
		case 116: // certificate_required
			return fmt.Errorf("the receiver requires a client certificate and none is configured (set cert_file and key_file): %w", err)
		case 42, 43, 44, 45, 46, 48, 49: // bad, unsupported, revoked, expired, unknown certificate; unknown CA; access denied
			if !hasCert {
				return fmt.Errorf("the receiver refused the connection for want of a client certificate (set cert_file and key_file): %w", err)
			}
			return fmt.Errorf("the receiver rejected ferry's client certificate (is it issued by a CA the receiver trusts, and still valid?): %w", err)
		}
	}
	if errors.Is(err, syscall.EPIPE) || errors.Is(err, syscall.ECONNRESET) {
		if !hasCert {
			return fmt.Errorf("the receiver closed the TLS connection; if it requires client certificates, none is configured (cert_file, key_file): %w", err)
		}
		return fmt.Errorf("the receiver closed the TLS connection; it may have rejected ferry's client certificate: %w", err)
	}
	return err
}
