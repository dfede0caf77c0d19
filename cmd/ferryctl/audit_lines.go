package main

import (
	"bytes"
	"encoding/json"
	"fmt"
	"io"
	"strings"
	"time"
)

// auditLines turns the native JSON lines of the audit stream into one
// readable line per record (time, actor, action, target, outcome), for
// people: the default of "ferryctl audit tail". Lines it cannot read as a
// record (an export's header or trailer) are skipped; checkpoints are
// shown as such.
type auditLines struct {
	out io.Writer
	buf []byte
}

// auditLine is what a readable line needs of a native JSON line.
type auditLine struct {
	Seq    uint64 `json:"seq"`
	Record struct {
		Time   time.Time `json:"time"`
		Type   string    `json:"type"`
		Action string    `json:"action"`
		Actor  struct {
			UserID string `json:"user_id"`
			Email  string `json:"email"`
		} `json:"actor"`
		Source struct {
			Addr string `json:"addr"`
		} `json:"source"`
		Target  map[string]any `json:"target"`
		Outcome string         `json:"outcome"`
		Reason  string         `json:"reason"`
	} `json:"record"`
}

func (a *auditLines) Write(p []byte) (int, error) {
	a.buf = append(a.buf, p...)
	for {
		i := bytes.IndexByte(a.buf, '\n')
		if i < 0 {
			return len(p), nil
		}
		line := a.buf[:i]
		a.buf = a.buf[i+1:]
		if err := a.line(line); err != nil {
			return len(p), err
		}
	}
}

func (a *auditLines) line(b []byte) error {
	var l auditLine
	if len(bytes.TrimSpace(b)) == 0 || json.Unmarshal(b, &l) != nil || l.Seq == 0 {
		return nil
	}
	r := l.Record
	if r.Type == "" {
		_, err := fmt.Fprintf(a.out, "#%d  checkpoint\n", l.Seq)
		return err
	}
	actor := r.Actor.Email
	if actor == "" {
		actor = r.Actor.UserID
	}
	if actor == "" {
		actor = "-"
	}
	action := r.Type
	if r.Action != "" {
		action += " " + r.Action
	}
	var target []string
	for _, k := range []string{"user", "profile", "device", "peer", "node", "dst_addr", "dst_port", "protocol"} {
		if v, ok := r.Target[k]; ok && fmt.Sprint(v) != "" {
			target = append(target, fmt.Sprintf("%s=%v", k, v))
		}
	}
	if len(target) == 0 {
		target = []string{"-"}
	}
	outcome := r.Outcome
	if r.Reason != "" {
		outcome += " (" + r.Reason + ")"
	}
	_, err := fmt.Fprintf(a.out, "%s  #%d  %s  %s  %s  %s\n", r.Time.UTC().Format("2006-01-02 15:04:05Z"), l.Seq, actor, action, strings.Join(target, " "), outcome)
	return err
}
