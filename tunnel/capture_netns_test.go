package tunnel_test

import (
	"bytes"
	"context"
	"encoding/base64"
	"io"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/ferryvpn/ferry/tunnel/capture"
	"github.com/ferryvpn/ferry/tunnel/tunneltest"
)

// TestCaptureMovingClient captures one client (bob, c2) on both gateways
// of the cluster at once while his tunnel moves from the first to the
// second, with traffic to an allowed and a denied destination and another
// client (alice, c1) busy beside him. The merged pcapng, read by tshark and
// tcpdump, holds his packets from both nodes under their interface names,
// in time order, the denied attempts as unanswered SYNs, and nothing of
// alice.
func TestCaptureMovingClient(t *testing.T) {
	tunneltest.Require(t, "tshark", "tcpdump")
	tp := startTopology(t)
	c1, c2 := tp.c1, tp.c2
	waitFor(t, "c2 tcp 10.99.0.1:7001 through s1", 15*time.Second, probe(c2, "tcp", "10.99.0.1:7001"))
	waitFor(t, "c1 tcp 10.99.0.1:7001", 15*time.Second, probe(c1, "tcp", "10.99.0.1:7001"))
	const bob = "100.64.0.12"
	for _, s := range []*tunneltest.Agent{tp.s1, tp.s2} {
		s.Must(t, tunneltest.Request{Op: "capture_start", Addr: bob, Key: "tcp", Bytes: 96, Timeout: 2 * time.Minute})
	}
	traffic := func(via string) {
		if err := probe(c2, "tcp", "10.99.0.1:7001")(); err != nil {
			t.Fatalf("c2 allowed through %s: %v", via, err)
		}
		if err := probe(c2, "tcp", "10.99.0.1:7003")(); err == nil {
			t.Fatalf("c2 reached a denied port through %s", via)
		}
		probe(c1, "tcp", "10.99.0.1:7001")() // alice, beside him
	}
	traffic("s1")
	tp.moveTo("10.200.0.1", "10.200.0.2")
	waitFor(t, "c2 through s2", 40*time.Second, probe(c2, "tcp", "10.99.0.1:7001"))
	traffic("s2")

	var streams []capture.NodeStream
	for _, s := range []struct {
		id string
		a  *tunneltest.Agent
	}{{"n1", tp.s1}, {"n2", tp.s2}} {
		r := s.a.Must(t, tunneltest.Request{Op: "capture_stop"})
		data, err := base64.StdEncoding.DecodeString(r.Text)
		if err != nil {
			t.Fatal(err)
		}
		streams = append(streams, capture.NodeStream{Name: s.id, Open: func(context.Context) (io.ReadCloser, error) {
			return io.NopCloser(bytes.NewReader(data)), nil
		}})
	}
	var out bytes.Buffer
	res, err := capture.Merge(context.Background(), streams, "tcp", capture.Limits{Duration: time.Minute, MaxBytes: 64 << 20, Snaplen: 96}, &out)
	if err != nil {
		t.Fatal(err)
	}
	file := filepath.Join(t.TempDir(), "bob.pcapng")
	if err := os.WriteFile(file, out.Bytes(), 0o600); err != nil {
		t.Fatal(err)
	}
	b, err := exec.Command("tshark", "-r", file, "-T", "fields", "-E", "separator=/t",
		"-e", "frame.interface_name", "-e", "frame.time_epoch", "-e", "ip.src", "-e", "ip.dst",
		"-e", "tcp.srcport", "-e", "tcp.dstport", "-e", "tcp.flags.syn", "-e", "tcp.flags.ack", "-e", "frame.cap_len").Output() // tshark warns root on stderr
	if err != nil {
		t.Fatalf("tshark: %v\n%s", err, b)
	}
	iface := map[string]string{"n1": "n1/" + tp.net.Name("fw1-"), "n2": "n2/" + tp.net.Name("fw2-")}
	type seen struct{ allowedBoth, deniedSyn, deniedAnswer bool }
	per := map[string]*seen{iface["n1"]: {}, iface["n2"]: {}}
	var last float64
	lines := strings.Split(strings.TrimSpace(string(b)), "\n")
	for _, l := range lines {
		f := strings.Split(l, "\t")
		if len(f) < 9 {
			t.Fatalf("tshark line %q", l)
		}
		name, src, dst, sport, dport, syn, ack := f[0], f[2], f[3], f[4], f[5], f[6], f[7]
		ts, _ := strconv.ParseFloat(f[1], 64)
		if ts < last {
			t.Errorf("packets out of time order at %q", l)
		}
		last = ts
		st := per[name]
		if st == nil {
			t.Fatalf("packet on unknown interface %q (want %v)", name, iface)
		}
		if src != bob && dst != bob {
			t.Fatalf("a packet of another client was kept: %q", l)
		}
		if n, _ := strconv.Atoi(f[8]); n > 100 { // 96 and the 4-byte loopback header
			t.Errorf("packet kept %d bytes, more than the snap length: %q", n, l)
		}
		switch {
		case dport == "7001" && src == bob, sport == "7001" && dst == bob:
			if sport == "7001" {
				st.allowedBoth = true
			}
		case dport == "7003" && src == bob && syn == "1" && ack == "0":
			st.deniedSyn = true
		case sport == "7003":
			st.deniedAnswer = true
		}
	}
	for name, st := range per {
		if !st.allowedBoth || !st.deniedSyn || st.deniedAnswer {
			t.Errorf("%s: allowed flow both ways %v, denied SYNs %v, denied answered %v; want true, true, false\n%s",
				name, st.allowedBoth, st.deniedSyn, st.deniedAnswer, strings.Join(lines, "\n"))
		}
	}
	if res.Packets == 0 || len(lines) != int(res.Packets) {
		t.Errorf("merged %d packets, tshark read %d", res.Packets, len(lines))
	}
	if td, err := exec.Command("tcpdump", "-nr", file).CombinedOutput(); err != nil || strings.Contains(string(td), "100.64.0.11") {
		t.Errorf("tcpdump -r: %v\n%s", err, td)
	}
}
