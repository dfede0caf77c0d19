package local_test

import (
	"bufio"
	"bytes"
	"context"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"testing"
	"time"
)

// captureIface is the interface wg-quick makes in ferry-c1 for this test
// (UAPI sockets are machine-wide: not the drill's name).
const captureIface = "fcapt1"

// TestCaptureDrill takes a packet capture the way an operator does, through
// the real API of the production-shaped setup: the administrator's
// ferryctl session and a fresh TOTP code, `ferryctl capture --user` sent to
// one node, which runs the capture on every node at once. The captured
// user (carol, `ferry up --embedded`) reaches an allowed and a denied
// destination, first through node A; then A is stopped and her tunnel
// moves to another node B, where she does the same again. Another user
// (alice, wg-quick) is busy beside her all along. The file opens in
// tcpdump and tshark, holds carol's packets from A and from B under their
// interface names ("NODE/INTERFACE"), in time order, and nothing of
// alice's; its SHA-256 is in the stop event. A non-admin, a missing reason
// and a used TOTP code are refused by the API and are audit events.
func TestCaptureDrill(t *testing.T) {
	for _, p := range []string{"tshark", "tcpdump"} {
		if _, err := exec.LookPath(p); err != nil {
			t.Skipf("needs %s (CI installs it: see .ci/run)", p)
		}
	}
	e := startEnv(t)
	br := newBrowser(t)
	if out := e.login(t, br, "demo", func() *exec.Cmd { return e.ferryctl("login", lbURL, "--ca", e.ca, "--no-browser") }); !strings.Contains(out, "(admin)") {
		t.Fatalf("ferryctl login: %s", out)
	}
	must(t, e.ferryctl("profile", "apply", "-f", filepath.Join(e.dir, "profiles.yaml")))

	aliceDir, carolDir := filepath.Join(e.dir, "alice"), filepath.Join(e.dir, "carol")
	for _, u := range []struct{ name, dir string }{{"alice", aliceDir}, {"carol", carolDir}} {
		e.login(t, br, u.name, func() *exec.Cmd {
			return exec.Command(e.bin("ferry"), "--config-dir", u.dir, "login", lbURL, "--ca", e.ca, "--no-browser", "--device", "laptop")
		})
	}
	aliceConf, err := os.ReadFile(filepath.Join(aliceDir, "ferry0.conf"))
	if err != nil {
		t.Fatal(err)
	}
	carolConf, err := os.ReadFile(filepath.Join(carolDir, "ferry0.conf"))
	if err != nil {
		t.Fatal(err)
	}
	aliceAddr, carolAddr := confAddress(t, aliceConf), confAddress(t, carolConf)
	wgConf := filepath.Join(e.dir, captureIface+".conf")
	if err := os.WriteFile(wgConf, aliceConf, 0o600); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { os.Remove("/var/run/wireguard/" + captureIface + ".sock") })
	must(t, e.in("ferry-c1", "env", "WG_QUICK_USERSPACE_IMPLEMENTATION="+wireguardGo(), "wg-quick", "up", wgConf))
	must(t, e.in("ferry-c2", e.bin("ferry"), "--config-dir", carolDir, "up", "--embedded"))
	carolKey := strings.TrimSpace(must(t, exec.Command("wg", "show", "ferry0", "public-key")))
	for _, ns := range []string{"ferry-c1", "ferry-c2"} {
		if err := e.waitFor(30*time.Second, ns+" reaching the VPC service", func() error {
			return e.in(ns, "curl", "-sf", "-m", "2", "-o", "/dev/null", "http://"+vpcService+"/").Run()
		}); err != nil {
			t.Fatal(err)
		}
	}
	e.startProber(t, "ferry-c1", vpcService, "80")       // alice, beside her
	p2 := e.startProber(t, "ferry-c2", vpcService, "80") // carol, allowed

	// Refused before anything runs, through the load balancer, each an
	// audit event: a non-admin and a missing reason (a used code: below).
	adminTok := ctlToken(t, e)
	refuse := func(name, token string, body map[string]any, want int, says string) {
		t.Helper()
		status, err := e.api(context.Background(), http.MethodPost, "/v1/admin/captures", token, body, nil)
		if status != want || err == nil || !strings.Contains(err.Error(), says) {
			t.Errorf("%s: HTTP %d, %v; want %d saying %q", name, status, err, want, says)
		}
	}
	refuse("a non-admin", clientToken(t, carolDir), map[string]any{"user": "carol@example.com", "reason": "curious", "totp": "123456"}, http.StatusForbidden, "administrator")
	refuse("a missing reason", adminTok, map[string]any{"user": "carol@example.com", "totp": "123456"}, http.StatusBadRequest, "reason")
	const refusals = 3

	// Carol's tunnel is on node A; the capture is sent to another node, C.
	var a string
	if err := e.waitFor(30*time.Second, "carol's carrier", func() error {
		if a, _ = carrier(carolKey); a == "" {
			return errors.New("no handshake yet")
		}
		return nil
	}); err != nil {
		t.Fatal(err)
	}
	c := nodes[0]
	for _, n := range nodes {
		if n != a {
			c = n
			break
		}
	}
	t.Logf("carol's tunnel is on %s; the capture is sent to %s", a, c)
	cURL := "https://" + nodeAddr(c) + ":8443"
	file := filepath.Join(e.dir, "carol.pcapng")
	code := br.code(t, "demo")
	capCmd := e.in("ferry-lb", "env", "XDG_CONFIG_HOME="+filepath.Join(e.dir, "ctl"), e.bin("ferryctl"), "--server", cURL, "--ca", e.ca,
		"capture", "--user", "carol@example.com", "--reason", "INC-7 carol: VPC service times out", "--duration", "60s",
		"--totp", code, "-w", file)
	var capOut bytes.Buffer
	capCmd.Stdout, capCmd.Stderr = &capOut, &capOut
	if err := capCmd.Start(); err != nil {
		t.Fatal(err)
	}
	capDone := make(chan error, 1)
	go func() { capDone <- capCmd.Wait() }()
	t.Cleanup(func() { capCmd.Process.Kill() })
	if err := e.waitFor(30*time.Second, "the capture running on every node", func() error {
		out, err := e.ferryctl("capture", "--list", "-o", "json").Output()
		if err != nil {
			return err
		}
		if !strings.Contains(string(out), `"node": "`+c+`"`) && !strings.Contains(string(out), `"node":"`+c+`"`) {
			return fmt.Errorf("running: %s", out)
		}
		return nil
	}); err != nil {
		t.Fatalf("%v\nferryctl capture: %s", err, capOut.String())
	}

	// The code the running capture used is spent: a second capture with it
	// is refused (step-up wants a fresh code).
	refuse("a used TOTP code", adminTok, map[string]any{"user": "carol@example.com", "reason": "INC-7 again", "totp": code}, http.StatusForbidden, "TOTP")

	denied := func(via string) {
		t.Helper()
		if out, err := e.in("ferry-c2", "curl", "-s", "-m", "2", "http://"+vpcService+":8080/").CombinedOutput(); err == nil {
			t.Fatalf("carol reached port 8080 through %s, which her profile does not allow: %s", via, out)
		}
	}
	start := time.Now()
	if _, err := p2.recovered(e, start, 20*time.Second); err != nil {
		t.Fatal(err)
	}
	denied(a)
	if now, _ := carrier(carolKey); now != a {
		t.Fatalf("carol's tunnel moved to %q before node %s was stopped", now, a)
	}

	// Node A goes away (a graceful stop, as in a scale-in or a rolling
	// restart); carol's client moves to another node.
	e.node(t, "stop", a)
	moved := time.Now()
	if _, err := p2.recovered(e, moved, 60*time.Second); err != nil {
		t.Fatal(err)
	}
	b, _ := carrier(carolKey)
	if b == "" || b == a {
		t.Fatalf("carol's tunnel is on %q after %s stopped", b, a)
	}
	t.Logf("carol's tunnel moved from %s to %s", a, b)
	denied(b)
	if _, err := p2.recovered(e, time.Now(), 20*time.Second); err != nil {
		t.Fatal(err)
	}

	select {
	case err := <-capDone:
		if err != nil {
			t.Fatalf("ferryctl capture: %v\n%s", err, capOut.String())
		}
	case <-time.After(3 * time.Minute):
		t.Fatalf("ferryctl capture did not end\n%s", capOut.String())
	}
	t.Logf("ferryctl capture:\n%s", capOut.String())
	if !strings.Contains(capOut.String(), "stopped by duration") {
		t.Errorf("ferryctl capture's summary: want stopped by duration (node %s's part ends when it stops, the capture does not)", a)
	}

	// The file, as tshark and tcpdump read it.
	data, err := os.ReadFile(file)
	if err != nil {
		t.Fatal(err)
	}
	out, err := exec.Command("tshark", "-r", file, "-T", "fields", "-E", "separator=/t",
		"-e", "frame.interface_name", "-e", "frame.time_epoch", "-e", "ip.src", "-e", "ip.dst",
		"-e", "tcp.srcport", "-e", "tcp.dstport", "-e", "tcp.flags.syn", "-e", "tcp.flags.ack").Output() // tshark warns root on stderr
	if err != nil {
		t.Fatalf("tshark -r: %v\n%s", err, out)
	}
	type seen struct{ allowedBoth, deniedSyn, deniedAnswer bool }
	per := map[string]*seen{}
	var last float64
	lines := strings.Split(strings.TrimSpace(string(out)), "\n")
	for _, l := range lines {
		f := strings.Split(l, "\t")
		if len(f) < 8 {
			t.Fatalf("tshark line %q", l)
		}
		name, src, dst, sport, dport, syn, ack := f[0], f[2], f[3], f[4], f[5], f[6], f[7]
		ts, _ := strconv.ParseFloat(f[1], 64)
		if ts < last {
			t.Errorf("packets out of time order at %q", l)
		}
		last = ts
		if src != carolAddr && dst != carolAddr {
			t.Fatalf("a packet not carol's was kept: %q", l)
		}
		if src == aliceAddr || dst == aliceAddr {
			t.Fatalf("a packet of alice's was kept: %q", l)
		}
		st := per[name]
		if st == nil {
			st = &seen{}
			per[name] = st
		}
		switch {
		case sport == "80" && dst == carolAddr:
			st.allowedBoth = true
		case dport == "8080" && src == carolAddr && syn == "1" && ack == "0":
			st.deniedSyn = true
		case sport == "8080":
			st.deniedAnswer = true
		}
	}
	for _, n := range []string{a, b} {
		name := n + "/ferry-" + n
		st := per[name]
		if st == nil || !st.allowedBoth || !st.deniedSyn || st.deniedAnswer {
			t.Errorf("interface %s: %+v; want the allowed flow both ways, denied SYNs, no answer to them (interfaces: %v)\n%s",
				name, st, keys(per), strings.Join(lines, "\n"))
		}
	}
	if td, err := exec.Command("tcpdump", "-nr", file).CombinedOutput(); err != nil || strings.Contains(string(td), aliceAddr) || !strings.Contains(string(td), carolAddr) {
		t.Errorf("tcpdump -r: %v\n%s", err, tail(td, 20))
	}

	// On the record: the refusals, the start and the stop with the file's
	// SHA-256, through the load balancer.
	sum := sha256.Sum256(data)
	export := filepath.Join(e.dir, "capture-audit.jsonl")
	if err := e.waitFor(30*time.Second, "the capture's audit events", func() error {
		os.Remove(export)
		if out, err := e.ferryctl("audit", "export", export).CombinedOutput(); err != nil {
			return fmt.Errorf("%v: %s", err, out)
		}
		b, err := os.ReadFile(export)
		if err != nil {
			return err
		}
		var failed, started, stopped int
		sc := bufio.NewScanner(bytes.NewReader(b))
		sc.Buffer(nil, 1<<20)
		for sc.Scan() {
			l := sc.Text()
			switch {
			case strings.Contains(l, `"capture.start"`) && strings.Contains(l, `"failure"`):
				failed++
			case strings.Contains(l, `"capture.start"`) && strings.Contains(l, "INC-7 carol"):
				started++
			case strings.Contains(l, `"capture.stop"`) && strings.Contains(l, hex.EncodeToString(sum[:])):
				stopped++
			}
		}
		if failed != refusals || started != 1 || stopped != 1 {
			return fmt.Errorf("%d refusals, %d starts, %d stops with the file's SHA-256; want %d, 1, 1", failed, started, stopped, refusals)
		}
		return nil
	}); err != nil {
		t.Error(err)
	}
}

// confAddress returns the IPv4 tunnel address of a wg-quick config.
func confAddress(t *testing.T, conf []byte) string {
	t.Helper()
	for _, l := range strings.Split(string(conf), "\n") {
		k, v, ok := strings.Cut(l, "=")
		if !ok || strings.TrimSpace(k) != "Address" {
			continue
		}
		for _, a := range strings.Split(v, ",") {
			a = strings.TrimSpace(a)
			if p, _, ok := strings.Cut(a, "/"); ok && !strings.Contains(p, ":") {
				return p
			}
		}
	}
	t.Fatalf("no IPv4 Address in\n%s", conf)
	return ""
}

// ctlToken is the administrator's session token ferryctl saved.
func ctlToken(t *testing.T, e *env) string {
	t.Helper()
	b, err := os.ReadFile(filepath.Join(e.dir, "ctl", "ferry", "ctl.json"))
	if err != nil {
		t.Fatal(err)
	}
	var f struct{ Token string }
	if err := json.Unmarshal(b, &f); err != nil || f.Token == "" {
		t.Fatalf("ferryctl's saved session: %v", err)
	}
	return f.Token
}

func keys[V any](m map[string]V) []string {
	out := make([]string, 0, len(m))
	for k := range m {
		out = append(out, k)
	}
	return out
}
