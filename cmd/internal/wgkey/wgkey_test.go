package wgkey_test

import (
	"bytes"
	"context"
	"sync"
	"testing"
	"time"

	"golang.zx2c4.com/wireguard/wgctrl/wgtypes"

	"github.com/ferryvpn/ferry/cluster/clustertest"
	"github.com/ferryvpn/ferry/cluster/seal"
	"github.com/ferryvpn/ferry/cmd/internal/wgkey"
)

func TestEveryNodeGetsTheSameSealedKey(t *testing.T) {
	c := clustertest.Start(t, 3, clustertest.Options{Fast: true})
	master, _ := seal.GenerateKey()
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	keys := make([]wgtypes.Key, 3)
	var wg sync.WaitGroup
	for i := 0; i < 3; i++ {
		wg.Add(1)
		go func(i int) {
			defer wg.Done()
			k, err := wgkey.Ensure(ctx, c.Node(i), master)
			if err != nil {
				t.Error(err)
			}
			keys[i] = k
		}(i)
	}
	wg.Wait()
	if keys[0] != keys[1] || keys[1] != keys[2] || keys[0] == (wgtypes.Key{}) {
		t.Fatal("nodes disagree on the wireguard key")
	}
	kv, _, _ := c.Node(0).Get(ctx, wgkey.Key, 0)
	if bytes.Contains(kv.Value, keys[0][:]) {
		t.Fatal("the stored key is not sealed")
	}
	other, _ := seal.GenerateKey()
	if _, err := wgkey.Ensure(ctx, c.Node(1), other); err == nil {
		t.Fatal("a wrong master key unsealed the wireguard key")
	}
}
