// Package report answers who accessed what from the audit journal: a
// node-local rollup of flow records and the reports built on it.
//
// A [Rollup] is derived state. Each node folds the flow.accept and
// flow.deny records of its own copy of the journal into a bbolt file of
// hourly and daily buckets keyed by user, device, profile and version,
// destination, protocol and port, with flows, packets and bytes each way,
// denied attempts and first and last seen. The last folded sequence number
// and that record's hash are written in the same transaction as the
// buckets, so a process killed at any point resumes exactly where its last
// transaction ended, and the result equals a rebuild from the journal. When
// the journal under the cursor is no longer the one folded (a snapshot
// install replaced it: the record at the cursor has another hash, or the
// head is behind the cursor) the rollup is rebuilt from the journal. The
// rollup is never replicated; every node derives the same buckets from the
// same records.
//
// [Rollup.Access] answers the access report (who accessed what, filtered by
// user, profile, destination prefix and port, and time range, in whole
// hours). Keys sort by period and then by user, so it reads a period's
// buckets side by side one user at a time and builds only the rows of the
// page asked for. Every report names the journal range it was computed from and
// the last signed checkpoint folded, so that an auditor can check it with
// `ferryctl audit verify` over the same range.
//
// [Rollup.Traffic] summarises the same buckets for a chart: totals per hour
// or day and the top users, destinations and denied attempts, in one pass
// that keeps one total per period, user and service (never one row per
// period, user and service as Access does), so the console's 90-day chart
// does not build the 90-day access report. The rollup also keeps, per day,
// the totals of each user, each service and each (user, service) pair with
// denied attempts (the daytotal bucket, derived from the daily buckets in
// the same transaction and rebuilt with them), so that a chart by day
// without filters reads those instead of every daily key, and one for a
// user finds that user's daily keys through them (by ID or by email).
//
// [Rollup.Replay] replays the recorded traffic of a profile against
// proposed rules: the accepted flows they would deny and the denied
// attempts they would allow, by user and destination.
//
// The package does not record flows (see tunnel), store or sign the journal
// (see cluster and audit), or speak HTTP (see cmd/internal/api).
package report
