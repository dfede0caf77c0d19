// Package audit is ferry's tamper-evident record of every login, change,
// session and flow: the event schema, storage in the cluster journal with its
// hash chain and signed checkpoints, the export formats (JSON lines, CEF,
// OCSF, RFC 5424 syslog), the sinks (file, syslog over TCP/TLS, Splunk HEC)
// and the exporter that feeds them from a durable cursor.
//
// Audit events are evidence, not log lines: they are never level-filtered
// and never carry secrets.
//
// # Storage
//
// A [Log] is the [Recorder] every component writes to. Record stamps an
// event (ID, time from the injected clock, node), encodes it as JSON with a
// fixed field order and appends it to the cluster journal in batches; it
// returns once the batch is committed by a quorum. Flow events travel in a
// bulk lane behind everything else, so a flood of flows cannot starve a
// login's record. The cluster state machine chains records in commit order,
// SHA-256(prev || seq || data), identically on every node.
//
// A change and the record that describes it commit together or not at
// all: [Commit] puts the event's journal record ([Journaler]'s Prepare,
// byte for byte what Record would append) into the change's own cluster
// transaction (cluster.Txn.Journal), so a leader lost, a context ended or
// a Log closed between "change" and "record" can no longer leave a change
// live without its evidence. Users, sessions, MFA, profiles, peers, the
// SCIM token and the capture caps are changed this way. [TxnRevision]
// stands for the version the transaction gives the keys it writes (a
// profile's policy version).
//
// A [Checkpointer] on the leader appends a signed [Checkpoint] (ed25519, the
// cluster audit key) every N records (default 1,000) or minute, whichever comes first.
// The key is generated once per cluster by [LoadSigner] and stored sealed
// under the master key at sys/audit/key (written with an absent-key
// compare, so exactly one key ever wins); the public key is stored in clear
// at sys/audit/pubkey for verifiers ([LoadKeys]).
//
// # Export and verification
//
// Records are stored in RFC 8785 canonical JSON, so the hash covers a form
// that any receiver's re-encoding (escapes, key order, whitespace)
// canonicalizes back to. The native format ([JSONLines]) carries each
// record's seq, prev_hash and hash and the record's bytes, so [VerifyFile]
// recomputes the chain offline — canonicalizing a re-encoded record — and
// checks every checkpoint's signature; a pull export ([Export]) adds a
// header covered by the export's first checkpoint (which also anchors the
// export's start) and a signed trailer, so an edited header, truncation
// and, for filtered exports, dropped records are detected too. [VerifyLive] checks a node's
// journal the same way. Both report every problem, with ranges and counts
// (edited, missing, reordered, truncated, forged, malformed, event IDs
// stored twice); the error names the first as a [TamperError]. Records
// after the last signature are reported as unsigned (ErrUnsigned). [Filter], [Scan] and [Tail] serve `ferryctl audit
// export` and `tail -f`.
//
// The format, the keys' public side and the verifier live in the
// subpackage auditfile, which imports only the standard library, so that
// `ferryctl audit verify FILE` checks an export without linking the
// cluster. This package re-exports them under the same names (Report,
// TamperError, Checkpoint, Signer, ...) as type aliases.
//
// # Sinks
//
// An [Exporter] runs on every node; only the leader exports to network
// sinks, while node-local sinks ([NodeLocal], the file sink) run on every
// node from its own copy of the journal and their own cursor. Each [Sink] has
// a cursor at audit/cursor/<name>, read linearizably when a node becomes
// leader and advanced by compare-and-swap after the sink confirms delivery,
// so a new leader resumes where the old one was confirmed. Delivery is at
// least once (the event ID identifies repeats); a failing sink is retried
// with jittered exponential backoff and caught up from its cursor. The
// export lag (journal head minus cursor) is the metric
// ferry_audit_export_lag_records{sink}.
//
// Network sinks (syslog, RELP, HEC) are cluster configuration: a
// [SinkStore] keeps them in the replicated state with their secrets
// sealed, and an Exporter given the store starts and stops them as they
// are added and removed, so every leader exports to the same sinks.
// Delivery per transport: RELP confirms a record on the receiver's
// acknowledgement; syslog/TLS keeps a re-send window (count and age) sent
// again after every reconnect; HEC confirms on 200, or on indexer
// acknowledgement with ack (a receiver without it is a configuration
// error, ErrSinkMisconfigured, never a re-send loop).
//
// # Requests and flooding
//
// A Recorder fills the Source of an event from the request context
// ([WithSource]), and caps every string it stores ([MaxFieldLen], with a
// truncation marker and the original length), so attacker-sized input
// cannot bloat a journal kept for months on every node. The journal drops
// a record whose event ID it already holds among its recent records
// (cluster.Node.AppendKeyed), so a retry after a leader change stores
// nothing twice.
//
// # Retention
//
// [PlanTrim] decides how far the journal may be trimmed: only records every
// sink has confirmed, older than the retention (default 400 days), and only
// up to a record that a checkpoint signs. That checkpoint record stays, so
// the first remaining record is anchored and the shortened journal still
// verifies, live and in exports. A [Trimmer] runs on every node; the leader
// plans and trims shortly after it takes over and then daily, through
// cluster.Node.TrimJournal, and records each trim as a cluster.audit_trim
// event ([ActionTrim]).
//
// # What it does not do
//
// It does not decide what to record (the callers do), or enforce who may
// read the audit log (the API does).
package audit
