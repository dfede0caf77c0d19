package main

import "os"

// Job is one `go test -bench` run: benchmarks differ in what one iteration
// is (a commit, a whole failover, a 2.5-minute data-plane matrix), so each
// gets its own benchtime and count.
type Job struct {
	Pkg       string // package pattern, such as ./cluster
	Bench     string // -bench regular expression
	Benchtime string
	Count     int
	// Root marks jobs that need root (network namespaces); they are
	// skipped, and said so, without it.
	Root bool
}

// jobs are what `make bench` runs, in order.
var jobs = []Job{
	{Pkg: "./cluster", Bench: "^BenchmarkCommit$", Benchtime: "3s", Count: 5},
	// Nine interleaved pairs of rounds, checked and unchecked, on one
	// cluster; the metric is the median of the nine per-pair costs.
	{Pkg: "./cluster", Bench: "^BenchmarkMembershipCheck$", Benchtime: "9x", Count: 1},
	{Pkg: "./cluster", Bench: "^BenchmarkPeerCheck$", Benchtime: "200000x", Count: 5},
	// Each iteration kills a leader; the metric is the median of its five.
	{Pkg: "./cluster", Bench: "^BenchmarkFailover$", Benchtime: "5x", Count: 1},
	{Pkg: "./authn", Bench: "^Benchmark(TOTPVerify|SessionCreate)$", Benchtime: "300x", Count: 5},
	{Pkg: "./authn", Bench: "^BenchmarkSignIn$", Benchtime: "300x", Count: 5},
	{Pkg: "./profiles", Bench: "^BenchmarkIssue$", Benchtime: "2000x", Count: 5},
	// One group change re-decided for 10,000 users (100 lose access).
	{Pkg: "./profiles", Bench: "^BenchmarkReevaluate$", Benchtime: "1x", Count: 3},
	{Pkg: "./audit", Bench: "^BenchmarkIngest$", Benchtime: "20000x", Count: 3},
	// One iteration exports or verifies 100,000 records (verification: as
	// written and re-encoded four ways, jq and python3 needed for two).
	{Pkg: "./audit", Bench: "^Benchmark(Export|VerifyFile)$", Benchtime: "1x", Count: 3},
	// Reports: one iteration is one access report over 90 days of 1,000
	// users (9 M flows in the rollup), a fold of 200,000 journal records,
	// or 20,000 flow records through the audit log (journal growth), or
	// one entitlements report as of a past time (about 100,000 history
	// entries replayed).
	{Pkg: "./report", Bench: "^Benchmark(Access90d|Replay7d|RollupFold|FlowJournalGrowth|EntitlementsAt)$", Benchtime: "1x", Count: 1},
	// The data-plane benchmarks take medians of interleaved or concurrent
	// runs themselves and print their own report (BenchmarkCPUPerGB: 15
	// rounds of six paths at once; BenchmarkIPv6CPU: 16 rounds of six
	// dual-stack gateways at once; BenchmarkGatewayRSS: memory after
	// saturating streams, 1 and 20,000 peers).
	{Pkg: "./tunnel", Bench: ".", Benchtime: "1x", Count: 1, Root: true},
	// Packet capture's cost: BenchmarkCapture (part of the ./tunnel job)
	// measures throughput in interleaved rounds with a capture of another
	// user and of the same user; BenchmarkTap the tap's own cost per
	// packet, idle and capturing, on a TUN device that does nothing.
	{Pkg: "./tunnel/capture", Bench: "^BenchmarkTap$", Benchtime: "20000x", Count: 5},
	// Three API nodes with data planes in a namespace: SCIM active=false
	// for 100 users to their client map entries gone on every node.
	{Pkg: "./cmd/internal/apitest", Bench: "^BenchmarkSCIMDeprovision$", Benchtime: "1x", Count: 1, Root: true},
	// Three nodes with data planes and the development OP: a group removed
	// at the IdP for 100 users, one by one, to their client map entries
	// gone on every node; and one revalidation round finding all 100.
	{Pkg: "./cmd/internal/continuous", Bench: "^BenchmarkIdPGroupRemoval$", Benchtime: "1x", Count: 1, Root: true},
	// The admin console: the server's time per page on a node with 10,000
	// users, 5,000 active peers and 90 days of rollups (setup ~2-3 min).
	{Pkg: "./cmd/internal/console", Bench: "^BenchmarkConsolePages$", Benchtime: "10x", Count: 1},
	// deploy/local's three nodes behind nginx: five rounds of node kill,
	// leader kill and ten revocations; the metrics are medians and a p99.
	{Pkg: "./deploy/local", Bench: "^BenchmarkDrill$", Benchtime: "5x", Count: 1, Root: true},
}

// figures are the numbers each issue names, with its goal, printed first.
var figures = []Figure{
	{Label: "cluster commits, 1 writer", Pkg: "/cluster", Bench: "BenchmarkCommit/writers=1", Unit: "commits/s"},
	{Label: "cluster commit p50, 1 writer", Pkg: "/cluster", Bench: "BenchmarkCommit/writers=1", Unit: "p50-ms"},
	{Label: "cluster commit p99, 1 writer", Pkg: "/cluster", Bench: "BenchmarkCommit/writers=1", Unit: "p99-ms"},
	{Label: "cluster commits, 64 writers", Pkg: "/cluster", Bench: "BenchmarkCommit/writers=64", Unit: "commits/s", Goal: ">= 2000"},
	{Label: "cluster commit p50, 64 writers", Pkg: "/cluster", Bench: "BenchmarkCommit/writers=64", Unit: "p50-ms"},
	{Label: "cluster commit p99, 64 writers", Pkg: "/cluster", Bench: "BenchmarkCommit/writers=64", Unit: "p99-ms", Goal: "< 25"},
	{Label: "membership check cost, 64 writers (vs check off)", Pkg: "/cluster", Bench: "BenchmarkMembershipCheck", Unit: "check-cost-%", Goal: "< 2"},
	{Label: "membership check alone, per request", Pkg: "/cluster", Bench: "BenchmarkPeerCheck", Unit: "ns/check"},
	{Label: "leader kill to next write, default timeouts", Pkg: "/cluster", Bench: "BenchmarkFailover/default", Unit: "failover-s", Goal: "< 3"},
	{Label: "leader kill to next write, tuned timeouts", Pkg: "/cluster", Bench: "BenchmarkFailover/tuned", Unit: "failover-s"},
	{Label: "sign-in server cost p50", Pkg: "/authn", Bench: "BenchmarkSignIn/fsync", Unit: "p50-ms"},
	{Label: "sign-in server cost p99", Pkg: "/authn", Bench: "BenchmarkSignIn/fsync", Unit: "p99-ms", Goal: "< 50"},
	{Label: "TOTP verification p99", Pkg: "/authn", Bench: "BenchmarkTOTPVerify", Unit: "p99-ms", Goal: "< 20"},
	{Label: "issuances, 64 clients", Pkg: "/profiles", Bench: "BenchmarkIssue", Unit: "issuances/s", Goal: ">= 500"},
	{Label: "issuance p99, 64 clients", Pkg: "/profiles", Bench: "BenchmarkIssue", Unit: "p99-ms", Goal: "< 100"},
	{Label: "audit ingest, 3 nodes", Pkg: "/audit", Bench: "BenchmarkIngest", Unit: "events/s", Goal: ">= 20000"},
	{Label: "audit append p99", Pkg: "/audit", Bench: "BenchmarkIngest", Unit: "p99-ms", Goal: "< 50"},
	{Label: "audit ingest per CPU-second of the 3 nodes (load-independent)", Pkg: "/audit", Bench: "BenchmarkIngest", Unit: "events/cpu-s"},
	{Label: "machine load average while audit ingest was measured", Pkg: "/audit", Bench: "BenchmarkIngest", Unit: "load1"},
	{Label: "audit export to file", Pkg: "/audit", Bench: "BenchmarkExport/file", Unit: "events/s", Goal: ">= 50000"},
	{Label: "audit export to syslog", Pkg: "/audit", Bench: "BenchmarkExport/syslog", Unit: "events/s", Goal: ">= 50000"},
	{Label: "audit export over RELP/TLS to rsyslog (acknowledged)", Pkg: "/audit", Bench: "BenchmarkExport/relp", Unit: "events/s", Goal: ">= 50000"},
	{Label: "audit offline verification", Pkg: "/audit", Bench: "BenchmarkVerifyFile/verbatim", Unit: "records/s", Goal: ">= 200000"},
	{Label: "verification of re-encoded files: Go maps, Python spacing", Pkg: "/audit", Bench: "BenchmarkVerifyFile/reencoded", Unit: "records/s", Goal: ">= 200000"},
	{Label: "verification of re-encoded files: jq -c", Pkg: "/audit", Bench: "BenchmarkVerifyFile/jq", Unit: "records/s", Goal: ">= 200000"},
	{Label: "verification of re-encoded files: Python json.dumps", Pkg: "/audit", Bench: "BenchmarkVerifyFile/python", Unit: "records/s", Goal: ">= 200000"},
	{Label: "verification of re-encoded files: keys reordered", Pkg: "/audit", Bench: "BenchmarkVerifyFile/reordered", Unit: "records/s", Goal: ">= 200000"},
	{Label: "verification of re-encoded files per CPU-second (load-independent): Python json.dumps", Pkg: "/audit", Bench: "BenchmarkVerifyFile/python", Unit: "records/cpu-s"},
	{Label: "verification of re-encoded files per CPU-second (load-independent): keys reordered", Pkg: "/audit", Bench: "BenchmarkVerifyFile/reordered", Unit: "records/cpu-s"},
	{Label: "data plane: ferry / stock wireguard-go", Pkg: "/tunnel", Bench: "BenchmarkDataPlane", Unit: "ferry/stock", Goal: ">= 1.0"},
	{Label: "data plane: stock wireguard-go", Pkg: "/tunnel", Bench: "BenchmarkDataPlane", Unit: "stock-Gbit/s"},
	{Label: "data plane: policy cost, 10,000 rules vs none", Pkg: "/tunnel", Bench: "BenchmarkDataPlane", Unit: "policy-cost-%", Goal: "<= 5"},
	{Label: "data plane: 100,000 rules vs 10 rules", Pkg: "/tunnel", Bench: "BenchmarkDataPlane", Unit: "100k-vs-10-rules-%", Goal: "within ±5"},
	{Label: "revocation to enforcement p99", Pkg: "/tunnel", Bench: "BenchmarkDataPlane", Unit: "revoke-p99-ms", Goal: "< 1000"},
	{Label: "data plane: ferry / stock, gateway CPU per GB (median of 15 paired rounds)", Pkg: "/tunnel", Bench: "BenchmarkCPUPerGB", Unit: "cpu-ferry/stock", Goal: "<= 1.03"},
	{Label: "data plane: policy cost in CPU per GB, 10,000 rules vs none", Pkg: "/tunnel", Bench: "BenchmarkCPUPerGB", Unit: "cpu-policy-cost-%", Goal: "<= 5"},
	{Label: "data plane: 100,000 rules vs 10 rules in CPU per GB", Pkg: "/tunnel", Bench: "BenchmarkCPUPerGB", Unit: "cpu-100k-vs-10-rules-%", Goal: "within ±5"},
	{Label: "data plane: stock wireguard-go CPU per GB", Pkg: "/tunnel", Bench: "BenchmarkCPUPerGB", Unit: "stock-cpu-s/GB"},
	{Label: "data plane: ferry / stock, gateway CPU per GB net of each's idle CPU", Pkg: "/tunnel", Bench: "BenchmarkCPUPerGB", Unit: "cpu-net-ferry/stock"},
	{Label: "data plane: stock + conntrack, NAT, forward rules / stock, CPU per GB (the kernel path's share)", Pkg: "/tunnel", Bench: "BenchmarkCPUPerGB", Unit: "cpu-stock-nat/stock"},
	{Label: "data plane: ferry / (stock + conntrack, NAT, forward rules), CPU per GB", Pkg: "/tunnel", Bench: "BenchmarkCPUPerGB", Unit: "cpu-ferry/stock-nat"},
	{Label: "data plane: policy cost in CPU per GB net of idle, 10,000 rules vs none", Pkg: "/tunnel", Bench: "BenchmarkCPUPerGB", Unit: "cpu-net-policy-cost-%"},
	{Label: "data plane: 100,000 rules vs 10 rules in CPU per GB net of idle", Pkg: "/tunnel", Bench: "BenchmarkCPUPerGB", Unit: "cpu-net-100k-vs-10-rules-%"},
	{Label: "gateway RSS, 1 peer, after saturating streams", Pkg: "/tunnel", Bench: "BenchmarkGatewayRSS", Unit: "rss-1-peer-MiB", Goal: "<= 128"},
	{Label: "gateway peak RSS, 1 peer, saturating streams", Pkg: "/tunnel", Bench: "BenchmarkGatewayRSS", Unit: "rss-peak-1-peer-MiB", Goal: "<= 128"},
	{Label: "gateway RSS, 20,000 peers, after saturating streams", Pkg: "/tunnel", Bench: "BenchmarkGatewayRSS", Unit: "rss-20k-peers-MiB", Goal: "<= 1024"},
	{Label: "gateway peak RSS, 20,000 peers, saturating streams", Pkg: "/tunnel", Bench: "BenchmarkGatewayRSS", Unit: "rss-peak-20k-peers-MiB", Goal: "<= 1024"},
	{Label: "capture of another user: throughput / none", Pkg: "/tunnel", Bench: "BenchmarkCapture", Unit: "other-user/none", Goal: ">= 0.98"},
	{Label: "capture of the same user, headers only: throughput / none", Pkg: "/tunnel", Bench: "BenchmarkCapture", Unit: "same-user/none", Goal: ">= 0.85"},
	{Label: "capture tap, no capture running (vs no tap: direct)", Pkg: "/tunnel/capture", Bench: "BenchmarkTap/idle", Unit: "ns/packet"},
	{Label: "capture tap, capture of another client running", Pkg: "/tunnel/capture", Bench: "BenchmarkTap/other-user", Unit: "ns/packet"},
	{Label: "capture tap, headers-only capture of the same client", Pkg: "/tunnel/capture", Bench: "BenchmarkTap/same-user", Unit: "ns/packet"},
	{Label: "data plane: IPv6 / IPv4 through the same dual-stack gateway (median of per-round ratios)", Pkg: "/tunnel", Bench: "BenchmarkDataPlaneIPv6", Unit: "ipv6/ipv4", Goal: "0.95-1.05"},
	{Label: "data plane: IPv6 / IPv4 with 10,000 rules over 1,000 peers", Pkg: "/tunnel", Bench: "BenchmarkDataPlaneIPv6", Unit: "ipv6/ipv4-10k-rules", Goal: "0.95-1.05"},
	{Label: "data plane: IPv6 policy cost, 10,000 rules vs one", Pkg: "/tunnel", Bench: "BenchmarkDataPlaneIPv6", Unit: "policy-cost-ipv6-%", Goal: "<= 5"},
	{Label: "data plane: IPv6, 100,000 rules vs 10 rules", Pkg: "/tunnel", Bench: "BenchmarkDataPlaneIPv6", Unit: "100k-vs-10-rules-ipv6-%", Goal: "within ±5"},
	{Label: "data plane: IPv6 / IPv4, gateway CPU per GB, one IPv4 and one IPv6 rule (median of 16 paired rounds)", Pkg: "/tunnel", Bench: "BenchmarkIPv6CPU", Unit: "cpu-ipv6/ipv4", Goal: "0.95-1.05"},
	{Label: "data plane: IPv6 / IPv4, gateway CPU per GB, 10,000 rules over 1,000 peers", Pkg: "/tunnel", Bench: "BenchmarkIPv6CPU", Unit: "cpu-ipv6/ipv4-10k-rules", Goal: "0.95-1.05"},
	{Label: "data plane: IPv6 policy cost in CPU per GB, 10,000 rules over 1,000 peers vs one rule", Pkg: "/tunnel", Bench: "BenchmarkIPv6CPU", Unit: "cpu-policy-cost-ipv6-%", Goal: "<= 5"},
	{Label: "data plane: IPv4 policy cost in CPU per GB in the same run, for comparison", Pkg: "/tunnel", Bench: "BenchmarkIPv6CPU", Unit: "cpu-policy-cost-ipv4-same-run-%"},
	{Label: "data plane: IPv6, 100,000 rules vs 10 rules in CPU per GB", Pkg: "/tunnel", Bench: "BenchmarkIPv6CPU", Unit: "cpu-100k-vs-10-rules-ipv6-%", Goal: "within ±5"},
	{Label: "data plane: IPv6 policy cost in CPU per GB net of idle, 10,000 rules vs one", Pkg: "/tunnel", Bench: "BenchmarkIPv6CPU", Unit: "cpu-net-policy-cost-ipv6-%"},
	{Label: "data plane: IPv6, 100,000 rules vs 10 rules in CPU per GB net of idle", Pkg: "/tunnel", Bench: "BenchmarkIPv6CPU", Unit: "cpu-net-100k-vs-10-rules-ipv6-%"},
	{Label: "gateway's device poll (sessions, live counters; every 2 s), 1,000 peers: CPU per poll", Pkg: "/tunnel", Bench: "BenchmarkDevicePoll", Unit: "cpu-us/poll-direct"},
	{Label: "the same poll through UAPI and wgctrl, as before AppendPeerStats", Pkg: "/tunnel", Bench: "BenchmarkDevicePoll", Unit: "cpu-us/poll-uapi"},
	{Label: "DNS: upstream answer to its addresses enforced p99 (the answer waits for it), 10,000 clients, median of 5 rounds", Pkg: "/tunnel", Bench: "BenchmarkDNSForwarder", Unit: "grant-p99-ms", Goal: "< 5"},
	{Label: "DNS: upstream answer to its addresses enforced p50, median of 5 rounds", Pkg: "/tunnel", Bench: "BenchmarkDNSForwarder", Unit: "grant-p50-ms"},
	{Label: "DNS: CPU per first answer (user + system: the kernel's transaction), load-independent", Pkg: "/tunnel", Bench: "BenchmarkDNSForwarder", Unit: "cpu-us/first-answer"},
	{Label: "DNS: Go heap allocated per first answer", Pkg: "/tunnel", Bench: "BenchmarkDNSForwarder", Unit: "alloc-B/first-answer"},
	{Label: "machine load average while the DNS forwarder was measured", Pkg: "/tunnel", Bench: "BenchmarkDNSForwarder", Unit: "load1"},
	{Label: "DNS forwarder, names in use, 10,000 clients' grants", Pkg: "/tunnel", Bench: "BenchmarkDNSForwarder", Unit: "queries/s-repeated", Goal: ">= 20000"},
	{Label: "DNS forwarder, first answers (a kernel write each)", Pkg: "/tunnel", Bench: "BenchmarkDNSForwarder", Unit: "queries/s-first-answers"},
	{Label: "DNS forwarder, CPU per query of names in use (load generator included), load-independent", Pkg: "/tunnel", Bench: "BenchmarkDNSForwarder", Unit: "cpu-us/query-repeated"},
	{Label: "converge 10,000 peers at start", Pkg: "/tunnel", Bench: "BenchmarkConverge", Unit: "converge-10k-s", Goal: "< 2"},
	{Label: "baseline: stock wireguard-go taking the same 10,000 peers", Pkg: "/tunnel", Bench: "BenchmarkConverge", Unit: "stock-setconf-10k-s"},
	{Label: "converge 10,000 peers on kernel WireGuard, in a QEMU machine under software emulation (no goal)", Pkg: "/tunnel", Bench: "BenchmarkConvergeKernelVM", Unit: "vm-kernel-converge-10k-s"},
	{Label: "SCIM active=false to client map gone on 3 nodes p99 (moonshot < 200)", Pkg: "/cmd/internal/apitest", Bench: "BenchmarkSCIMDeprovision", Unit: "deactivate-p99-ms", Goal: "< 1000"},
	{Label: "SCIM active=false to client map gone on 3 nodes p50", Pkg: "/cmd/internal/apitest", Bench: "BenchmarkSCIMDeprovision", Unit: "deactivate-p50-ms"},
	{Label: "SCIM group removal to client map gone on 3 nodes p99 (moonshot < 200)", Pkg: "/cmd/internal/apitest", Bench: "BenchmarkSCIMDeprovision", Unit: "group-removal-p99-ms", Goal: "< 1000"},
	{Label: "SCIM group removal to client map gone on 3 nodes p50", Pkg: "/cmd/internal/apitest", Bench: "BenchmarkSCIMDeprovision", Unit: "group-removal-p50-ms"},
	{Label: "IdP group removal to client map gone on 3 nodes p99 (moonshot < 200)", Pkg: "/cmd/internal/continuous", Bench: "BenchmarkIdPGroupRemoval", Unit: "group-removal-p99-ms", Goal: "< 1000"},
	{Label: "IdP group removal to client map gone on 3 nodes p50", Pkg: "/cmd/internal/continuous", Bench: "BenchmarkIdPGroupRemoval", Unit: "group-removal-p50-ms"},
	{Label: "one revalidation round, 100 users removed at the OP, to all gone on 3 nodes", Pkg: "/cmd/internal/continuous", Bench: "BenchmarkIdPGroupRemoval", Unit: "revalidation-round-100-ms"},
	{Label: "flow aggregation, conntrack events per second on one core", Pkg: "/tunnel", Bench: "BenchmarkFlowAggregation", Unit: "events/s", Goal: ">= 100000"},
	{Label: "flow aggregation RSS after 6 M events in one interval", Pkg: "/tunnel", Bench: "BenchmarkFlowAggregation", Unit: "rss-MiB"},
	{Label: "report access over 90 days, 1,000 users, 9 M flows: who reached a service (moonshot < 200)", Pkg: "/report", Bench: "BenchmarkAccess90d/who-reached-dst-port", Unit: "ms/report", Goal: "< 2000"},
	{Label: "report access over 90 days, 1,000 users, 9 M flows: everything (moonshot < 200)", Pkg: "/report", Bench: "BenchmarkAccess90d/everything", Unit: "ms/report", Goal: "< 2000"},
	{Label: "policy replay of one profile change over 7 days of that traffic", Pkg: "/report", Bench: "BenchmarkReplay7d", Unit: "ms/replay", Goal: "< 5000"},
	{Label: "report entitlements --at: 1,000 users, 90 days of daily sign-ins and weekly SCIM pushes (~100,000 history entries)", Pkg: "/report", Bench: "BenchmarkEntitlementsAt", Unit: "ms/report"},
	{Label: "rollup fold (rebuild) rate, flow events of 5 tuples", Pkg: "/report", Bench: "BenchmarkRollupFold", Unit: "records/s"},
	{Label: "rollup fold (rebuild) rate, flow tuples", Pkg: "/report", Bench: "BenchmarkRollupFold", Unit: "flows/s"},
	{Label: "flow event in the journal (one user's 5 tuples of a minute)", Pkg: "/report", Bench: "BenchmarkFlowJournalGrowth", Unit: "record-bytes"},
	{Label: "journal bytes per flow tuple (record, hash chain, key index, pages)", Pkg: "/report", Bench: "BenchmarkFlowJournalGrowth", Unit: "journal-bytes/flow", Goal: "<= 416"},
	{Label: "journal per user-day (5 tuples per minute, 8 hours)", Pkg: "/report", Bench: "BenchmarkFlowJournalGrowth", Unit: "journal-bytes/user-day"},
	{Label: "journal growth per node, 1,000 users for a day", Pkg: "/report", Bench: "BenchmarkFlowJournalGrowth", Unit: "GB/day-1000-users", Goal: "<= 1"},
	{Label: "each retained Raft snapshot, per flow tuple (two are kept)", Pkg: "/report", Bench: "BenchmarkFlowJournalGrowth", Unit: "snapshot-bytes/flow"},
	{Label: "Raft log per flow tuple until compacted (bounded)", Pkg: "/report", Bench: "BenchmarkFlowJournalGrowth", Unit: "raft-log-bytes/flow"},
	{Label: "journal per node, 1,000 users for a day, once pruned past the flow window (stubs, checkpoints, flow summaries)", Pkg: "/report", Bench: "BenchmarkFlowJournalGrowth", Unit: "MB/day-1000-users-pruned"},
	{Label: "flow summary per user-day (5 distinct tuples)", Pkg: "/report", Bench: "BenchmarkFlowJournalGrowth", Unit: "summary-bytes/user-day"},
	{Label: "journal per node, 1,000 users, a year at the defaults (30 days raw, 335 pruned)", Pkg: "/report", Bench: "BenchmarkFlowJournalGrowth", Unit: "GB/year-1000-users"},
	{Label: "journal per node, 1,000 users, the audit retention (30 days raw, 370 pruned)", Pkg: "/report", Bench: "BenchmarkFlowJournalGrowth", Unit: "GB/400d-1000-users"},
	{Label: "journal per node, 1,000 users, a year if flow records were not pruned", Pkg: "/report", Bench: "BenchmarkFlowJournalGrowth", Unit: "GB/year-1000-users-unpruned"},
	{Label: "re-evaluating 10,000 users after one group change", Pkg: "/profiles", Bench: "BenchmarkReevaluate", Unit: "reevaluate-10k-s", Goal: "< 2"},
	{Label: "console page overview p99 (10k users, 5k peers, 90 days)", Pkg: "/cmd/internal/console", Bench: "BenchmarkConsolePages/overview", Unit: "p99-ms", Goal: "< 200"},
	{Label: "console page people p99 (10k users, 5k peers, 90 days)", Pkg: "/cmd/internal/console", Bench: "BenchmarkConsolePages/people", Unit: "p99-ms", Goal: "< 200"},
	{Label: "console page people-search p99 (10k users, 5k peers, 90 days)", Pkg: "/cmd/internal/console", Bench: "BenchmarkConsolePages/people-search", Unit: "p99-ms", Goal: "< 200"},
	{Label: "console page person p99 (10k users, 5k peers, 90 days)", Pkg: "/cmd/internal/console", Bench: "BenchmarkConsolePages/person", Unit: "p99-ms", Goal: "< 200"},
	{Label: "console page sessions p99 (10k users, 5k peers, 90 days)", Pkg: "/cmd/internal/console", Bench: "BenchmarkConsolePages/sessions", Unit: "p99-ms", Goal: "< 200"},
	{Label: "console page sessions-filtered p99 (10k users, 5k peers, 90 days)", Pkg: "/cmd/internal/console", Bench: "BenchmarkConsolePages/sessions-filtered", Unit: "p99-ms", Goal: "< 200"},
	{Label: "console page profiles p99 (10k users, 5k peers, 90 days)", Pkg: "/cmd/internal/console", Bench: "BenchmarkConsolePages/profiles", Unit: "p99-ms", Goal: "< 200"},
	{Label: "console page profiles-edit p99 (10k users, 5k peers, 90 days)", Pkg: "/cmd/internal/console", Bench: "BenchmarkConsolePages/profiles-edit", Unit: "p99-ms", Goal: "< 200"},
	{Label: "console page traffic-7d p99 (10k users, 5k peers, 90 days)", Pkg: "/cmd/internal/console", Bench: "BenchmarkConsolePages/traffic-7d", Unit: "p99-ms", Goal: "< 200"},
	{Label: "console page traffic-90d p99 (10k users, 5k peers, 90 days)", Pkg: "/cmd/internal/console", Bench: "BenchmarkConsolePages/traffic-90d", Unit: "p99-ms", Goal: "< 200"},
	{Label: "console page traffic-90d CPU per request, p50 (less moved by the machine's load)", Pkg: "/cmd/internal/console", Bench: "BenchmarkConsolePages/traffic-90d", Unit: "cpu-p50-ms"},
	{Label: "console page traffic-user-90d p99 (10k users, 5k peers, 90 days)", Pkg: "/cmd/internal/console", Bench: "BenchmarkConsolePages/traffic-user-90d", Unit: "p99-ms", Goal: "< 200"},
	{Label: "console page report-access-30d p99 (10k users, 5k peers, 90 days)", Pkg: "/cmd/internal/console", Bench: "BenchmarkConsolePages/report-access-30d", Unit: "p99-ms", Goal: "< 200"},
	{Label: "console page report-access-30d CPU per request, p50 (less moved by the machine's load)", Pkg: "/cmd/internal/console", Bench: "BenchmarkConsolePages/report-access-30d", Unit: "cpu-p50-ms"},
	{Label: "console page report-entitlements-7d p99 (10k users, 5k peers, 90 days)", Pkg: "/cmd/internal/console", Bench: "BenchmarkConsolePages/report-entitlements-7d", Unit: "p99-ms", Goal: "< 200"},
	{Label: "console page audit-7d p99 (10k users, 5k peers, 90 days)", Pkg: "/cmd/internal/console", Bench: "BenchmarkConsolePages/audit-7d", Unit: "p99-ms", Goal: "< 200"},
	{Label: "console page audit-user p99 (10k users, 5k peers, 90 days)", Pkg: "/cmd/internal/console", Bench: "BenchmarkConsolePages/audit-user", Unit: "p99-ms", Goal: "< 200"},
	{Label: "behind the LB: client traffic gap when its node dies", Pkg: "/deploy/local", Bench: "BenchmarkDrill", Unit: "node-death-gap-s", Goal: "< 3"},
	{Label: "behind the LB: leader kill to next issuance", Pkg: "/deploy/local", Bench: "BenchmarkDrill", Unit: "leader-kill-to-issue-s", Goal: "< 3"},
	{Label: "behind the LB: revocation on all 3 nodes p99", Pkg: "/deploy/local", Bench: "BenchmarkDrill", Unit: "revoke-3-nodes-p99-ms", Goal: "< 1000"},
}

func isRoot() bool { return os.Geteuid() == 0 }
