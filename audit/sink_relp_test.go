package audit_test

import (
	"bufio"
	"context"
	"fmt"
	"net"
	"strings"
	"testing"
	"time"

	"github.com/ferryvpn/ferry/audit"
)

// relpPeer is a scripted RELP receiver for protocol edge cases that rsyslog
// does not produce on demand: it answers the open, then each syslog command
// with answer(n) for the n-th message.
func relpPeer(t *testing.T, answer func(n int) string) string {
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { ln.Close() })
	go func() {
		for {
			c, err := ln.Accept()
			if err != nil {
				return
			}
			go func() {
				defer c.Close()
				br := bufio.NewReader(c)
				n := 0
				for {
					var txnr int
					var cmd string
					var size int
					if _, err := fmt.Fscanf(br, "%d %s %d", &txnr, &cmd, &size); err != nil {
						return
					}
					buf := make([]byte, size+1)
					if size > 0 {
						buf = make([]byte, size+2) // SP DATA LF
					}
					if _, err := br.Read(buf[:1]); err != nil {
						return
					}
					if size > 0 {
						if _, err := io_ReadFull(br, buf[1:]); err != nil {
							return
						}
					}
					var rsp string
					switch cmd {
					case "open":
						rsp = "200 OK\nrelp_version=0\ncommands=syslog"
					case "syslog":
						n++
						rsp = answer(n)
					default:
						rsp = "200 OK"
					}
					fmt.Fprintf(c, "%d rsp %d %s\n", txnr, len(rsp), rsp)
				}
			}()
		}
	}()
	return ln.Addr().String()
}

func io_ReadFull(br *bufio.Reader, b []byte) (int, error) {
	n := 0
	for n < len(b) {
		m, err := br.Read(b[n:])
		n += m
		if err != nil {
			return n, err
		}
	}
	return n, nil
}

// The sink confirms exactly what the receiver acknowledged, in order, and
// a refusal ("500 ...") is an error naming the record; nothing after it
// counts as delivered.
func TestRELPSinkConfirmsOnlyAcknowledged(t *testing.T) {
	addr := relpPeer(t, func(n int) string {
		if n == 6 {
			return "500 message too large"
		}
		return "200 OK"
	})
	s, err := audit.NewRELPSink(audit.RELPSinkConfig{Addr: addr})
	if err != nil {
		t.Fatal(err)
	}
	defer s.Close()
	c, err := s.Send(context.Background(), entries(1, 5))
	waitFor(t, 10*time.Second, func() (bool, string) {
		if err == nil && c < 5 {
			c, err = s.Send(context.Background(), nil)
		}
		return err != nil || c == 5, fmt.Sprintf("confirmed %d", c)
	})
	if err != nil || c != 5 {
		t.Fatalf("confirmed %d, %v; want 5", c, err)
	}
	c, err = s.Send(context.Background(), entries(6, 3))
	waitFor(t, 10*time.Second, func() (bool, string) {
		if err == nil {
			c, err = s.Send(context.Background(), nil)
		}
		return err != nil, fmt.Sprintf("confirmed %d, no error", c)
	})
	if err == nil || !strings.Contains(err.Error(), "refused record 6: 500 message too large") || c != 5 {
		t.Fatalf("after a refusal: confirmed %d, %v; want 5 and the refusal", c, err)
	}
}
