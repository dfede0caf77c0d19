package wire

import "time"

// Report endpoints (administrators only).
const (
	// PathReportAccess answers the access report: who accessed what.
	// Query: user (ID or email), profile, dst (CIDR or address), port,
	// protocol, since and until (RFC 3339; whole hours).
	PathReportAccess = "/v1/reports/access"
)

// AccessRow is one line of the access report: a user's traffic through one
// profile to one destination service.
type AccessRow struct {
	User       string    `json:"user"`
	Email      string    `json:"email,omitempty"`
	Devices    []string  `json:"devices"`
	Profile    string    `json:"profile"`
	Versions   []uint64  `json:"profile_versions"`
	Dst        string    `json:"dst"` // empty: folded under load
	Protocol   string    `json:"protocol,omitempty"`
	Port       uint16    `json:"port,omitempty"`
	First      time.Time `json:"first"`
	Last       time.Time `json:"last"`
	Flows      uint64    `json:"flows"`
	PacketsOut uint64    `json:"packets_out"`
	PacketsIn  uint64    `json:"packets_in"`
	BytesOut   uint64    `json:"bytes_out"`
	BytesIn    uint64    `json:"bytes_in"`
	Denied     uint64    `json:"denied"`
}

// ReportSource names the journal range a report was computed from, on
// which node, and the last signed checkpoint in it: `ferryctl audit verify`
// over the same range checks it.
type ReportSource struct {
	Node       string            `json:"node"`
	FromSeq    uint64            `json:"from_seq"`
	ToSeq      uint64            `json:"to_seq"`
	Checkpoint *ReportCheckpoint `json:"checkpoint,omitempty"`
	// Unsigned counts the records after the checkpoint.
	Unsigned uint64 `json:"unsigned"`
}

// ReportCheckpoint names a signed audit checkpoint: the record it covers
// up to, the chain hash there, when it was signed and by which key.
type ReportCheckpoint struct {
	Seq   uint64    `json:"seq"`
	Hash  string    `json:"hash"`
	Time  time.Time `json:"time"`
	KeyID string    `json:"key_id"`
}

// AccessReport is the answer of PathReportAccess.
type AccessReport struct {
	Query  map[string]string `json:"query"`
	Source ReportSource      `json:"source"`
	Rows   []AccessRow       `json:"rows"`
}
