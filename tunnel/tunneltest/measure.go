package tunneltest

import (
	"context"
	"errors"
	"net/netip"
	"os"
	"strconv"
	"strings"
	"time"

	"github.com/google/nftables"

	"github.com/ferryvpn/ferry/cluster"
	"github.com/ferryvpn/ferry/tunnel"
)

// revokeLatency writes req.Value at req.Key and polls ferry's client map
// over netlink until req.Addr is gone.
func revokeLatency(ctx context.Context, node *cluster.Node, _ string, req Request) (Response, bool, error) {
	addr, err := netip.ParseAddr(req.Addr)
	if err != nil {
		return Response{}, true, err
	}
	conn, err := nftables.New()
	if err != nil {
		return Response{}, true, err
	}
	set := &nftables.Set{Table: &nftables.Table{Name: tunnel.DefaultTable, Family: nftables.TableFamilyINet}, Name: "clients"}
	present := func() (bool, error) {
		els, err := conn.GetSetElements(set)
		if err != nil {
			return false, err
		}
		for _, e := range els {
			if a, ok := netip.AddrFromSlice(e.Key); ok && a == addr {
				return true, nil
			}
		}
		return false, nil
	}
	start := time.Now()
	if _, err := node.Put(ctx, req.Key, req.Value); err != nil {
		return Response{}, true, err
	}
	deadline := start.Add(10 * time.Second)
	for time.Now().Before(deadline) {
		ok, err := present()
		if err != nil {
			return Response{}, true, err
		}
		if !ok {
			return Response{Elapsed: time.Since(start)}, true, nil
		}
		time.Sleep(time.Millisecond)
	}
	return Response{}, true, errors.New("client still in the map after 10s")
}

// hwm returns this process's peak resident set size in bytes.
func hwm() int64 {
	data, err := os.ReadFile("/proc/self/status")
	if err != nil {
		return 0
	}
	for _, line := range strings.Split(string(data), "\n") {
		if rest, ok := strings.CutPrefix(line, "VmHWM:"); ok {
			f := strings.Fields(rest)
			if len(f) > 0 {
				kb, _ := strconv.ParseInt(f[0], 10, 64)
				return kb << 10
			}
		}
	}
	return 0
}
