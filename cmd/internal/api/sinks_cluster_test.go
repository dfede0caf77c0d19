package api_test

import (
	"context"
	"encoding/json"
	"fmt"
	"io"
	"log/slog"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/ferryvpn/ferry/audit"
	"github.com/ferryvpn/ferry/audit/audittest"
	"github.com/ferryvpn/ferry/cluster"
	"github.com/ferryvpn/ferry/cmd/internal/apitest"
	"github.com/ferryvpn/ferry/cmd/internal/wire"
)

// Three nodes; the network sinks (Splunk HEC with indexer acknowledgement,
// and rsyslog over RELP/TLS) are added only through the API ferryctl
// uses; the leader is killed twice while records flow. Afterwards both
// receivers hold every record, and every node's file sink holds the whole
// journal.
func TestSinksAreClusterConfiguration(t *testing.T) {
	servers := apitest.StartCluster(t, 3)
	c := servers[0].Cluster
	hec := audittest.NewHEC(t, audittest.HECOptions{Ack: true})
	rs := audittest.StartRsyslog(t, audittest.RsyslogOptions{RELP: true, ClientCert: true})
	certPEM, keyPEM := rs.CA.Issue(t, "ferry-node")

	// Every node runs an exporter, as ferryd does: its own file sink, and
	// whatever network sinks the cluster stores.
	var mu sync.Mutex
	exporters := make([]*audit.Exporter, 3)
	files := make([]string, 3)
	startExporter := func(i int) {
		fs, err := audit.NewFileSink(audit.FileSinkConfig{Name: "local", Path: files[i]})
		if err != nil {
			t.Fatal(err)
		}
		x, err := audit.NewExporter(audit.ExporterConfig{Store: c.Node(i), Sinks: []audit.Sink{fs},
			Stored: &audit.SinkStore{Node: c.Node(i), Key: servers[i].MasterKey}, BatchSize: 200,
			Poll: 10 * time.Millisecond, CursorInterval: 50 * time.Millisecond, MinBackoff: 20 * time.Millisecond, MaxBackoff: 300 * time.Millisecond,
			Logger: slog.New(slog.NewTextHandler(io.Discard, nil))})
		if err != nil {
			t.Fatal(err)
		}
		mu.Lock()
		exporters[i] = x
		mu.Unlock()
	}
	for i := range files {
		files[i] = filepath.Join(t.TempDir(), "audit", "audit.jsonl")
		startExporter(i)
	}
	t.Cleanup(func() {
		mu.Lock()
		defer mu.Unlock()
		for _, x := range exporters {
			if x != nil {
				x.Close()
			}
		}
	})

	admin := clientFor(t, servers[1], servers[1].Admin(t))
	if l, err := admin.AuditSinks(bg(t)); err != nil || !l.NoNetworkSink {
		t.Fatalf("before any sink: %+v, %v; want no network sink reported", l, err)
	}
	if _, err := admin.AddAuditSink(bg(t), wire.AuditSink{Name: "splunk", Type: "hec", URL: hec.URL, Token: hec.Token(), Ack: true}); err != nil {
		t.Fatal(err)
	}
	if _, err := admin.AddAuditSink(bg(t), wire.AuditSink{Name: "siem", Type: "relp", Addr: rs.Addr, CA: string(rs.CA.CertPEM),
		ServerName: "localhost", ClientCert: string(certPEM), ClientKey: string(keyPEM)}); err != nil {
		t.Fatal(err)
	}
	shown, err := admin.AuditSink(bg(t), "splunk")
	if err != nil || shown.Token != "(sealed)" {
		t.Fatalf("show: %+v, %v; want the token sealed, never shown", shown, err)
	}
	if res, err := admin.TestAuditSink(bg(t), "siem"); err != nil || !res.OK || !strings.Contains(res.Answer, "200") {
		t.Fatalf("sink test: %+v, %v; want the receiver's 200", res, err)
	}

	// Records flow from a writer on a node that is never killed... until
	// it is: the writer follows whichever node is up.
	logs := make([]*audit.Log, 3)
	for i := range logs {
		l, err := audit.New(audit.Config{Store: c.Node(i)})
		if err != nil {
			t.Fatal(err)
		}
		logs[i] = l
	}
	stop := make(chan struct{})
	var wg sync.WaitGroup
	var written sync.Map
	for w := 0; w < 3; w++ {
		wg.Add(1)
		go func(w int) {
			defer wg.Done()
			for i := 0; ; i++ {
				select {
				case <-stop:
					return
				default:
				}
				mu.Lock()
				l := logs[w]
				mu.Unlock()
				r, err := l.Append(context.Background(), audit.Event{Type: audit.TypeLogin, Outcome: audit.Success, Actor: audit.Actor{UserID: fmt.Sprint("u", w, "-", i)}})
				if err == nil {
					written.Store(r.ID, true)
				}
			}
		}(w)
	}
	for kill := 0; kill < 2; kill++ {
		pollUntil(t, 20*time.Second, func() error {
			head, _, _ := c.Node(c.Leader(5 * time.Second)).JournalHead()
			cur, _, _ := audit.ReadCursor(context.Background(), c.Node(c.Leader(5*time.Second)), "siem")
			if cur < 200*uint64(kill+1) || head == cur {
				return fmt.Errorf("export not under way: cursor %d, head %d", cur, head)
			}
			return nil
		})
		li := c.Leader(5 * time.Second)
		mu.Lock()
		exporters[li].Close()
		exporters[li] = nil
		logs[li].Close()
		mu.Unlock()
		c.Stop(li) // mid-export
		c.StartNode(li)
		l, err := audit.New(audit.Config{Store: c.Node(li)})
		if err != nil {
			t.Fatal(err)
		}
		mu.Lock()
		logs[li] = l
		mu.Unlock()
		startExporter(li)
	}
	close(stop)
	wg.Wait()

	var head uint64
	pollUntil(t, 60*time.Second, func() error {
		leader := c.Node(c.Leader(5 * time.Second))
		head, _, _ = leader.JournalHead()
		for _, sink := range []string{"splunk", "siem"} {
			if cur, _, _ := audit.ReadCursor(context.Background(), leader, sink); cur < head {
				return fmt.Errorf("sink %s at %d of %d", sink, cur, head)
			}
		}
		return nil
	})
	ids := map[string]bool{}
	err = audit.Scan(context.Background(), c.Node(c.Leader(5*time.Second)), audit.Filter{}, func(e *audit.Entry) error {
		if e.Event != nil {
			ids[e.Event.ID] = true
		}
		return nil
	})
	if err != nil {
		t.Fatal(err)
	}
	missing := 0
	written.Range(func(k, _ any) bool {
		if !ids[k.(string)] {
			missing++
		}
		return true
	})
	if missing > 0 {
		t.Fatalf("%d acknowledged events not in the journal", missing)
	}
	// The receivers hold every record of the journal.
	gotHEC := map[uint64]bool{}
	for _, ev := range hec.Events() {
		var line struct{ Seq uint64 }
		json.Unmarshal(ev, &line)
		gotHEC[line.Seq] = true
	}
	msgs, err := rs.Messages()
	if err != nil {
		t.Fatal(err)
	}
	gotRELP := map[uint64]bool{}
	for _, m := range msgs {
		var line struct{ Seq uint64 }
		json.Unmarshal([]byte(m.Msg), &line)
		gotRELP[line.Seq] = true
	}
	for seq := uint64(1); seq <= head; seq++ {
		if !gotHEC[seq] || !gotRELP[seq] {
			t.Fatalf("record %d: at HEC %v, at RELP %v", seq, gotHEC[seq], gotRELP[seq])
		}
	}
	// Every node's file holds the whole journal.
	for i, f := range files {
		pollUntil(t, 30*time.Second, func() error {
			fh, err := os.Open(f)
			if err != nil {
				return err
			}
			defer fh.Close()
			rep, err := audit.VerifyFile(fh, audit.VerifyOptions{SkipSignatures: true, AcceptUnsignedTail: true})
			if err != nil || rep.First != 1 || rep.Last < head || rep.Records < head {
				return fmt.Errorf("node %d's file: %+v, %v; want records 1..%d", i, rep, err, head)
			}
			return nil
		})
	}
	t.Logf("%d records; HEC holds %d, RELP %d messages", head, len(gotHEC), len(msgs))
	_ = cluster.Local
}
