package audit

import (
	"context"
	"crypto/tls"
	"errors"
	"fmt"
	"net"
	"strconv"
	"time"
)

// SyslogSinkConfig configures a syslog sink over TCP or TLS. Zero values
// take the documented defaults.
type SyslogSinkConfig struct {
	// Name identifies the sink and its cursor; default "syslog".
	Name string
	// Addr is the receiver's host:port. Required.
	Addr string
	// TLS, when set, makes the sink speak syslog over TLS (RFC 5425): set
	// RootCAs and ServerName to verify the receiver and Certificates to
	// present a client certificate. Nil means plain TCP (RFC 6587).
	TLS *tls.Config
	// Format is the message format; default &Syslog{} (RFC 5424 around
	// the native JSON line).
	Format Format
	// DialTimeout bounds connecting; default 5s. WriteTimeout bounds
	// writing one batch; default 10s.
	DialTimeout, WriteTimeout time.Duration
	// ResendRecords and ResendAge bound the re-send window: the records
	// sent before a broken connection that are sent again on the next
	// one. A record leaves the window (counts as delivered, and the
	// cursor passes it) once ResendAge has passed since it was sent or
	// ResendRecords later records were sent, whichever comes first.
	// Defaults: 10,000 records, 2 minutes. See SyslogSink.
	ResendRecords uint64
	ResendAge     time.Duration
	// Dial opens the TCP connection; default net.Dialer.
	Dial func(ctx context.Context, network, addr string) (net.Conn, error)
}

// SyslogSink sends RFC 5424 messages over TCP or TLS with octet-counting
// framing ("LEN SP MSG", RFC 5425 section 4.3), which keeps messages intact
// whatever bytes they hold.
//
// Syslog has no acknowledgements: a successful TCP write only means the
// bytes reached a socket buffer, and a receiver that is frozen, then killed,
// loses whatever it had not read. So the sink keeps a re-send window: a
// record counts as delivered only once it is older than ResendAge or
// ResendRecords later records followed it. When the connection breaks (the
// receiver closes or resets it, or a write times out) the exporter starts
// again from the cursor, which still lies before every record of the
// window, so those records are sent again on the new connection. Repeats
// carry the same event ID and sequence number.
//
// Delivery over plain syslog/TLS is therefore at least once only within
// that window: a receiver that stays silent for longer than ResendAge
// after it stopped reading (and before its connection breaks) can still
// lose records. RELP (RELPSink) has acknowledgements and no such limit.
type SyslogSink struct {
	cfg     SyslogSinkConfig
	conn    net.Conn
	pending []pendingBatch // in the re-send window; ack holds the records sent up to it
	sent    uint64         // records written on this sink so far
	last    uint64         // highest confirmed
	buf     []byte
	msg     []byte
}

var _ Sink = (*SyslogSink)(nil)

// NewSyslogSink returns a syslog sink. It connects at the first Send.
func NewSyslogSink(cfg SyslogSinkConfig) (*SyslogSink, error) {
	if cfg.Name == "" {
		cfg.Name = "syslog"
	}
	if err := checkSinkName(cfg.Name); err != nil {
		return nil, err
	}
	if _, _, err := net.SplitHostPort(cfg.Addr); err != nil {
		return nil, fmt.Errorf("audit syslog sink: addr %q: %v", cfg.Addr, err)
	}
	if cfg.Format == nil {
		cfg.Format = &Syslog{}
	}
	if cfg.DialTimeout <= 0 {
		cfg.DialTimeout = 5 * time.Second
	}
	if cfg.WriteTimeout <= 0 {
		cfg.WriteTimeout = 10 * time.Second
	}
	if cfg.ResendRecords == 0 {
		cfg.ResendRecords = 10000
	}
	if cfg.ResendAge <= 0 {
		cfg.ResendAge = 2 * time.Minute
	}
	if cfg.Dial == nil {
		var d net.Dialer
		cfg.Dial = d.DialContext
	}
	return &SyslogSink{cfg: cfg}, nil
}

// Name returns the sink's name.
func (s *SyslogSink) Name() string { return s.cfg.Name }

// Send writes entries as framed messages and returns what has been
// confirmed.
func (s *SyslogSink) Send(ctx context.Context, entries []Entry) (uint64, error) {
	if s.conn == nil {
		if err := s.connect(ctx); err != nil {
			return s.last, err
		}
	} else if err := s.probe(); err != nil {
		s.Reset()
		return s.last, fmt.Errorf("syslog receiver %s: connection lost: %w", s.cfg.Addr, explainTLS(err, s.cfg.TLS))
	}
	now := time.Now()
	if len(entries) == 0 {
		s.confirm(now)
		return s.last, nil
	}
	s.buf = s.buf[:0]
	var err error
	for i := range entries {
		if s.msg, err = s.cfg.Format.Append(s.msg[:0], &entries[i]); err != nil {
			return s.last, fmt.Errorf("formatting record %d: %w", entries[i].Seq, err)
		}
		s.buf = strconv.AppendInt(s.buf, int64(len(s.msg)), 10)
		s.buf = append(s.buf, ' ')
		s.buf = append(s.buf, s.msg...)
	}
	s.conn.SetWriteDeadline(now.Add(s.cfg.WriteTimeout))
	if _, err := s.conn.Write(s.buf); err != nil {
		s.Reset()
		return s.last, fmt.Errorf("writing to syslog receiver %s: %w", s.cfg.Addr, explainTLS(err, s.cfg.TLS))
	}
	s.sent += uint64(len(entries))
	s.pending = append(s.pending, pendingBatch{last: entries[len(entries)-1].LastSeq(), at: now.UnixNano(), ack: s.sent})
	s.confirm(now)
	return s.last, nil
}

// confirm lets batches out of the re-send window: those sent ResendAge
// ago, or followed by ResendRecords records.
func (s *SyslogSink) confirm(now time.Time) {
	cut := now.Add(-s.cfg.ResendAge).UnixNano()
	for len(s.pending) > 0 && (s.pending[0].at <= cut || s.sent-s.pending[0].ack >= s.cfg.ResendRecords) {
		s.last = s.pending[0].last
		s.pending = s.pending[1:]
	}
}

func (s *SyslogSink) connect(ctx context.Context) error {
	ctx, cancel := context.WithTimeout(ctx, s.cfg.DialTimeout)
	defer cancel()
	c, err := s.cfg.Dial(ctx, "tcp", s.cfg.Addr)
	if err != nil {
		return fmt.Errorf("connecting to syslog receiver %s: %w", s.cfg.Addr, err)
	}
	if s.cfg.TLS != nil {
		cfg := s.cfg.TLS.Clone()
		if cfg.ServerName == "" {
			cfg.ServerName, _, _ = net.SplitHostPort(s.cfg.Addr)
		}
		tc := tls.Client(c, cfg)
		if err := tc.HandshakeContext(ctx); err != nil {
			c.Close()
			return fmt.Errorf("TLS handshake with syslog receiver %s: %w", s.cfg.Addr, explainTLS(err, cfg))
		}
		c = tc
	}
	s.conn = c
	return nil
}

// probe reports an error if the receiver has closed or reset the
// connection. Receivers never send application data, so a read that times
// out at once means the connection is still open.
func (s *SyslogSink) probe() error {
	s.conn.SetReadDeadline(time.Now().Add(time.Millisecond))
	defer s.conn.SetReadDeadline(time.Time{})
	var b [512]byte
	_, err := s.conn.Read(b[:])
	var ne net.Error
	if err == nil || (errors.As(err, &ne) && ne.Timeout()) {
		return nil
	}
	return err
}

// Reset closes the connection and forgets unconfirmed batches.
func (s *SyslogSink) Reset() {
	if s.conn != nil {
		s.conn.Close()
		s.conn = nil
	}
	s.pending = nil
}

// Close closes the connection.
func (s *SyslogSink) Close() error {
	s.Reset()
	return nil
}
