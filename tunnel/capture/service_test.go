package capture

import (
	"bytes"
	"context"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net/netip"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/ferryvpn/ferry/audit"
	"github.com/ferryvpn/ferry/cluster"
	"github.com/ferryvpn/ferry/cluster/clustertest"
	"github.com/ferryvpn/ferry/profiles"
	"golang.zx2c4.com/wireguard/tun"
	"golang.zx2c4.com/wireguard/tun/tuntest"
)

// recorder keeps audit events.
type recorder struct {
	mu  sync.Mutex
	evs []audit.Event
}

func (r *recorder) Record(_ context.Context, e audit.Event) error {
	r.mu.Lock()
	r.evs = append(r.evs, e)
	r.mu.Unlock()
	return nil
}

func (r *recorder) actions() []audit.Event {
	r.mu.Lock()
	defer r.mu.Unlock()
	return append([]audit.Event(nil), r.evs...)
}

// fakePlane is a node's embedded data plane: a tap on a channel TUN.
type fakePlane struct {
	tap *Tap
	dev tun.Device
}

func (p *fakePlane) Capture(f *Filter, snaplen int) (Source, error) {
	return p.tap.Open(f, snaplen), nil
}
func (p *fakePlane) Interface() string { return "wg0" }

// send writes a decrypted packet from a client into the plane.
func (p *fakePlane) send(t *testing.T, src string, dport uint16) {
	t.Helper()
	b := append(pkt4(src, "10.1.0.5", 17, 40000, dport, 0), bytes.Repeat([]byte{7}, 300)...)
	if _, err := p.dev.Write([][]byte{b}, 0); err != nil {
		t.Fatal(err)
	}
}

type captureCluster struct {
	c      *clustertest.Cluster
	svcs   []*Service
	planes []*fakePlane
	rec    *recorder
}

// startCaptureCluster runs a three-node cluster with a capture service on
// each node; edits adjust each node's Config.
func startCaptureCluster(t *testing.T, caps Caps, edits ...func(*Config)) *captureCluster {
	cc := &captureCluster{rec: &recorder{}}
	cc.c = clustertest.Start(t, 3, clustertest.Options{Fast: true})
	t.Cleanup(cc.c.Close)
	cc.c.WaitAllReady(10 * time.Second)
	for i := range 3 {
		n := cc.c.Node(i)
		st, err := profiles.New(profiles.Config{Cluster: n, Pool: netip.MustParsePrefix("10.99.0.0/16"), Recorder: cc.rec})
		if err != nil {
			t.Fatal(err)
		}
		ch := tuntest.NewChannelTUN()
		go func() {
			for range ch.Inbound {
			}
		}()
		p := &fakePlane{tap: NewTap(nil)}
		p.dev = p.tap.Wrap(ch.TUN())
		cfg := Config{Node: n, Local: p, Peers: st, Recorder: cc.rec, Caps: caps,
			StepUp: func(_ context.Context, _ audit.Actor, _ audit.Source, code string) error {
				if code != "123456" {
					return errors.New("wrong code")
				}
				return nil
			}}
		for _, e := range edits {
			e(&cfg)
		}
		svc, err := New(cfg)
		if err != nil {
			t.Fatal(err)
		}
		cc.svcs = append(cc.svcs, svc)
		cc.planes = append(cc.planes, p)
	}
	ctx := context.Background()
	for _, p := range []profiles.Peer{
		{ID: "pa", UserID: "u-alice", Email: "alice@example.com", Device: "laptop", Address: netip.MustParseAddr("10.99.0.2"), Profile: "eng", Expires: time.Now().Add(time.Hour)},
		{ID: "pb", UserID: "u-bob", Email: "bob@example.com", Device: "laptop", Address: netip.MustParseAddr("10.99.0.3"), Profile: "eng", Expires: time.Now().Add(time.Hour)},
	} {
		b, _ := json.Marshal(p)
		if _, err := cc.c.Node(0).Put(ctx, profiles.PeerPrefix+p.ID, b); err != nil {
			t.Fatal(err)
		}
	}
	clustertest.WaitFor(t, 10*time.Second, "peers replicated", func() error {
		for i := range 3 {
			kvs, _, err := cc.c.Node(i).List(ctx, profiles.PeerPrefix, cluster.Local)
			if err != nil || len(kvs) != 2 {
				return fmt.Errorf("node %d: %d peers, %v", i, len(kvs), err)
			}
		}
		return nil
	})
	return cc
}

func adminReq() Request {
	return Request{
		Actor: audit.Actor{UserID: "u-admin", Email: "admin@example.com", Role: "admin"}, Admin: true, TOTP: "123456",
		Reason: "alice: database times out", User: "alice@example.com", Duration: 1500 * time.Millisecond, MaxBytes: 1 << 20,
	}
}

// TestServiceAcrossNodes: a capture of one user runs on every node at
// once while her flow moves from node 0 to node 1; the merged file holds
// her packets from both, under each node's interface, in time order, and
// nothing of another client; start and stop are audit events, the stop
// naming the SHA-256 of the delivered file.
func TestServiceAcrossNodes(t *testing.T) {
	cc := startCaptureCluster(t, Caps{})
	var out bytes.Buffer
	done := make(chan error, 1)
	var res Result
	go func() {
		var err error
		res, err = cc.svcs[0].Run(clustertest.AsAdmin(context.Background()), adminReq(), &out)
		done <- err
	}()
	clustertest.WaitFor(t, 10*time.Second, "every node captures", func() error {
		for i, p := range cc.planes {
			if !p.tap.Active() {
				return fmt.Errorf("node %d not capturing yet", i)
			}
		}
		return nil
	})
	for i := range 3 {
		cc.planes[0].send(t, "10.99.0.2", uint16(100+i))
		cc.planes[0].send(t, "10.99.0.3", 9)
	}
	for i := range 3 {
		cc.planes[1].send(t, "10.99.0.2", uint16(200+i))
		cc.planes[2].send(t, "10.99.0.3", 9)
	}
	if err := <-done; err != nil {
		t.Fatal(err)
	}
	file := filepath.Join(t.TempDir(), "c.pcapng")
	os.WriteFile(file, out.Bytes(), 0o600)
	lines := tsharkFields(t, file, "frame.interface_name", "ip.src", "udp.dstport", "frame.cap_len")
	var want []string
	for i := range 3 {
		want = append(want, fmt.Sprintf("%s/wg0\t10.99.0.2\t%d\t100", cc.c.ID(0), 100+i))
	}
	for i := range 3 {
		want = append(want, fmt.Sprintf("%s/wg0\t10.99.0.2\t%d\t100", cc.c.ID(1), 200+i))
	}
	if strings.Join(lines, "\n") != strings.Join(want, "\n") {
		t.Fatalf("tshark read\n%s\nwant\n%s", strings.Join(lines, "\n"), strings.Join(want, "\n"))
	}
	sum := sha256.Sum256(out.Bytes())
	var start, stop *audit.Event
	for _, e := range cc.rec.actions() {
		switch e.Action {
		case "capture.start":
			start = &e
		case "capture.stop":
			stop = &e
		}
	}
	if start == nil || stop == nil {
		t.Fatalf("audit events missing: %+v", cc.rec.actions())
	}
	if start.Details["reason"] != "alice: database times out" || start.Details["clients"] != "10.99.0.2" || start.Actor.Email != "admin@example.com" ||
		strings.Count(start.Details["nodes"], ",") != 2 {
		t.Fatalf("start event %+v", start)
	}
	if stop.Details["sha256"] != hex.EncodeToString(sum[:]) || stop.Details["packets"] != "6" || stop.BytesIn != 6*96 || stop.Outcome != audit.Success {
		t.Fatalf("stop event %+v (file sha256 %x, result %+v)", stop, sum, res)
	}
	for i, p := range cc.planes {
		if p.tap.Active() {
			t.Fatalf("node %d still captures", i)
		}
	}
}

// TestServiceRefusals: a non-admin, a missing reason, a missing or wrong
// TOTP, limits over the caps, payloads the cluster does not allow and
// more than the concurrent captures allowed are refused, and every
// refusal is an audit event.
func TestServiceRefusals(t *testing.T) {
	cc := startCaptureCluster(t, Caps{MaxConcurrent: 1, MaxDuration: time.Minute})
	ctx := clustertest.AsAdmin(context.Background())
	tests := []struct {
		name string
		edit func(*Request)
		want error
	}{
		{"non-admin", func(r *Request) { r.Admin = false; r.Actor.Role = "user" }, ErrForbidden},
		{"no reason", func(r *Request) { r.Reason = "  " }, ErrInvalid},
		{"no totp", func(r *Request) { r.TOTP = "" }, ErrStepUp},
		{"stale totp", func(r *Request) { r.TOTP = "654321" }, ErrStepUp},
		{"two selectors", func(r *Request) { r.Profile = "eng" }, ErrInvalid},
		{"over the duration cap", func(r *Request) { r.Duration = time.Hour }, ErrInvalid},
		{"payloads not allowed", func(r *Request) { r.Snaplen = 1500 }, ErrInvalid},
		{"bad filter", func(r *Request) { r.Filter = "host example.com" }, ErrFilter},
		{"nobody", func(r *Request) { r.User = "carol@example.com" }, ErrNoClients},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			req := adminReq()
			tt.edit(&req)
			before := len(cc.rec.actions())
			_, err := cc.svcs[1].Run(ctx, req, io.Discard)
			if !errors.Is(err, tt.want) {
				t.Fatalf("err %v, want %v", err, tt.want)
			}
			evs := cc.rec.actions()[before:]
			if len(evs) != 1 || evs[0].Action != "capture.start" || evs[0].Outcome != audit.Failure || evs[0].Reason == "" {
				t.Fatalf("audit %+v, want one failed capture.start with its reason", evs)
			}
		})
	}
	t.Run("busy", func(t *testing.T) {
		done := make(chan error, 1)
		go func() {
			_, err := cc.svcs[0].Run(ctx, adminReq(), io.Discard)
			done <- err
		}()
		clustertest.WaitFor(t, 10*time.Second, "a capture runs", func() error {
			if rs, err := cc.svcs[0].Running(ctx); err != nil || len(rs) == 0 {
				return fmt.Errorf("none yet (%v)", err)
			}
			return nil
		})
		if _, err := cc.svcs[0].Run(ctx, adminReq(), io.Discard); !errors.Is(err, ErrBusy) {
			t.Fatalf("second capture: %v, want ErrBusy", err)
		}
		<-done
	})
}

// TestServiceNeedsProof: a capture whose context carries no
// administrator's proof is refused by every other node (the trust rule
// of forwarded requests): only the coordinating node's own part runs.
func TestServiceNeedsProof(t *testing.T) {
	cc := startCaptureCluster(t, Caps{})
	res, err := cc.svcs[0].Run(context.Background(), adminReq(), io.Discard)
	if err != nil {
		t.Fatal(err)
	}
	refused := 0
	for _, n := range res.Nodes {
		if n.Stopped == StopFailed && strings.Contains(n.Err, "no administrator's proof") {
			refused++
		}
	}
	if refused != 2 {
		t.Fatalf("nodes %+v: want the two other nodes to refuse", res.Nodes)
	}
}

// TestServicePayloadWhenAllowed: where the cluster allows payloads, a
// larger snap length keeps whole packets; the default keeps headers only.
func TestServicePayloadWhenAllowed(t *testing.T) {
	cc := startCaptureCluster(t, Caps{AllowPayload: true})
	for _, tc := range []struct {
		snaplen int
		capLen  string
	}{{0, "100"}, {1500, "332"}} {
		req := adminReq()
		req.Snaplen, req.Duration = tc.snaplen, time.Second
		var out bytes.Buffer
		done := make(chan error, 1)
		go func() {
			_, err := cc.svcs[2].Run(clustertest.AsAdmin(context.Background()), req, &out)
			done <- err
		}()
		clustertest.WaitFor(t, 10*time.Second, "node 2 captures", func() error {
			if !cc.planes[2].tap.Active() {
				return errors.New("not yet")
			}
			return nil
		})
		cc.planes[2].send(t, "10.99.0.2", 443)
		if err := <-done; err != nil {
			t.Fatal(err)
		}
		file := filepath.Join(t.TempDir(), "p.pcapng")
		os.WriteFile(file, out.Bytes(), 0o600)
		lines := tsharkFields(t, file, "frame.cap_len", "frame.len")
		if len(lines) != 1 || lines[0] != tc.capLen+"\t332" {
			t.Fatalf("snaplen %d: %q, want cap_len %s of 332", tc.snaplen, lines, tc.capLen)
		}
	}
}

// TestServiceByteCap: the byte cap of a capture ends it on every node.
func TestServiceByteCap(t *testing.T) {
	cc := startCaptureCluster(t, Caps{})
	req := adminReq()
	req.MaxBytes, req.Duration = 500, time.Minute
	done := make(chan Result, 1)
	go func() {
		res, err := cc.svcs[0].Run(clustertest.AsAdmin(context.Background()), req, io.Discard)
		if err != nil {
			t.Error(err)
		}
		done <- res
	}()
	clustertest.WaitFor(t, 10*time.Second, "every node captures", func() error {
		for i, p := range cc.planes {
			if !p.tap.Active() {
				return fmt.Errorf("node %d not capturing yet", i)
			}
		}
		return nil
	})
	var res Result
	for i := 0; ; i++ {
		cc.planes[i%3].send(t, "10.99.0.2", uint16(i))
		select {
		case res = <-done:
		case <-time.After(10 * time.Millisecond):
			continue
		}
		break
	}
	if res.Stopped != StopBytes || res.Bytes > 500 {
		t.Fatalf("result %+v, want stopped by max_bytes with at most 500 bytes", res)
	}
	clustertest.WaitFor(t, 10*time.Second, "every node stopped", func() error {
		for i, p := range cc.planes {
			if p.tap.Active() {
				return fmt.Errorf("node %d still captures", i)
			}
		}
		return nil
	})
}
