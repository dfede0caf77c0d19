package audit

import (
	"context"
	"crypto/tls"
	"crypto/x509"
	"encoding/json"
	"errors"
	"fmt"
	"net"
	"net/url"
	"strings"
	"time"

	"github.com/ferryvpn/ferry/cluster"
	"github.com/ferryvpn/ferry/cluster/seal"
)

// Network sinks are cluster configuration: each is stored in the
// replicated state under sinkPrefix+name, its secrets (an HEC token, a
// client certificate's key) sealed under the master key, so whichever
// node leads exports to the same sinks from the same cursors. File sinks
// stay in each node's configuration: they are node-local.

// sinkPrefix holds one SinkSpec per network sink.
const sinkPrefix = "audit/sinks/"

// keySinksImported marks that the configuration file's network sinks were
// imported (once, by the first leader that had any).
const keySinksImported = "sys/audit/sinks-imported"

// ErrSinkExists is returned by AddSink when a sink of that name exists.
var ErrSinkExists = errors.New("audit: sink exists")

// ErrNoSuchSink is returned when no sink has the name given.
var ErrNoSuchSink = errors.New("audit: no such sink")

// SinkSpec describes a network sink. Token and ClientKey are secrets:
// stored sealed, never returned by Public.
type SinkSpec struct {
	Name   string `json:"name"`
	Type   string `json:"type"`             // syslog, relp or hec
	Format string `json:"format,omitempty"` // json (default), cef, ocsf
	// syslog, relp: Addr host:port. TLS when CA is set.
	Addr string `json:"addr,omitempty"`
	// hec: URL, Token, Ack, Index.
	URL   string `json:"url,omitempty"`
	Token string `json:"token,omitempty"`
	Ack   bool   `json:"ack,omitempty"`
	Index string `json:"index,omitempty"`
	// TLS: CA (PEM) to verify the receiver, ServerName to check, and a
	// client certificate (ClientCert PEM, ClientKey PEM).
	CA         string `json:"ca,omitempty"`
	ServerName string `json:"server_name,omitempty"`
	ClientCert string `json:"client_cert,omitempty"`
	ClientKey  string `json:"client_key,omitempty"`
	// syslog: the re-send window.
	ResendRecords uint64        `json:"resend_records,omitempty"`
	ResendAge     time.Duration `json:"resend_age,omitempty"`
}

// storedSpec is a SinkSpec as stored: secrets sealed.
type storedSpec struct {
	SinkSpec
	SealedToken []byte `json:"sealed_token,omitempty"`
	SealedKey   []byte `json:"sealed_client_key,omitempty"`
}

// Public returns the spec without its secrets, saying only whether they
// are set.
func (s SinkSpec) Public() SinkSpec {
	if s.Token != "" {
		s.Token = "(sealed)"
	}
	if s.ClientKey != "" {
		s.ClientKey = "(sealed)"
	}
	return s
}

// Validate checks the spec, naming the first bad field.
func (s *SinkSpec) Validate() error {
	if err := checkSinkName(s.Name); err != nil {
		return err
	}
	if _, ok := FormatByName(s.Format); !ok && s.Format != "" {
		return fmt.Errorf("sink %s: format %q: want json, cef or ocsf", s.Name, s.Format)
	}
	switch s.Type {
	case "syslog", "relp":
		if _, _, err := net.SplitHostPort(s.Addr); err != nil {
			return fmt.Errorf("sink %s: addr %q: want host:port", s.Name, s.Addr)
		}
	case "hec":
		u, err := url.Parse(s.URL)
		if err != nil || (u.Scheme != "https" && u.Scheme != "http") || u.Host == "" {
			return fmt.Errorf("sink %s: url %q: want the HEC URL", s.Name, s.URL)
		}
		if s.Token == "" || strings.ContainsAny(s.Token, "\r\n") {
			return fmt.Errorf("sink %s: token: required, one line", s.Name)
		}
	default:
		return fmt.Errorf("sink %s: type %q: want syslog, relp or hec (file sinks are configured per node)", s.Name, s.Type)
	}
	if (s.ClientCert == "") != (s.ClientKey == "") {
		return fmt.Errorf("sink %s: client_cert and client_key go together", s.Name)
	}
	if _, err := s.tls(); err != nil {
		return err
	}
	return nil
}

func (s *SinkSpec) tls() (*tls.Config, error) {
	if s.CA == "" && s.ClientCert == "" {
		return nil, nil
	}
	tc := &tls.Config{MinVersion: tls.VersionTLS12, ServerName: s.ServerName}
	if s.CA != "" {
		pool := x509.NewCertPool()
		if !pool.AppendCertsFromPEM([]byte(s.CA)) {
			return nil, fmt.Errorf("sink %s: ca: no PEM certificate", s.Name)
		}
		tc.RootCAs = pool
	}
	if s.ClientCert != "" {
		cert, err := tls.X509KeyPair([]byte(s.ClientCert), []byte(s.ClientKey))
		if err != nil {
			return nil, fmt.Errorf("sink %s: client certificate: %w", s.Name, err)
		}
		tc.Certificates = []tls.Certificate{cert}
	}
	return tc, nil
}

// SinkOptions are what building a sink from a spec needs beyond it.
type SinkOptions struct {
	// Hostname and SDID go into syslog and HEC messages (see Syslog).
	Hostname, SDID string
}

// Build returns the sink the spec describes.
func (s *SinkSpec) Build(o SinkOptions) (Sink, error) {
	if err := s.Validate(); err != nil {
		return nil, err
	}
	f, _ := FormatByName(s.Format)
	if f == nil {
		f = JSONLines{}
	}
	tc, _ := s.tls()
	switch s.Type {
	case "syslog":
		return NewSyslogSink(SyslogSinkConfig{Name: s.Name, Addr: s.Addr, TLS: tc, Format: &Syslog{Inner: f, Hostname: o.Hostname, SDID: o.SDID},
			ResendRecords: s.ResendRecords, ResendAge: s.ResendAge})
	case "relp":
		return NewRELPSink(RELPSinkConfig{Name: s.Name, Addr: s.Addr, TLS: tc, Format: &Syslog{Inner: f, Hostname: o.Hostname, SDID: o.SDID}})
	default:
		return NewHECSink(HECSinkConfig{Name: s.Name, URL: s.URL, Token: s.Token, Format: f, Ack: s.Ack, Index: s.Index, TLS: tc,
			SourceType: "ferry:audit:" + f.Name(), Host: o.Hostname})
	}
}

func sealSpec(key seal.Key, s SinkSpec) ([]byte, error) {
	st := storedSpec{SinkSpec: s}
	var err error
	if s.Token != "" {
		if st.SealedToken, err = seal.Seal(key, []byte(s.Token), []byte(sinkPrefix+s.Name+"/token")); err != nil {
			return nil, err
		}
	}
	if s.ClientKey != "" {
		if st.SealedKey, err = seal.Seal(key, []byte(s.ClientKey), []byte(sinkPrefix+s.Name+"/key")); err != nil {
			return nil, err
		}
	}
	st.Token, st.ClientKey = "", ""
	return json.Marshal(st)
}

func openSpec(key seal.Key, b []byte) (SinkSpec, error) {
	var st storedSpec
	if err := json.Unmarshal(b, &st); err != nil {
		return SinkSpec{}, fmt.Errorf("%w: sink: %v", ErrMalformed, err)
	}
	s := st.SinkSpec
	if len(st.SealedToken) > 0 {
		tok, err := seal.Open(key, st.SealedToken, []byte(sinkPrefix+s.Name+"/token"))
		if err != nil {
			return SinkSpec{}, fmt.Errorf("sink %s: unsealing the token: %w", s.Name, err)
		}
		s.Token = string(tok)
	}
	if len(st.SealedKey) > 0 {
		k, err := seal.Open(key, st.SealedKey, []byte(sinkPrefix+s.Name+"/key"))
		if err != nil {
			return SinkSpec{}, fmt.Errorf("sink %s: unsealing the client key: %w", s.Name, err)
		}
		s.ClientKey = string(k)
	}
	return s, nil
}

// SinkStore keeps the network sinks in the cluster.
type SinkStore struct {
	Node *cluster.Node
	Key  seal.Key
	// Recorder, when set, receives an administrator's sink changes
	// (AddBy, RemoveBy): where the evidence goes is itself evidence, and
	// each change commits with its record (Commit) or not at all.
	Recorder Recorder
}

// Add stores a new sink; ErrSinkExists if the name is taken.
func (ss *SinkStore) Add(ctx context.Context, s SinkSpec) error {
	return ss.add(ctx, s, nil)
}

// AddBy is Add as actor's change, committed with its admin
// audit.sink.add record (Recorder required).
func (ss *SinkStore) AddBy(ctx context.Context, s SinkSpec, actor Actor) error {
	e, err := ss.sinkEvent("audit.sink.add", s.Name, actor)
	if err != nil {
		return err
	}
	return ss.add(ctx, s, e)
}

// sinkEvent returns the record of a sink change by actor.
func (ss *SinkStore) sinkEvent(action, name string, actor Actor) (*Event, error) {
	if ss.Recorder == nil {
		return nil, errors.New("audit: sink store has no recorder")
	}
	return &Event{Type: TypeAdmin, Action: action, Actor: actor, Outcome: Success, Details: map[string]string{"sink": name}}, nil
}

// commit applies t with e's record, if any.
func (ss *SinkStore) commit(ctx context.Context, t cluster.Txn, e *Event) (cluster.TxnResult, error) {
	if e == nil {
		return ss.Node.Txn(ctx, t)
	}
	return Commit(ctx, ss.Node, ss.Recorder, t, *e)
}

func (ss *SinkStore) add(ctx context.Context, s SinkSpec, e *Event) error {
	if err := s.Validate(); err != nil {
		return fmt.Errorf("%w: %w", ErrInvalidSink, err)
	}
	b, err := sealSpec(ss.Key, s)
	if err != nil {
		return err
	}
	res, err := ss.commit(ctx, cluster.Txn{
		Compares: []cluster.Compare{cluster.IfAbsent(sinkPrefix + s.Name)},
		Ops:      []cluster.Op{cluster.Put(sinkPrefix+s.Name, b)},
	}, e)
	if err != nil {
		return fmt.Errorf("storing sink: %w", err)
	}
	if !res.Succeeded {
		return fmt.Errorf("%w: %s", ErrSinkExists, s.Name)
	}
	return nil
}

// Remove deletes a sink and its cursor.
func (ss *SinkStore) Remove(ctx context.Context, name string) error {
	return ss.remove(ctx, name, nil)
}

// RemoveBy is Remove as actor's change, committed with its admin
// audit.sink.remove record (Recorder required).
func (ss *SinkStore) RemoveBy(ctx context.Context, name string, actor Actor) error {
	e, err := ss.sinkEvent("audit.sink.remove", name, actor)
	if err != nil {
		return err
	}
	return ss.remove(ctx, name, e)
}

func (ss *SinkStore) remove(ctx context.Context, name string, e *Event) error {
	kv, ok, err := ss.Node.Get(ctx, sinkPrefix+name, cluster.Linearizable)
	if err != nil {
		return err
	}
	if !ok {
		return fmt.Errorf("%w: %s", ErrNoSuchSink, name)
	}
	res, err := ss.commit(ctx, cluster.Txn{
		Compares: []cluster.Compare{cluster.IfVersion(sinkPrefix+name, kv.Version)},
		Ops:      []cluster.Op{cluster.Delete(sinkPrefix + name), cluster.Delete(CursorKey(name))},
	}, e)
	if err != nil {
		return fmt.Errorf("removing sink: %w", err)
	}
	if !res.Succeeded {
		return fmt.Errorf("%w: %s (changed meanwhile)", ErrNoSuchSink, name)
	}
	return nil
}

// List returns every network sink, secrets unsealed.
func (ss *SinkStore) List(ctx context.Context) ([]SinkSpec, error) {
	kvs, _, err := ss.Node.List(ctx, sinkPrefix, cluster.Local)
	if err != nil {
		return nil, err
	}
	out := make([]SinkSpec, 0, len(kvs))
	for _, kv := range kvs {
		s, err := openSpec(ss.Key, kv.Value)
		if err != nil {
			return nil, err
		}
		out = append(out, s)
	}
	return out, nil
}

// Get returns one sink, secrets unsealed.
func (ss *SinkStore) Get(ctx context.Context, name string) (SinkSpec, error) {
	kv, ok, err := ss.Node.Get(ctx, sinkPrefix+name, cluster.Local)
	if err != nil {
		return SinkSpec{}, err
	}
	if !ok {
		return SinkSpec{}, fmt.Errorf("%w: %s", ErrNoSuchSink, name)
	}
	return openSpec(ss.Key, kv.Value)
}

// ImportOnce stores the configuration file's network sinks unless an
// import already happened: the file is a bootstrap, the cluster the
// truth afterwards. Sinks whose names exist are left as they are.
func (ss *SinkStore) ImportOnce(ctx context.Context, specs []SinkSpec) (imported int, err error) {
	if _, ok, err := ss.Node.Get(ctx, keySinksImported, cluster.Linearizable); err != nil || ok {
		return 0, err
	}
	for _, s := range specs {
		switch err := ss.Add(ctx, s); {
		case err == nil:
			imported++
		case errors.Is(err, ErrSinkExists):
		default:
			return imported, err
		}
	}
	_, err = ss.Node.Txn(ctx, cluster.Txn{
		Compares: []cluster.Compare{cluster.IfAbsent(keySinksImported)},
		Ops:      []cluster.Op{cluster.Put(keySinksImported, []byte(time.Now().UTC().Format(time.RFC3339)))},
	})
	return imported, err
}

// ErrInvalidSink is returned when a sink's description is not valid.
var ErrInvalidSink = errors.New("audit: invalid sink")
