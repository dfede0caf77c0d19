package audit_test

import (
	"testing"

	"github.com/ferryvpn/ferry/audit/auditfile"
	"github.com/ferryvpn/ferry/cluster"
)

// auditfile repeats the journal's hash and record limit so that clients
// can verify exports without linking the cluster; they must agree.
func TestAuditfileAgreesWithCluster(t *testing.T) {
	if auditfile.MaxRecordLen != cluster.MaxRecordLen {
		t.Errorf("auditfile.MaxRecordLen = %d, cluster.MaxRecordLen = %d", auditfile.MaxRecordLen, cluster.MaxRecordLen)
	}
	prev := auditfile.ChainHash(auditfile.Hash{}, 1, []byte("first"))
	for _, tt := range []struct {
		name string
		prev auditfile.Hash
		seq  uint64
		data []byte
	}{
		{"first record", auditfile.Hash{}, 1, []byte(`{"id":"a"}`)},
		{"empty record", prev, 2, nil},
		{"large seq", prev, 1<<63 + 5, []byte("x")},
	} {
		if got, want := auditfile.ChainHash(tt.prev, tt.seq, tt.data), cluster.ChainHash(tt.prev, tt.seq, tt.data); got != want {
			t.Errorf("%s: auditfile.ChainHash = %x, cluster.ChainHash = %x", tt.name, got, want)
		}
	}
}
