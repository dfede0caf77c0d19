package audit

import (
	"bufio"
	"bytes"
	"context"
	"crypto/tls"
	"errors"
	"fmt"
	"io"
	"net"
	"strconv"
	"sync"
	"time"
)

// RELPSinkConfig configures a RELP sink. Zero values take the documented
// defaults.
type RELPSinkConfig struct {
	// Name identifies the sink and its cursor; default "relp".
	Name string
	// Addr is the receiver's host:port (rsyslog's imrelp). Required.
	Addr string
	// TLS, when set, runs RELP over TLS: RootCAs and ServerName verify
	// the receiver, Certificates present a client certificate. Nil means
	// plain TCP.
	TLS *tls.Config
	// Format is the message format; default &Syslog{} (RFC 5424 around
	// the native JSON line).
	Format Format
	// Window is the most messages sent and not yet acknowledged; default
	// 4096.
	Window int
	// DialTimeout bounds connecting and the RELP open handshake; default
	// 5s. AckTimeout is how long an outstanding message may wait for its
	// acknowledgement before the connection counts as broken; default 30s.
	DialTimeout, AckTimeout time.Duration
	// Dial opens the TCP connection; default net.Dialer.
	Dial func(ctx context.Context, network, addr string) (net.Conn, error)
}

// RELPSink delivers records with the Reliable Event Logging Protocol
// (RELP, rsyslog's imrelp): each message is a command with a transaction
// number, and the receiver answers each with "200 OK" once it has taken
// the message. The sink confirms a record — and so lets the cursor pass
// it — only when every message up to it is acknowledged; anything sent
// but unacknowledged when a connection breaks is sent again on the next.
// This is the loss-free syslog path: no re-send window to size, no
// guessing from a successful TCP write.
//
// Frames follow the RELP specification: "TXNR SP COMMAND SP DATALEN [SP
// DATA] LF"; the session opens with "open" (relp_version=0,
// commands=syslog) and closes with "close".
type RELPSink struct {
	cfg RELPSinkConfig

	conn    net.Conn
	bw      *bufio.Writer
	acks    chan relpAnswer // from the connection's reader
	readers sync.WaitGroup  // the reader of conn
	txnr    uint64          // last transaction number used
	pending []relpPending   // sent, unacknowledged, in order
	last    uint64          // highest confirmed
	msg     []byte
	frame   []byte
	lastAns string // the receiver's last answer to a syslog command
}

// LastAnswer returns the receiver's last answer to a message ("200 OK").
func (s *RELPSink) LastAnswer() string { return s.lastAns }

type relpPending struct {
	txnr, seq uint64
	at        time.Time
}

// relpAnswer is one frame the receiver sent, or the error that ended the
// connection (err set).
type relpAnswer struct {
	txnr uint64
	cmd  string
	data []byte
	err  error
}

var _ Sink = (*RELPSink)(nil)

// maxRELPTxnr is where transaction numbers wrap to 1.
const maxRELPTxnr = 999999999

// NewRELPSink returns a RELP sink. It connects at the first Send.
func NewRELPSink(cfg RELPSinkConfig) (*RELPSink, error) {
	if cfg.Name == "" {
		cfg.Name = "relp"
	}
	if err := checkSinkName(cfg.Name); err != nil {
		return nil, err
	}
	if _, _, err := net.SplitHostPort(cfg.Addr); err != nil {
		return nil, fmt.Errorf("audit RELP sink: addr %q: %v", cfg.Addr, err)
	}
	if cfg.Format == nil {
		cfg.Format = &Syslog{}
	}
	if cfg.Window <= 0 {
		cfg.Window = 4096
	}
	if cfg.DialTimeout <= 0 {
		cfg.DialTimeout = 5 * time.Second
	}
	if cfg.AckTimeout <= 0 {
		cfg.AckTimeout = 30 * time.Second
	}
	if cfg.Dial == nil {
		var d net.Dialer
		cfg.Dial = d.DialContext
	}
	return &RELPSink{cfg: cfg}, nil
}

// Name returns the sink's name.
func (s *RELPSink) Name() string { return s.cfg.Name }

// Send writes entries as RELP syslog commands and returns the highest
// record acknowledged so far, together with every record before it.
func (s *RELPSink) Send(ctx context.Context, entries []Entry) (uint64, error) {
	if s.conn == nil {
		if err := s.connect(ctx); err != nil {
			return s.last, err
		}
	}
	for i := range entries {
		for len(s.pending) >= s.cfg.Window {
			if err := s.collect(ctx, true); err != nil {
				return s.last, s.fail(err)
			}
		}
		var err error
		if s.msg, err = s.cfg.Format.Append(s.msg[:0], &entries[i]); err != nil {
			return s.last, fmt.Errorf("formatting record %d: %w", entries[i].Seq, err)
		}
		txnr := s.next()
		s.frame = appendRELPFrame(s.frame[:0], txnr, "syslog", s.msg)
		if _, err := s.bw.Write(s.frame); err != nil {
			return s.last, s.fail(fmt.Errorf("writing to RELP receiver %s: %w", s.cfg.Addr, err))
		}
		s.pending = append(s.pending, relpPending{txnr: txnr, seq: entries[i].LastSeq(), at: time.Now()})
		// Flush before the window fills, so acknowledgements keep coming.
		if len(s.pending) >= s.cfg.Window || s.bw.Buffered() > 64<<10 {
			if err := s.flush(); err != nil {
				return s.last, s.fail(err)
			}
		}
	}
	if err := s.flush(); err != nil {
		return s.last, s.fail(err)
	}
	if err := s.collect(ctx, false); err != nil {
		return s.last, s.fail(err)
	}
	if len(s.pending) > 0 && time.Since(s.pending[0].at) > s.cfg.AckTimeout {
		return s.last, s.fail(fmt.Errorf("RELP receiver %s: record %d not acknowledged within %s", s.cfg.Addr, s.pending[0].seq, s.cfg.AckTimeout))
	}
	return s.last, nil
}

func (s *RELPSink) next() uint64 {
	s.txnr++
	if s.txnr > maxRELPTxnr {
		s.txnr = 1
	}
	return s.txnr
}

func (s *RELPSink) flush() error {
	s.conn.SetWriteDeadline(time.Now().Add(s.cfg.AckTimeout))
	if err := s.bw.Flush(); err != nil {
		return fmt.Errorf("writing to RELP receiver %s: %w", s.cfg.Addr, err)
	}
	return nil
}

// collect takes the answers that arrived; with wait, it waits (up to
// AckTimeout) for at least one.
func (s *RELPSink) collect(ctx context.Context, wait bool) error {
	var timer <-chan time.Time
	if wait {
		t := time.NewTimer(s.cfg.AckTimeout)
		defer t.Stop()
		timer = t.C
	}
	for {
		var a relpAnswer
		if wait {
			select {
			case a = <-s.acks:
			case <-timer:
				return fmt.Errorf("RELP receiver %s: no acknowledgement within %s", s.cfg.Addr, s.cfg.AckTimeout)
			case <-ctx.Done():
				return ctx.Err()
			}
			wait = false
		} else {
			select {
			case a = <-s.acks:
			default:
				return nil
			}
		}
		if err := s.answer(a); err != nil {
			return err
		}
	}
}

// answer applies one frame from the receiver.
func (s *RELPSink) answer(a relpAnswer) error {
	switch {
	case a.err != nil:
		return a.err
	case a.cmd == "serverclose":
		return fmt.Errorf("RELP receiver %s closed the session", s.cfg.Addr)
	case a.cmd != "rsp":
		return fmt.Errorf("RELP receiver %s: unexpected command %q", s.cfg.Addr, a.cmd)
	case len(s.pending) == 0 || s.pending[0].txnr != a.txnr:
		return fmt.Errorf("RELP receiver %s: answer to transaction %d out of order", s.cfg.Addr, a.txnr)
	case !bytes.HasPrefix(a.data, []byte("200")):
		return fmt.Errorf("RELP receiver %s refused record %d: %s", s.cfg.Addr, s.pending[0].seq, relpStatus(a.data))
	}
	s.last = s.pending[0].seq
	s.pending = s.pending[1:]
	s.lastAns = relpStatus(a.data)
	return nil
}

func relpStatus(data []byte) string {
	line, _, _ := bytes.Cut(data, []byte("\n"))
	return string(line)
}

// fail drops the connection after err.
func (s *RELPSink) fail(err error) error {
	s.Reset()
	return err
}

func (s *RELPSink) connect(ctx context.Context) error {
	ctx, cancel := context.WithTimeout(ctx, s.cfg.DialTimeout)
	defer cancel()
	c, err := s.cfg.Dial(ctx, "tcp", s.cfg.Addr)
	if err != nil {
		return fmt.Errorf("connecting to RELP receiver %s: %w", s.cfg.Addr, err)
	}
	if s.cfg.TLS != nil {
		cfg := s.cfg.TLS.Clone()
		if cfg.ServerName == "" {
			cfg.ServerName, _, _ = net.SplitHostPort(s.cfg.Addr)
		}
		tc := tls.Client(c, cfg)
		if err := tc.HandshakeContext(ctx); err != nil {
			c.Close()
			return fmt.Errorf("TLS handshake with RELP receiver %s: %w", s.cfg.Addr, explainTLS(err, cfg))
		}
		c = tc
	}
	s.conn, s.bw = c, bufio.NewWriterSize(c, 128<<10)
	s.acks = make(chan relpAnswer, s.cfg.Window+2)
	s.txnr, s.pending = 0, nil
	br := bufio.NewReaderSize(c, 64<<10)
	s.readers.Add(1)
	go func() {
		defer s.readers.Done()
		readRELP(br, s.acks)
	}()
	// Open the session and wait for the receiver's "200 OK".
	txnr := s.next()
	s.frame = appendRELPFrame(s.frame[:0], txnr, "open", []byte("relp_version=0\nrelp_software=ferry\ncommands=syslog"))
	s.pending = append(s.pending, relpPending{txnr: txnr, at: time.Now()})
	if _, err := s.bw.Write(s.frame); err != nil {
		return s.fail(fmt.Errorf("opening RELP session with %s: %w", s.cfg.Addr, err))
	}
	if err := s.flush(); err != nil {
		return s.fail(err)
	}
	last := s.last
	if err := s.collect(ctx, true); err != nil {
		return s.fail(fmt.Errorf("opening RELP session with %s: %w", s.cfg.Addr, explainTLS(err, s.cfg.TLS)))
	}
	s.last = last // the open transaction carries no record
	return nil
}

// readRELP parses frames from the receiver until the connection ends,
// then sends the error that ended it.
func readRELP(br *bufio.Reader, out chan<- relpAnswer) {
	for {
		a, err := readRELPFrame(br)
		if err != nil {
			out <- relpAnswer{err: fmt.Errorf("RELP connection: %w", err)}
			return
		}
		out <- a
	}
}

// maxRELPAnswer bounds the data of one frame from the receiver.
const maxRELPAnswer = 64 << 10

func readRELPFrame(br *bufio.Reader) (relpAnswer, error) {
	var a relpAnswer
	head := make([]byte, 0, 32)
	fields := 0
	var err error
	// TXNR SP COMMAND SP DATALEN, then SP DATA or nothing, then LF.
	var txnr, cmd, dlen []byte
	for fields < 3 {
		b, err := br.ReadByte()
		if err != nil {
			return a, err
		}
		if b == ' ' || (fields == 2 && b == '\n') {
			switch fields {
			case 0:
				txnr = append([]byte(nil), head...)
			case 1:
				cmd = append([]byte(nil), head...)
			case 2:
				dlen = append([]byte(nil), head...)
				if b == '\n' {
					br.UnreadByte()
				}
			}
			head = head[:0]
			fields++
			continue
		}
		if len(head) > 32 {
			return a, errors.New("malformed frame header")
		}
		head = append(head, b)
	}
	if a.txnr, err = strconv.ParseUint(string(txnr), 10, 64); err != nil {
		return a, fmt.Errorf("malformed transaction number %q", txnr)
	}
	a.cmd = string(cmd)
	n, err := strconv.Atoi(string(dlen))
	if err != nil || n < 0 || n > maxRELPAnswer {
		return a, fmt.Errorf("malformed data length %q", dlen)
	}
	a.data = make([]byte, n)
	if _, err := io.ReadFull(br, a.data); err != nil {
		return a, err
	}
	if b, err := br.ReadByte(); err != nil || b != '\n' {
		return a, errors.New("frame without its trailing newline")
	}
	return a, nil
}

func appendRELPFrame(dst []byte, txnr uint64, cmd string, data []byte) []byte {
	dst = strconv.AppendUint(dst, txnr, 10)
	dst = append(dst, ' ')
	dst = append(dst, cmd...)
	dst = append(dst, ' ')
	dst = strconv.AppendInt(dst, int64(len(data)), 10)
	if len(data) > 0 {
		dst = append(dst, ' ')
		dst = append(dst, data...)
	}
	return append(dst, '\n')
}

// Reset closes the connection and forgets unacknowledged messages, which
// the exporter sends again from the cursor.
func (s *RELPSink) Reset() {
	if s.conn != nil {
		s.conn.Close()
		// The reader ends at the closed connection; drain what it sends.
		done := make(chan struct{})
		go func() { s.readers.Wait(); close(done) }()
		for waiting := true; waiting; {
			select {
			case <-s.acks:
			case <-done:
				waiting = false
			}
		}
		s.conn, s.bw = nil, nil
	}
	s.pending = nil
}

// Close ends the session politely when it can, then closes the
// connection.
func (s *RELPSink) Close() error {
	if s.conn != nil && len(s.pending) == 0 {
		s.frame = appendRELPFrame(s.frame[:0], s.next(), "close", nil)
		s.conn.SetWriteDeadline(time.Now().Add(time.Second))
		if _, err := s.bw.Write(s.frame); err == nil {
			s.bw.Flush()
		}
	}
	s.Reset()
	return nil
}
