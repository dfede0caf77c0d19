package audit_test

import (
	"bufio"
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"io"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"sort"
	"strconv"
	"sync"
	"sync/atomic"
	"syscall"
	"testing"
	"time"

	"github.com/ferryvpn/ferry/audit"
	"github.com/ferryvpn/ferry/audit/audittest"
	"github.com/ferryvpn/ferry/cluster"
	"github.com/ferryvpn/ferry/cluster/clustertest"
)

func percentile(d []time.Duration, p int) time.Duration {
	if len(d) == 0 {
		return 0
	}
	s := append([]time.Duration(nil), d...)
	sort.Slice(s, func(i, j int) bool { return s[i] < s[j] })
	return s[min(len(s)-1, (len(s)*p+99)/100-1)]
}

// BenchmarkIngest records events through Logs on all three nodes of a
// cluster on loopback with fsync on, as the data plane and the API would
// (four flows for every login), from 512 concurrent writers spread over the
// nodes, and reports throughput and the latency of each Record call (from
// the call to the acknowledgement of the quorum commit). The three nodes
// share one disk here, so every commit waits for several fsyncs on it.
//
// The writers are closed-loop, so by Little's law their number is the
// throughput times the mean latency: 512 loads the cluster near the rate
// it sustains on a 2-core VM without queueing beyond it, where latency
// grows with every writer added. Timing starts after a warm-up of five
// events per writer (connections, pools, pacing), once all writers are
// running, and ends when the last measured event is acknowledged.
//
// On a shared machine the nodes get only part of the cores, and latency
// grows with the wait for them: events/cpu-s (events per CPU-second of the
// whole three-node cluster) and load1 (the machine's load average) say
// what the throughput and latency were measured under.
func BenchmarkIngest(b *testing.B) {
	c := clustertest.Start(b, 3, clustertest.Options{WriteTimeout: 10 * time.Second})
	defer c.Close()
	logs := make([]*audit.Log, 3)
	for i := range logs {
		l, err := audit.New(audit.Config{Store: c.Node(i), Logger: quietLogger()})
		if err != nil {
			b.Fatal(err)
		}
		defer l.Close()
		logs[i] = l
	}
	const writers = 512
	const warm = 5 * writers
	lat := make([][]time.Duration, writers)
	var next atomic.Int64
	var start time.Time // when the first measured event was taken
	warmed := make(chan struct{})
	var wg sync.WaitGroup
	for w := 0; w < writers; w++ {
		wg.Add(1)
		go func(w int) {
			defer wg.Done()
			for {
				n := int(next.Add(1))
				i := n - warm // events 1 to b.N are measured
				if i > b.N {
					return
				}
				if i == 1 {
					start = time.Now()
					close(warmed)
				}
				e := flowEvent(n)
				if n%5 == 0 {
					e = loginEvent(n)
				}
				t0 := time.Now()
				if err := logs[w%3].Record(context.Background(), e); err != nil {
					b.Error(err)
					return
				}
				if i >= 1 {
					lat[w] = append(lat[w], time.Since(t0))
				}
			}
		}(w)
	}
	done := make(chan struct{})
	go func() {
		wg.Wait()
		close(done)
	}()
	var cpu0 time.Duration
	select {
	case <-warmed:
		b.ResetTimer()
		cpu0 = processCPU(b)
	case <-done: // every writer failed during the warm-up
	}
	<-done
	elapsed := time.Since(start)
	cpu := processCPU(b) - cpu0
	b.StopTimer()
	if b.Failed() {
		return
	}
	var all []time.Duration
	for _, l := range lat {
		all = append(all, l...)
	}
	b.ReportMetric(float64(len(all))/elapsed.Seconds(), "events/s")
	b.ReportMetric(percentile(all, 50).Seconds()*1000, "p50-ms")
	b.ReportMetric(percentile(all, 99).Seconds()*1000, "p99-ms")
	// What the figures above depend on: the CPU the three nodes (all in
	// this process) spent per event, and how loaded the machine was.
	b.ReportMetric(float64(len(all))/cpu.Seconds(), "events/cpu-s")
	if load, ok := loadAverage(); ok {
		b.ReportMetric(load, "load1")
	}
}

// loadAverage returns the machine's one-minute load average (Linux).
func loadAverage() (float64, bool) {
	b, err := os.ReadFile("/proc/loadavg")
	if err != nil {
		return 0, false
	}
	var load float64
	if _, err := fmt.Sscan(string(b), &load); err != nil {
		return 0, false
	}
	return load, true
}

// preloaded returns a one-node cluster holding n events.
func preloaded(b *testing.B, n int) *cluster.Node {
	b.Helper()
	c := clustertest.Start(b, 1, clustertest.Options{Fast: true, Tune: func(cfg *cluster.Config) { cfg.NoSync = true }})
	b.Cleanup(c.Close)
	l, err := audit.New(audit.Config{Store: c.Node(0), Logger: quietLogger(), BatchSize: 4096})
	if err != nil {
		b.Fatal(err)
	}
	defer l.Close()
	var wg sync.WaitGroup
	for w := 0; w < 256; w++ {
		wg.Add(1)
		go func(w int) {
			defer wg.Done()
			for i := w; i < n; i += 256 {
				e := flowEvent(i)
				if i%5 == 0 {
					e = loginEvent(i)
				}
				if err := l.Record(context.Background(), e); err != nil {
					b.Error(err)
					return
				}
			}
		}(w)
	}
	wg.Wait()
	return c.Node(0)
}

// syslogCounter is a TCP syslog receiver that counts octet-counted frames.
type syslogCounter struct {
	ln     net.Listener
	frames atomic.Int64
}

func newSyslogCounter(b *testing.B) *syslogCounter {
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		b.Fatal(err)
	}
	s := &syslogCounter{ln: ln}
	b.Cleanup(func() { ln.Close() })
	go func() {
		for {
			c, err := ln.Accept()
			if err != nil {
				return
			}
			go func() {
				defer c.Close()
				br := bufio.NewReaderSize(c, 1<<20)
				for {
					n, err := br.ReadString(' ')
					if err != nil {
						return
					}
					size, err := strconv.Atoi(n[:len(n)-1])
					if err != nil {
						return
					}
					if _, err := br.Discard(size); err != nil {
						return
					}
					s.frames.Add(1)
				}
			}()
		}
	}()
	return s
}

// BenchmarkExport measures the exporter draining a journal of records into
// a sink: a synced file, a syslog receiver over TCP, and a real rsyslogd
// over RELP/TLS (imrelp), done when its cursor — which passes only
// acknowledged records — reaches the head.
func BenchmarkExport(b *testing.B) {
	const records = 100000
	node := preloaded(b, records)
	head, _, _ := node.JournalHead()
	for _, kind := range []string{"file", "syslog", "relp"} {
		b.Run(kind, func(b *testing.B) {
			var relp *audittest.Rsyslog
			if kind == "relp" {
				relp = audittest.StartRsyslog(b, audittest.RsyslogOptions{RELP: true, Buffered: true})
			}
			var total time.Duration
			for i := 0; i < b.N; i++ {
				b.StopTimer()
				// A fresh sink name per iteration of every run: a reused
				// name would find its cursor already at the head.
				name := fmt.Sprintf("%s-%d", kind, sinkSeq.Add(1))
				var sink audit.Sink
				var done func() bool
				var err error
				switch kind {
				case "file":
					var fs *audit.FileSink
					fs, err = audit.NewFileSink(audit.FileSinkConfig{Name: name, Path: filepath.Join(b.TempDir(), "audit.jsonl")})
					sink = fs
					// A file sink is node-local: its cursor is its own, not
					// the replicated one.
					done = func() bool { c, _ := fs.Cursor(); return c == head }
				case "syslog":
					rcv := newSyslogCounter(b)
					sink, err = audit.NewSyslogSink(audit.SyslogSinkConfig{Name: name, Addr: rcv.ln.Addr().String(), ResendAge: time.Millisecond})
					done = func() bool { return rcv.frames.Load() >= int64(head) }
				case "relp":
					sink, err = audit.NewRELPSink(audit.RELPSinkConfig{Name: name, Addr: relp.Addr, TLS: relp.CA.ClientTLS(b, "ferry-node")})
					done = func() bool { c, _, _ := audit.ReadCursor(context.Background(), node, name); return c == head }
				}
				if err != nil {
					b.Fatal(err)
				}
				b.StartTimer()
				start := time.Now()
				x, err := audit.NewExporter(audit.ExporterConfig{Store: node, Sinks: []audit.Sink{sink}, BatchSize: 2000, Poll: time.Millisecond, Logger: quietLogger()})
				if err != nil {
					b.Fatal(err)
				}
				// Poll finely: the export itself takes under a second.
				tick := time.NewTicker(time.Millisecond)
				deadline := time.Now().Add(2 * time.Minute)
				for !done() {
					if time.Now().After(deadline) {
						b.Fatalf("%s: export of %d records not finished after 2 minutes", kind, head)
					}
					<-tick.C
				}
				tick.Stop()
				total += time.Since(start)
				b.StopTimer()
				x.Close()
			}
			b.ReportMetric(float64(head)*float64(b.N)/total.Seconds(), "events/s")
		})
	}
}

// sinkSeq numbers benchmark sinks across runs of -count.
var sinkSeq atomic.Int64

// BenchmarkVerifyFile measures offline verification of a signed export of
// 100,000 records: as written (verbatim), and as SIEM pipelines re-encode
// it, where records whose bytes changed are canonicalized (RFC 8785)
// before they are hashed:
//
//   - reencoded: decoded into maps and encoded again (keys sorted, '<'
//     literal) with Python's ", " and ": " separators;
//   - jq: `jq -c .` (jq keeps key order and compacts);
//   - python: `json.dumps(json.loads(line))` (ASCII escapes, spaced
//     separators: every line changes);
//   - reordered: every object's keys reversed, odd spacing.
//
// It reports records/s (wall clock: the machine may be shared) and
// records per CPU-second of the whole process (user and system time), the
// cost that does not depend on what else runs; verification runs on every
// core, so on an idle machine records/s is about records/cpu-s times the
// cores. The external re-encoders are skipped, and say so, when jq or
// python3 is not installed.
func BenchmarkVerifyFile(b *testing.B) {
	const records = 100000
	node := preloaded(b, records)
	s := newSigner(b)
	cp, err := audit.NewCheckpointer(audit.CheckpointerConfig{Store: node, Signer: s, Logger: quietLogger()})
	if err != nil {
		b.Fatal(err)
	}
	cp.Checkpoint(context.Background())
	cp.Close()
	var buf bytes.Buffer
	st, err := audit.Export(context.Background(), &buf, node, audit.ExportOptions{Signer: s})
	if err != nil {
		b.Fatal(err)
	}
	type input struct {
		name     string
		reencode func(testing.TB, []byte) ([]byte, error)
	}
	for _, in := range []input{
		{"verbatim", func(_ testing.TB, f []byte) ([]byte, error) { return f, nil }},
		{"reencoded", reencodeForBench},
		{"jq", externalReencoder("jq", "-c", ".")},
		{"python", externalReencoder("python3", "-c", "import json,sys\nfor l in sys.stdin: print(json.dumps(json.loads(l)))")},
		{"reordered", externalReencoder("python3", "-c", "import json,sys\n"+
			"def rev(v):\n"+
			"  if isinstance(v, dict): return {k: rev(v[k]) for k in reversed(list(v))}\n"+
			"  if isinstance(v, list): return [rev(x) for x in v]\n"+
			"  return v\n"+
			"for l in sys.stdin: print(json.dumps(rev(json.loads(l)), separators=(' , ', ' : ')))")},
	} {
		b.Run(in.name, func(b *testing.B) {
			file, err := in.reencode(b, buf.Bytes())
			if err != nil {
				b.Skip(err)
			}
			b.SetBytes(int64(len(file)))
			b.ResetTimer()
			cpu0 := processCPU(b)
			for i := 0; i < b.N; i++ {
				rep, err := audit.VerifyFile(bytes.NewReader(file), audit.VerifyOptions{Keys: s.Keys(), RequireTrailer: true})
				if err != nil || rep.Records != st.Records || (in.name == "python" || in.name == "reordered") && rep.Reencoded == 0 {
					b.Fatalf("%+v, %v", rep, err)
				}
			}
			cpu := processCPU(b) - cpu0
			b.ReportMetric(float64(st.Records)*float64(b.N)/b.Elapsed().Seconds(), "records/s")
			b.ReportMetric(float64(st.Records)*float64(b.N)/cpu.Seconds(), "records/cpu-s")
		})
	}
}

// processCPU returns the CPU time (user and system) this process used.
func processCPU(b *testing.B) time.Duration {
	var ru syscall.Rusage
	if err := syscall.Getrusage(syscall.RUSAGE_SELF, &ru); err != nil {
		b.Fatal(err)
	}
	return time.Duration(ru.Utime.Nano() + ru.Stime.Nano())
}

// externalReencoder re-encodes a file through a command, line by line,
// as a SIEM pipeline would; it fails when the command is not installed.
func externalReencoder(name string, args ...string) func(testing.TB, []byte) ([]byte, error) {
	return func(tb testing.TB, file []byte) ([]byte, error) {
		path, err := exec.LookPath(name)
		if err != nil {
			return nil, fmt.Errorf("%s not installed: this re-encoding is not measured", name)
		}
		cmd := exec.Command(path, args...)
		cmd.Stdin = bytes.NewReader(file)
		var stderr bytes.Buffer
		cmd.Stderr = &stderr
		out, err := cmd.Output()
		if err != nil {
			tb.Fatalf("%s: %v: %s", name, err, stderr.Bytes())
		}
		return out, nil
	}
}

// reencodeForBench re-encodes every line through maps with Python-like
// spacing: keys sorted, '<' literal, ", " and ": " separators.
func reencodeForBench(b testing.TB, file []byte) ([]byte, error) {
	var out bytes.Buffer
	for _, l := range bytes.Split(bytes.TrimSuffix(file, []byte("\n")), []byte("\n")) {
		var v any
		if err := json.Unmarshal(l, &v); err != nil {
			b.Fatal(err)
		}
		var one bytes.Buffer
		enc := json.NewEncoder(&one)
		enc.SetEscapeHTML(false)
		if err := enc.Encode(v); err != nil {
			b.Fatal(err)
		}
		line := bytes.ReplaceAll(one.Bytes(), []byte(`","`), []byte(`", "`))
		out.Write(bytes.ReplaceAll(line, []byte(`":"`), []byte(`": "`)))
	}
	return out.Bytes(), nil
}

var _ = io.Discard
