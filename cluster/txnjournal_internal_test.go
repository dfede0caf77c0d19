package cluster

import (
	"reflect"
	"testing"
)

// Results cross the forwarding connection intact, the journal range of a
// transaction included, without taking another result's tag.
func TestTxnResultCodec(t *testing.T) {
	tests := []struct {
		name string
		r    interface{}
	}{
		{"plain success", TxnResult{Succeeded: true, Revision: 9, FailedCompare: -1}},
		{"plain failure", TxnResult{Revision: 9, FailedCompare: 2}},
		{"with journal", TxnResult{Succeeded: true, Revision: 10, FailedCompare: -1,
			Journal: AppendResult{First: 4, Last: 5, Seqs: []uint64{2, 4, 5}, Duplicates: 1}}},
		{"prune", PruneResult{Runs: 3, Removed: 7}},
		{"keyed append", AppendResult{First: 1, Last: 2, Seqs: []uint64{1, 2}}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			b, err := encodeResult(tt.r)
			if err != nil {
				t.Fatal(err)
			}
			got, err := decodeResult(b)
			if err != nil || !reflect.DeepEqual(got, tt.r) {
				t.Fatalf("round trip: %#v (%v), want %#v", got, err, tt.r)
			}
		})
	}
}
