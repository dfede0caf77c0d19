package audit

// Format turns a journal entry into one message for a sink or an export
// file. Implementations append to dst and add no line terminator; they must
// be safe for concurrent use and deterministic, and never fail on hostile
// field contents (they escape or replace them).
type Format interface {
	// Name returns the format's configuration name: "json", "cef",
	// "ocsf" or "syslog".
	Name() string
	// Append appends e's encoding to dst.
	Append(dst []byte, e *Entry) ([]byte, error)
}

// FormatByName returns the format with the given configuration name and
// default settings; syslog wraps JSON lines.
func FormatByName(name string) (Format, bool) {
	switch name {
	case "json", "jsonl", "":
		return JSONLines{}, true
	case "cef":
		return CEF{}, true
	case "ocsf":
		return OCSF{}, true
	case "syslog":
		return &Syslog{}, true
	}
	return nil, false
}
