package tunnel

import (
	"strconv"
	"time"

	"golang.zx2c4.com/wireguard/wgctrl/wgtypes"

	"github.com/ferryvpn/ferry/audit"
	"github.com/ferryvpn/ferry/profiles"
)

// Reasons a session ends, in session.end events.
const (
	endIdle     = "idle"
	endExpired  = "expired"
	endRevoked  = "revoked"
	endRemoved  = "removed" // the peer left the device for another reason (key rotated, profile deleted)
	endShutdown = "shutdown"
)

// session is one client's stay on this node: from the first handshake
// after issuance or after idling to the last.
type session struct {
	peer     *profiles.Peer
	version  uint64 // enforced profile version at start
	start    time.Time
	endpoint string
	lastHS   time.Time
	// Device counters at the start, and the latest seen.
	baseRx, baseTx int64
	rx, tx         int64
}

// sessions derives session.start and session.end from the device's
// handshake times, endpoints and byte counters. Owned by the reconciler's
// goroutine.
type sessions struct {
	idle time.Duration
	emit func(audit.Event)
	// version returns the enforced version of a profile.
	version func(profile string) uint64
	active  map[wgtypes.Key]*session
	// ended holds, per key, the handshake time and counters at the end of
	// its last session, so the next one starts after it.
	ended   map[wgtypes.Key]session
	metrics *metrics
}

func newSessions(idle time.Duration, emit func(audit.Event), version func(string) uint64, m *metrics) *sessions {
	return &sessions{idle: idle, emit: emit, version: version, active: map[wgtypes.Key]*session{}, ended: map[wgtypes.Key]session{}, metrics: m}
}

// observe updates sessions from a device read at now.
func (s *sessions) observe(now time.Time, peers []wgtypes.Peer, byKey map[wgtypes.Key]*profiles.Peer) {
	var rx, tx int64
	for i := range peers {
		p := &peers[i]
		rx += p.ReceiveBytes
		tx += p.TransmitBytes
		info := byKey[p.PublicKey]
		cur := s.active[p.PublicKey]
		hs := p.LastHandshakeTime
		if cur != nil {
			cur.rx, cur.tx = p.ReceiveBytes, p.TransmitBytes
			if p.Endpoint != nil {
				cur.endpoint = p.Endpoint.String()
			}
			if hs.After(cur.lastHS) {
				cur.lastHS = hs
			}
			if now.Sub(cur.lastHS) >= s.idle {
				s.end(p.PublicKey, now, endIdle)
			}
			continue
		}
		if info == nil || hs.IsZero() || now.Sub(hs) >= s.idle || hs.Before(info.Issued) {
			continue
		}
		prev, hadPrev := s.ended[p.PublicKey]
		if hadPrev && !hs.After(prev.lastHS) {
			continue
		}
		ns := &session{peer: info, version: s.version(info.Profile), start: hs, lastHS: hs, rx: p.ReceiveBytes, tx: p.TransmitBytes}
		if hadPrev && prev.rx <= p.ReceiveBytes && prev.tx <= p.TransmitBytes {
			ns.baseRx, ns.baseTx = prev.rx, prev.tx
		}
		if p.Endpoint != nil {
			ns.endpoint = p.Endpoint.String()
		}
		s.active[p.PublicKey] = ns
		s.emit(ns.event(audit.TypeSessionStart, now, ""))
	}
	s.metrics.setTraffic(rx, tx)
	s.metrics.sessions.Set(float64(len(s.active)))
}

// removed ends the session of a peer leaving the device, with its final
// counters (nil when unknown).
func (s *sessions) removed(key wgtypes.Key, final *wgtypes.Peer, now time.Time, reason string) {
	cur := s.active[key]
	if cur != nil && final != nil {
		cur.rx, cur.tx = final.ReceiveBytes, final.TransmitBytes
		if final.Endpoint != nil {
			cur.endpoint = final.Endpoint.String()
		}
	}
	if cur != nil {
		s.end(key, now, reason)
	}
	delete(s.ended, key)
	s.metrics.sessions.Set(float64(len(s.active)))
}

// closeAll ends every session (the gateway stops).
func (s *sessions) closeAll(now time.Time) {
	for k := range s.active {
		s.end(k, now, endShutdown)
	}
}

func (s *sessions) end(key wgtypes.Key, now time.Time, reason string) {
	cur := s.active[key]
	delete(s.active, key)
	s.ended[key] = *cur
	s.emit(cur.event(audit.TypeSessionEnd, now, reason))
}

// event describes the session. Bytes are from the client's side: out is
// what it sent (the device received), in what it got.
func (ss *session) event(t audit.Type, now time.Time, reason string) audit.Event {
	p := ss.peer
	e := audit.Event{
		Type:          t,
		Actor:         audit.Actor{UserID: p.UserID, Email: p.Email, Session: p.SessionID},
		Target:        audit.Target{Peer: p.ID, Device: p.Device, Profile: p.Profile, User: p.UserID, DstAddr: p.Address.String()},
		Outcome:       audit.Success,
		PolicyVersion: ss.version,
		Details: map[string]string{
			"issued_version": strconv.FormatUint(p.ProfileVersion, 10),
			"session_start":  ss.start.UTC().Format(time.RFC3339Nano),
		},
	}
	if host, port, ok := splitEndpoint(ss.endpoint); ok {
		e.Source = audit.Source{Addr: host, Port: port}
	}
	if t == audit.TypeSessionEnd {
		e.Reason = reason
		e.BytesOut = uint64(max(0, ss.rx-ss.baseRx))
		e.BytesIn = uint64(max(0, ss.tx-ss.baseTx))
		e.Duration = now.Sub(ss.start)
		e.Details["last_handshake"] = ss.lastHS.UTC().Format(time.RFC3339Nano)
	}
	return e
}

func splitEndpoint(ep string) (string, int, bool) {
	if ep == "" {
		return "", 0, false
	}
	for i := len(ep) - 1; i >= 0; i-- {
		if ep[i] == ':' {
			port, err := strconv.Atoi(ep[i+1:])
			if err != nil {
				return "", 0, false
			}
			host := ep[:i]
			if len(host) > 1 && host[0] == '[' {
				host = host[1 : len(host)-1]
			}
			return host, port, true
		}
	}
	return "", 0, false
}
