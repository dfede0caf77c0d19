// Package audittest provides real counterparts of the destinations audit
// exports to, for tests: a Splunk HTTP Event Collector that follows HEC's
// protocol (HEC), an rsyslogd receiving syslog over TLS (Rsyslog), and a
// throwaway certificate authority for both (CA).
package audittest
