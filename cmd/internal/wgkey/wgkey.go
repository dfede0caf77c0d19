// Package wgkey keeps the cluster's WireGuard interface key: one key for
// every node (so a client moved to another node by the load balancer only
// handshakes again), generated once, stored sealed under the master key.
package wgkey

import (
	"context"
	"errors"
	"fmt"

	"golang.zx2c4.com/wireguard/wgctrl/wgtypes"

	"github.com/ferryvpn/ferry/cluster"
	"github.com/ferryvpn/ferry/cluster/seal"
)

// Key is where the sealed key lives; it is also the sealing's associated
// data, so the ciphertext cannot be moved to another key.
const Key = "sys/wg/key"

// Ensure returns the cluster's WireGuard private key, creating it on first
// use. Concurrent first uses on several nodes agree on one key: the write
// compares absence, and the loser reads the winner's.
func Ensure(ctx context.Context, node *cluster.Node, master seal.Key) (wgtypes.Key, error) {
	if k, ok, err := load(ctx, node, master, cluster.Local); err != nil || ok {
		return k, err
	}
	k, ok, err := load(ctx, node, master, cluster.Linearizable)
	if err != nil || ok {
		return k, err
	}
	priv, err := wgtypes.GeneratePrivateKey()
	if err != nil {
		return wgtypes.Key{}, err
	}
	sealed, err := seal.Seal(master, priv[:], []byte(Key))
	if err != nil {
		return wgtypes.Key{}, err
	}
	if _, err := node.Txn(ctx, cluster.Txn{
		Compares: []cluster.Compare{cluster.IfAbsent(Key)},
		Ops:      []cluster.Op{cluster.Put(Key, sealed)},
	}); err != nil {
		return wgtypes.Key{}, fmt.Errorf("storing the wireguard key: %w", err)
	}
	k, ok, err = load(ctx, node, master, cluster.Linearizable)
	if err == nil && !ok {
		err = errors.New("wireguard key missing right after it was stored")
	}
	return k, err
}

func load(ctx context.Context, node *cluster.Node, master seal.Key, c cluster.Consistency) (wgtypes.Key, bool, error) {
	kv, ok, err := node.Get(ctx, Key, c)
	if err != nil || !ok {
		return wgtypes.Key{}, false, err
	}
	raw, err := seal.Open(master, kv.Value, []byte(Key))
	if err != nil {
		return wgtypes.Key{}, false, fmt.Errorf("unsealing the wireguard key (wrong master key?): %w", err)
	}
	k, err := wgtypes.NewKey(raw)
	return k, err == nil, err
}
