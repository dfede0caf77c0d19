package audittest

import (
	"bufio"
	"bytes"
	"errors"
	"fmt"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"syscall"
	"testing"
	"time"
)

// RsyslogOptions tune an rsyslogd receiver.
type RsyslogOptions struct {
	// ClientCert requires sinks to present a certificate from the CA
	// (StreamDriver.AuthMode "x509/certvalid"); otherwise any client may
	// connect ("anon").
	ClientCert bool
	// RELP makes it a RELP receiver (imrelp over TLS, Debian's
	// rsyslog-relp) instead of RFC 5425 syslog/TLS (imtcp). It always
	// requires a client certificate from CA.
	RELP bool
	// Buffered lets rsyslog buffer its output file (for benchmarks: what
	// it acknowledged may be lost when it is killed).
	Buffered bool
}

// Rsyslog is a real rsyslogd receiving RFC 5425 syslog over TLS (imtcp with
// the gtls stream driver) and writing each message as one JSON object per
// line: {"app":..,"msgid":..,"sd":..,"msg":..}, parsed by rsyslog itself.
type Rsyslog struct {
	// Addr is where it listens (stable across Stop and Start).
	Addr string
	// CA issued the server certificate (and any client certificate).
	CA *CA
	// Out is the file rsyslog writes messages to.
	Out string

	t    testing.TB
	bin  string
	dir  string
	conf string
	cmd  *exec.Cmd
	done chan error
}

// gtlsPaths are where Debian and others install rsyslog's TLS driver.
var gtlsPaths = []string{
	"/usr/lib/x86_64-linux-gnu/rsyslog/lmnsd_gtls.so",
	"/usr/lib/aarch64-linux-gnu/rsyslog/lmnsd_gtls.so",
	"/usr/lib/rsyslog/lmnsd_gtls.so",
	"/usr/lib64/rsyslog/lmnsd_gtls.so",
}

// StartRsyslog starts rsyslogd with a generated configuration in a
// temporary directory and waits until it accepts connections. It skips the
// test when rsyslogd or its gtls driver (Debian: rsyslog, rsyslog-gnutls)
// is not installed. The daemon is stopped when the test ends.
func StartRsyslog(t testing.TB, opts RsyslogOptions) *Rsyslog {
	t.Helper()
	bin, err := exec.LookPath("rsyslogd")
	if err != nil {
		if _, serr := os.Stat("/usr/sbin/rsyslogd"); serr != nil {
			t.Skip("rsyslogd not installed (apt-get install rsyslog rsyslog-gnutls)")
		}
		bin = "/usr/sbin/rsyslogd"
	}
	found := false
	for _, p := range gtlsPaths {
		if _, err := os.Stat(p); err == nil {
			found = true
		}
	}
	if !found {
		t.Skip("rsyslog's gtls stream driver not installed (apt-get install rsyslog-gnutls)")
	}
	if opts.RELP {
		found = false
		for _, p := range gtlsPaths {
			if _, err := os.Stat(filepath.Join(filepath.Dir(p), "imrelp.so")); err == nil {
				found = true
			}
		}
		if !found {
			t.Skip("rsyslog's imrelp not installed (apt-get install rsyslog-relp)")
		}
	}
	dir := t.TempDir()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	addr := ln.Addr().String()
	ln.Close()
	_, port, _ := net.SplitHostPort(addr)
	r := &Rsyslog{bin: bin, Addr: addr, CA: NewCA(t), Out: filepath.Join(dir, "out.jsonl"), t: t, dir: dir, conf: filepath.Join(dir, "rsyslog.conf")}
	caFile, certFile, keyFile := r.CA.WriteFiles(t, dir, "localhost")
	auth := "anon"
	if opts.ClientCert {
		auth = "x509/certvalid"
	}
	input := fmt.Sprintf(`module(load="imtcp" streamDriver.name="gtls" streamDriver.mode="1" streamDriver.authMode=%q)
input(type="imtcp" port=%q ruleset="ferry")`, auth, port)
	if opts.RELP {
		// librelp without an auth mode runs anonymous TLS, which Go's
		// TLS does not speak: RELP always checks client certificates.
		relpAuth := `tls.authMode="certvalid"`
		input = fmt.Sprintf(`module(load="imrelp")
input(type="imrelp" port=%q ruleset="ferry" maxDataSize="256k" tls="on" tls.caCert=%q tls.myCert=%q tls.myPrivKey=%q %s)`,
			port, caFile, certFile, keyFile, relpAuth)
	}
	buffered := ""
	if opts.Buffered {
		buffered = ` ioBufferSize="1m" flushOnTXEnd="off" asyncWriting="on" flushInterval="1"`
	}
	conf := fmt.Sprintf(`global(
  workDirectory=%[1]q
  maxMessageSize="256k"
  defaultNetstreamDriver="gtls"
  defaultNetstreamDriverCAFile=%[2]q
  defaultNetstreamDriverCertFile=%[3]q
  defaultNetstreamDriverKeyFile=%[4]q
)
# Direct: the receiving thread writes each message before reading the next,
# so a stop loses nothing rsyslog has read.
main_queue(queue.type="Direct")
%[8]s
template(name="ferryjson" type="list" option.jsonf="on") {
  property(outname="app" name="app-name" format="jsonf")
  property(outname="msgid" name="msgid" format="jsonf")
  property(outname="sd" name="structured-data" format="jsonf")
  property(outname="msg" name="msg" format="jsonf")
}
ruleset(name="ferry" queue.type="Direct") {
  action(type="omfile" file=%[7]q template="ferryjson"%[9]s)
}
`, dir, caFile, certFile, keyFile, auth, port, r.Out, input, buffered)
	if err := os.WriteFile(r.conf, []byte(conf), 0o600); err != nil {
		t.Fatal(err)
	}
	check := exec.Command(bin, "-N1", "-f", r.conf)
	if out, err := check.CombinedOutput(); err != nil {
		t.Fatalf("rsyslogd rejects the generated configuration: %v\n%s", err, out)
	}
	t.Cleanup(r.Stop)
	r.Start()
	return r
}

// Start (re)starts rsyslogd on Addr and waits until it accepts
// connections.
func (r *Rsyslog) Start() {
	r.t.Helper()
	if r.cmd != nil {
		r.t.Fatal("rsyslogd already running")
	}
	pid := filepath.Join(r.dir, "rsyslogd.pid")
	os.Remove(pid)
	cmd := exec.Command(r.bin, "-n", "-f", r.conf, "-i", pid)
	var stderr bytes.Buffer
	cmd.Stdout, cmd.Stderr = &stderr, &stderr
	if err := cmd.Start(); err != nil {
		r.t.Fatalf("starting rsyslogd: %v", err)
	}
	r.cmd, r.done = cmd, make(chan error, 1)
	go func() { r.done <- cmd.Wait() }()
	deadline := time.Now().Add(15 * time.Second)
	for {
		c, err := net.DialTimeout("tcp", r.Addr, 200*time.Millisecond)
		if err == nil {
			c.Close()
			return
		}
		select {
		case err := <-r.done:
			r.cmd = nil
			r.t.Fatalf("rsyslogd exited at start: %v\n%s", err, stderr.String())
		default:
		}
		if time.Now().After(deadline) {
			r.t.Fatalf("rsyslogd not listening on %s after 15s\n%s", r.Addr, stderr.String())
		}
		time.Sleep(20 * time.Millisecond) // polling a port: there is no event to wait on
	}
}

// Stop stops rsyslogd with SIGTERM, as a service manager would, and waits
// for it to exit.
func (r *Rsyslog) Stop() {
	if r.cmd == nil {
		return
	}
	r.cmd.Process.Signal(syscall.SIGTERM)
	select {
	case <-r.done:
	case <-time.After(10 * time.Second):
		r.cmd.Process.Kill()
		<-r.done
	}
	r.cmd = nil
}

// Freeze stops rsyslogd with SIGSTOP: its connections stay open and the
// kernel keeps accepting bytes into socket buffers that nobody reads.
func (r *Rsyslog) Freeze() {
	r.t.Helper()
	if r.cmd == nil {
		r.t.Fatal("rsyslogd not running")
	}
	r.cmd.Process.Signal(syscall.SIGSTOP)
	// The signal is asynchronous: wait until the kernel reports the
	// process stopped ("T"), so nothing is read after Freeze returns.
	stat := fmt.Sprintf("/proc/%d/stat", r.cmd.Process.Pid)
	deadline := time.Now().Add(10 * time.Second)
	for {
		b, err := os.ReadFile(stat)
		if err != nil {
			r.t.Fatalf("reading %s: %v", stat, err)
		}
		if i := bytes.LastIndexByte(b, ')'); i > 0 && i+2 < len(b) && b[i+2] == 'T' {
			return
		}
		if time.Now().After(deadline) {
			r.t.Fatal("rsyslogd not stopped 10s after SIGSTOP")
		}
		time.Sleep(time.Millisecond) // polling /proc: there is no event to wait on
	}
}

// Kill kills rsyslogd with SIGKILL (frozen or not) and waits for it:
// whatever it had not read is lost, as in a crash.
func (r *Rsyslog) Kill() {
	r.t.Helper()
	if r.cmd == nil {
		return
	}
	r.cmd.Process.Kill()
	<-r.done
	r.cmd = nil
}

// Message is one message as rsyslog parsed it.
type Message struct {
	App   string `json:"app"`
	MsgID string `json:"msgid"`
	SD    string `json:"sd"`
	Msg   string `json:"msg"`
}

// Messages returns what rsyslog has written so far. A line rsyslog has not
// finished writing is left out.
func (r *Rsyslog) Messages() ([]Message, error) {
	b, err := os.ReadFile(r.Out)
	if errors.Is(err, os.ErrNotExist) {
		return nil, nil
	}
	if err != nil {
		return nil, err
	}
	var out []Message
	sc := bufio.NewScanner(bytes.NewReader(b))
	sc.Buffer(make([]byte, 1<<20), 4<<20)
	for sc.Scan() {
		line := sc.Bytes()
		if len(line) == 0 {
			continue
		}
		var m Message
		if err := jsonUnmarshal(line, &m); err != nil {
			if !bytes.HasSuffix(b, []byte("\n")) && bytes.HasSuffix(b, line) {
				break // partial last line
			}
			return out, fmt.Errorf("rsyslog output line %d: %v: %q", len(out)+1, err, line)
		}
		out = append(out, m)
	}
	return out, sc.Err()
}
