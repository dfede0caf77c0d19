package capture

import (
	"bufio"
	"context"
	"crypto/sha256"
	"encoding/hex"
	"fmt"
	"io"
	"slices"
	"sync"
	"time"

	"github.com/google/gopacket"
	"github.com/google/gopacket/layers"
	"github.com/google/gopacket/pcapgo"
)

// NodeStream is one node's part of a merged capture.
type NodeStream struct {
	// Name names the node; the pcapng interface is named Name/IFACE
	// (e.g. "node-b/ferry0") when the node's stream names its interface:
	// which node carried a packet, and on which interface.
	Name string
	// Open starts the node's capture and returns its record stream
	// (Stream's output). Cancelling ctx, or closing the stream, must stop
	// the capture on that node.
	Open func(ctx context.Context) (io.ReadCloser, error)
}

// Result is what a merged capture delivered.
type Result struct {
	Stats
	// Nodes are the per-node stats, in the order of the streams; a node
	// that failed has Stopped StopFailed and Err set.
	Nodes []NodeResult `json:"nodes"`
	// SHA256 is the hex SHA-256 of the pcapng file as written.
	SHA256 string `json:"sha256"`
}

// NodeResult is one node's part of a Result.
type NodeResult struct {
	Name string `json:"name"`
	Stats
	Err string `json:"error,omitempty"`
}

// The merged file's link type is LINKTYPE_LOOP: each packet is the IP
// packet after a 4-byte address family in network byte order. Raw IP
// (LINKTYPE_RAW) would need no header, but libpcap (tcpdump -r) refuses a
// pcapng file with several LINKTYPE_RAW interfaces, because it compares
// the link type with the DLT it maps it to; LOOP's numbers agree.
const loopHeader = 4

// BSD address families of LINKTYPE_LOOP, as Wireshark and tcpdump read them.
const (
	afInet  = 2
	afInet6 = 24
)

func withLoopHeader(pkt []byte) []byte {
	af := byte(afInet)
	if len(pkt) > 0 && pkt[0]>>4 == 6 {
		af = afInet6
	}
	return append([]byte{0, 0, 0, af}, pkt...)
}

// mergeGrace is how long past the capture's duration the merger waits
// for nodes' end records before it gives up on them.
const mergeGrace = 5 * time.Second

// Merge runs the capture on every node at once and writes one pcapng file
// to w: one interface block per node, packets in time order (by each
// node's clock), as IP packets behind a loopback header (LINKTYPE_LOOP). It stops every node when ctx
// ends, when lim.Duration passes or when lim.MaxBytes of packet data were
// written in all. A node whose capture fails does not stop the others; its
// error is in the result.
func Merge(ctx context.Context, nodes []NodeStream, filter string, lim Limits, w io.Writer) (Result, error) {
	if err := lim.Validate(); err != nil {
		return Result{}, err
	}
	ctx, cancel := context.WithTimeout(ctx, lim.Duration+mergeGrace)
	defer cancel()
	sum := sha256.New()
	bw := bufio.NewWriter(io.MultiWriter(w, sum))
	res := Result{Nodes: make([]NodeResult, len(nodes))}
	for i, n := range nodes {
		res.Nodes[i].Name = n.Name
	}
	// Interface blocks are written as nodes name their interfaces (or
	// send their first packet), so ifaceOf maps a node to its block.
	var ng *pcapgo.NgWriter
	ifaceOf := make([]int, len(nodes))
	for i := range ifaceOf {
		ifaceOf[i] = -1
	}
	var werr error
	addIface := func(i int, name string) {
		intf := pcapgo.NgInterface{
			Name: name, Description: "ferry capture, decrypted tunnel traffic", Filter: filter,
			OS: "Linux", LinkType: layers.LinkTypeLoop, SnapLength: uint32(lim.Snaplen + loopHeader),
			TimestampResolution: 9,
		}
		var err error
		if ng == nil {
			ng, err = pcapgo.NewNgWriterInterface(bw, intf, pcapgo.NgWriterOptions{SectionInfo: pcapgo.NgSectionInfo{Application: "ferry"}})
			ifaceOf[i] = 0
		} else {
			ifaceOf[i], err = ng.AddInterface(intf)
		}
		if err != nil && werr == nil {
			werr = fmt.Errorf("writing an interface block: %w", err)
		}
		res.Nodes[i].Name = name
	}

	type item struct {
		node int
		rec  record
		err  error
	}
	items := make(chan item)
	var wg sync.WaitGroup
	defer wg.Wait()
	defer cancel()
	for i, n := range nodes {
		wg.Add(1)
		go func() {
			defer wg.Done()
			send := func(it item) bool {
				select {
				case items <- it:
					return true
				case <-ctx.Done():
					return false
				}
			}
			rc, err := n.Open(ctx)
			if err != nil {
				send(item{node: i, err: err})
				return
			}
			stop := context.AfterFunc(ctx, func() { rc.Close() })
			defer stop()
			defer rc.Close()
			br := bufio.NewReader(rc)
			for {
				rec, err := readRecord(br)
				if err != nil {
					if err == io.EOF {
						err = fmt.Errorf("%w: ended without an end record", ErrStream)
					}
					send(item{node: i, err: err})
					return
				}
				if !send(item{node: i, rec: rec}) || rec.kind == recEnd {
					return
				}
			}
		}()
	}

	marks := make([]time.Time, len(nodes))
	done := make([]bool, len(nodes))
	left := len(nodes)
	var pending []Packet
	flush := func(upto time.Time, all bool) {
		slices.SortStableFunc(pending, func(a, b Packet) int { return a.Time.Compare(b.Time) })
		k := 0
		for ; k < len(pending) && (all || !pending[k].Time.After(upto)); k++ {
			p := pending[k]
			ci := gopacket.CaptureInfo{Timestamp: p.Time, CaptureLength: loopHeader + len(p.Data), Length: loopHeader + p.Len, InterfaceIndex: p.Iface}
			if werr == nil {
				werr = ng.WritePacket(ci, withLoopHeader(p.Data))
			}
		}
		pending = slices.Delete(pending, 0, k)
		if k > 0 && !all && werr == nil {
			// Deliver while the capture runs (wireshark -k -i -).
			if werr = ng.Flush(); werr == nil {
				werr = bw.Flush()
			}
		}
	}
	// watermark is the time up to which every running node has sent all
	// its packets.
	watermark := func() (time.Time, bool) {
		var m time.Time
		first := true
		for i := range nodes {
			if done[i] {
				continue
			}
			if first || marks[i].Before(m) {
				m, first = marks[i], false
			}
		}
		return m, !first
	}
	stopped := ""
	for left > 0 {
		var it item
		select {
		case it = <-items:
		case <-ctx.Done():
			if stopped == "" {
				stopped = StopCancelled
				if ctx.Err() == context.DeadlineExceeded {
					stopped = StopDuration
				}
			}
			for i := range nodes {
				if !done[i] {
					done[i] = true
					res.Nodes[i].Stopped = stopped
				}
			}
			left = 0
			continue
		}
		nr := &res.Nodes[it.node]
		switch {
		case it.err != nil:
			done[it.node], left = true, left-1
			nr.Stopped, nr.Err = StopFailed, it.err.Error()
		case it.rec.kind == recEnd:
			done[it.node], left = true, left-1
			nr.Stats = it.rec.end
			res.Dropped += it.rec.end.Dropped
			if it.rec.end.Stopped == StopBytes {
				// One node's share reached the cap: the capture as a
				// whole has, too.
				stopped = StopBytes
				cancel()
			}
		case it.rec.kind == recHeader:
			if ifaceOf[it.node] < 0 {
				addIface(it.node, nodes[it.node].Name+"/"+it.rec.iface)
			}
		case it.rec.kind == recMark:
			if it.rec.mark.After(marks[it.node]) {
				marks[it.node] = it.rec.mark
			}
		case it.rec.kind == recPacket:
			p := it.rec.pkt
			if int64(res.Bytes)+int64(len(p.Data)) > lim.MaxBytes {
				stopped = StopBytes
				cancel() // stops every node
				continue
			}
			if ifaceOf[it.node] < 0 {
				addIface(it.node, nodes[it.node].Name)
			}
			p.Iface = ifaceOf[it.node]
			res.Packets++
			res.Bytes += uint64(len(p.Data))
			pending = append(pending, p)
		}
		if m, ok := watermark(); ok {
			flush(m, false)
		}
	}
	flush(time.Time{}, true)
	if ng == nil && len(nodes) > 0 {
		addIface(0, nodes[0].Name) // a valid, empty file
	}
	if werr == nil && ng != nil {
		werr = ng.Flush()
	}
	if werr == nil {
		werr = bw.Flush()
	}
	res.Stopped = stopped
	if res.Stopped == "" {
		// Every part ended on its own: the byte cap of one is the
		// capture's; a part cancelled (its node stopped) while others ran
		// their full duration does not make the capture "cancelled".
		byStop := map[string]bool{}
		for _, n := range res.Nodes {
			byStop[n.Stopped] = true
		}
		switch {
		case byStop[StopBytes]:
			res.Stopped = StopBytes
		case byStop[StopCancelled] && !byStop[StopDuration]:
			res.Stopped = StopCancelled
		default:
			res.Stopped = StopDuration
		}
	}
	res.SHA256 = hex.EncodeToString(sum.Sum(nil))
	if werr != nil {
		return res, fmt.Errorf("capture: writing pcapng: %w", werr)
	}
	return res, nil
}
