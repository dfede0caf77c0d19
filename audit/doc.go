// Package audit is ferry's tamper-evident record of every login, change,
// session and flow: the event schema, storage in the cluster journal with its
// hash chain and signed checkpoints, the export formats (JSON lines, CEF,
// OCSF, RFC 5424 syslog), the sinks (file, syslog over TCP/TLS, Splunk HEC)
// and the exporter that feeds them from a durable cursor.
//
// Audit events are evidence, not log lines: they are never level-filtered
// and never carry secrets.
package audit
