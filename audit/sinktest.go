package audit

import (
	"context"
	"fmt"
	"time"
)

// TypeSinkTest marks the record `ferryctl audit sink test` sends. It is not
// part of the journal: it carries sequence number 0, and verification
// counts such lines apart (Report.TestRecords) instead of chaining them.
const TypeSinkTest Type = "audit.sink_test"

// answerer is a sink that can tell what its receiver last answered.
type answerer interface{ LastAnswer() string }

// SendTestRecord sends one marked test record through sink and returns its
// event ID and the receiver's answer (for sinks without acknowledgements,
// that the bytes were written).
func SendTestRecord(ctx context.Context, sink Sink, now time.Time, actor Actor) (id, answer string, err error) {
	if id, err = newID(now); err != nil {
		return "", "", err
	}
	e := Event{ID: id, Time: now.UTC(), Type: TypeSinkTest, Actor: actor, Outcome: Success,
		Reason: "test record from ferryctl audit sink test; not part of the journal"}
	data, err := encodeEvent(&e)
	if err != nil {
		return id, "", err
	}
	entry := Entry{Seq: 0, Data: data, Event: &e}
	if _, err := sink.Send(ctx, []Entry{entry}); err != nil {
		return id, "", err
	}
	if a, ok := sink.(answerer); ok {
		// Acknowledging sinks: wait for the answer.
		t := time.NewTicker(20 * time.Millisecond)
		defer t.Stop()
		for a.LastAnswer() == "" {
			select {
			case <-ctx.Done():
				return id, "", fmt.Errorf("no answer from the receiver: %w", ctx.Err())
			case <-t.C:
			}
			if _, err := sink.Send(ctx, nil); err != nil {
				return id, "", err
			}
		}
		return id, a.LastAnswer(), nil
	}
	return id, "written (this transport has no acknowledgement)", nil
}
