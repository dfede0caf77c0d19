package conn

import (
	"bytes"
	"fmt"
	"net"
	"net/netip"
	"reflect"
	"slices"
	"testing"
	"time"

	"golang.org/x/net/ipv6"
)

// TestMessageFields fails when ipv6.Message gains or loses a field:
// messageClean must then be checked against the new set, or putMessages
// would leave a used entry's new field for the next caller.
func TestMessageFields(t *testing.T) {
	var names []string
	typ := reflect.TypeOf(ipv6.Message{})
	for i := 0; i < typ.NumField(); i++ {
		names = append(names, typ.Field(i).Name)
	}
	if want := []string{"Buffers", "OOB", "Addr", "N", "NN", "Flags"}; !slices.Equal(names, want) {
		t.Fatalf("ipv6.Message has fields %v, messageClean knows %v", names, want)
	}
}

// TestPutMessagesResetsEveryUsedEntry dirties each field of scattered
// entries and checks that putMessages leaves every entry as the pool's New
// makes it, keeping its buffer.
func TestPutMessagesResetsEveryUsedEntry(t *testing.T) {
	s := NewStdNetBind().(*StdNetBind)
	addr := &net.UDPAddr{IP: net.IPv4(192, 0, 2, 1), Port: 51820}
	dirty := []func(m *ipv6.Message){
		func(m *ipv6.Message) { m.N = 1420 },
		func(m *ipv6.Message) { m.NN = 24 },
		func(m *ipv6.Message) { m.Flags = 1 },
		func(m *ipv6.Message) { m.Addr = addr },
		func(m *ipv6.Message) { m.OOB = m.OOB[:cap(m.OOB)] },
		func(m *ipv6.Message) { m.N, m.NN, m.Addr, m.OOB = 64, 8, addr, m.OOB[:8] },
	}
	for round, at := range [][]int{{0}, {IdealBatchSize - 1}, {0, 1, 2, 3, 4, 5}, {3, 64, 126, 127}} {
		msgs := s.getMessages()
		bufs := make([][]byte, len(*msgs))
		for i := range *msgs {
			bufs[i] = make([]byte, 8)
			(*msgs)[i].Buffers[0] = bufs[i]
		}
		for k, i := range at {
			dirty[(k+round)%len(dirty)](&(*msgs)[i])
		}
		s.putMessages(msgs)
		for i := range *msgs {
			m := &(*msgs)[i]
			if !messageClean(m) || m.Addr != nil || len(m.OOB) != 0 || cap(m.OOB) != stickyControlSize+gsoControlSize {
				t.Fatalf("round %d: entry %d after putMessages: N %d NN %d Flags %d Addr %v OOB %d/%d", round, i, m.N, m.NN, m.Flags, m.Addr, len(m.OOB), cap(m.OOB))
			}
			if len(m.Buffers) != 1 || &m.Buffers[0][0] != &bufs[i][0] {
				t.Fatalf("round %d: entry %d lost its buffer", round, i)
			}
		}
	}
}

// TestReceiveAfterBatches sends batches of shrinking and growing sizes
// over loopback and checks that each receive returns exactly the datagrams
// of its batch, in order, from the sender: an entry left over from a
// larger batch must not be returned again. (On loopback the datagrams
// arrive one by one; coalesced ones, split by splitCoalescedMessages, are
// tested by upstream's Test_splitCoalescedMessages and carried by the
// tunnel package's data-plane tests over veth.)
func TestReceiveAfterBatches(t *testing.T) {
	rx, tx := NewStdNetBind(), NewStdNetBind()
	fns, port, err := rx.Open(0)
	if err != nil {
		t.Skipf("no UDP on loopback: %v", err)
	}
	defer rx.Close()
	if _, _, err := tx.Open(0); err != nil {
		t.Fatal(err)
	}
	defer tx.Close()
	dst, err := rx.ParseEndpoint(netip.AddrPortFrom(netip.MustParseAddr("127.0.0.1"), port).String())
	if err != nil {
		t.Fatal(err)
	}
	recv := fns[0] // IPv4 first (see StdNetBind.Open)
	bufs := make([][]byte, rx.BatchSize())
	for i := range bufs {
		bufs[i] = make([]byte, 65535)
	}
	sizes := make([]int, len(bufs))
	eps := make([]Endpoint, len(bufs))
	for batch, count := range []int{8, 1, 5, 2, 40, 1, 3} {
		var sent [][]byte
		for i := range count {
			// Equal sizes let the sender coalesce them (UDP GSO) and the
			// kernel deliver them coalesced (UDP GRO) where it can.
			sent = append(sent, bytes.Repeat([]byte{byte(batch), byte(i)}, 300))
		}
		if err := tx.Send(sent, dst); err != nil {
			t.Fatal(err)
		}
		var got [][]byte
		deadline := time.Now().Add(10 * time.Second)
		for len(got) < count {
			if time.Now().After(deadline) {
				t.Fatalf("batch %d: received %d of %d datagrams", batch, len(got), count)
			}
			n, err := recv(bufs, sizes, eps)
			if err != nil {
				t.Fatal(err)
			}
			for i := range n {
				if sizes[i] == 0 {
					continue
				}
				if ap := eps[i].(*StdNetEndpoint).AddrPort; !ap.Addr().IsLoopback() {
					t.Fatalf("batch %d: datagram from %v", batch, ap)
				}
				got = append(got, slices.Clone(bufs[i][:sizes[i]]))
			}
		}
		if len(got) != count {
			t.Fatalf("batch %d: received %d datagrams, sent %d", batch, len(got), count)
		}
		for i := range got {
			if !bytes.Equal(got[i], sent[i]) {
				t.Fatalf("batch %d: datagram %d is %s, sent %s", batch, i, head(got[i]), head(sent[i]))
			}
		}
	}
}

func head(b []byte) string { return fmt.Sprintf("%x... (%d bytes)", b[:min(4, len(b))], len(b)) }
