package wire

// Audit sink paths (admin). Network sinks are cluster configuration.
const (
	// PathAuditSinks: GET lists the network sinks; POST adds one
	// (AuditSink, secrets inline, stored sealed).
	PathAuditSinks = "/v1/audit/sinks"
	// PathAuditSink: GET shows one (secrets never returned); DELETE
	// removes it and its cursor.
	PathAuditSink = "/v1/audit/sinks/{name}"
	// PathAuditSinkTest: POST sends a marked test record (not part of the
	// journal) and reports the receiver's answer.
	PathAuditSinkTest = "/v1/audit/sinks/{name}/test"
)

// AuditSink describes a network sink. On reads, Token and ClientKey say
// "(sealed)" when set.
type AuditSink struct {
	Name          string `json:"name"`
	Type          string `json:"type"` // syslog, relp or hec
	Format        string `json:"format,omitempty"`
	Addr          string `json:"addr,omitempty"`
	URL           string `json:"url,omitempty"`
	Token         string `json:"token,omitempty"`
	Ack           bool   `json:"ack,omitempty"`
	Index         string `json:"index,omitempty"`
	CA            string `json:"ca,omitempty"`
	ServerName    string `json:"server_name,omitempty"`
	ClientCert    string `json:"client_cert,omitempty"`
	ClientKey     string `json:"client_key,omitempty"`
	ResendRecords uint64 `json:"resend_records,omitempty"`
	ResendAge     string `json:"resend_age,omitempty"`
	// Cursor is the last record the sink confirmed; ConfigError a
	// configuration error the answering node found (reads only).
	Cursor      uint64 `json:"cursor"`
	ConfigError string `json:"config_error,omitempty"`
}

// AuditSinkList is the answer to GET PathAuditSinks.
type AuditSinkList struct {
	Sinks []AuditSink `json:"sinks"`
	// NoNetworkSink is set when no network sink exists: the journal
	// leaves the cluster nowhere.
	NoNetworkSink bool `json:"no_network_sink"`
}

// AuditSinkTestResult is the answer to a sink test.
type AuditSinkTestResult struct {
	OK     bool   `json:"ok"`
	Answer string `json:"answer"` // what the receiver said, or the error
	ID     string `json:"id"`     // the test record's event ID
}
