package tunnel_test

import (
	"net/netip"
	"strings"
	"testing"

	"golang.zx2c4.com/wireguard/wgctrl/wgtypes"

	"github.com/ferryvpn/ferry/cluster"
	"github.com/ferryvpn/ferry/tunnel"
	"github.com/ferryvpn/ferry/tunnel/tunneltest"
)

func TestConfigPacketBuffers(t *testing.T) {
	key, err := wgtypes.GeneratePrivateKey()
	if err != nil {
		t.Fatal(err)
	}
	for _, tc := range []struct {
		name    string
		buffers int
		wantErr string
	}{
		{"default", 0, ""},
		{"least", tunnel.MinPacketBuffers, ""},
		{"default value", tunnel.DefaultPacketBuffers, ""},
		{"below a batch per reader", tunnel.MinPacketBuffers - 1, "packet_buffers"},
		{"negative", -1, "packet_buffers"},
		{"absurd", 1 << 21, "packet_buffers"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			cfg := tunnel.Config{Cluster: &cluster.Node{}, Recorder: &tunneltest.Recorder{}, PrivateKey: key,
				Address: netip.MustParsePrefix("100.64.0.1/16"), PacketBuffers: tc.buffers}
			err := cfg.Validate()
			switch {
			case tc.wantErr == "" && err != nil:
				t.Fatalf("Validate: %v", err)
			case tc.wantErr != "" && (err == nil || !strings.Contains(err.Error(), tc.wantErr)):
				t.Fatalf("Validate: %v, want an error naming %s", err, tc.wantErr)
			}
		})
	}
}
