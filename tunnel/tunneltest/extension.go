package tunneltest

import (
	"context"
	"encoding/json"
	"fmt"
	"sync"

	"github.com/ferryvpn/ferry/cluster"
)

// An Extension adds ops to a server agent, for tests of higher layers
// (authn, profiles) that need the same netns data plane: it runs beside
// the agent's cluster node and gateway.
type Extension interface {
	// Handle answers an op; ok is false for ops it does not know.
	Handle(ctx context.Context, req Request) (resp Response, ok bool, err error)
	// Close stops it; the agent calls it before closing the node.
	Close()
}

// ExtensionFactory starts an Extension on a server agent's node, with the
// configuration the test put in ServerConfig.ExtensionConfig.
type ExtensionFactory func(ctx context.Context, node *cluster.Node, cfg json.RawMessage) (Extension, error)

var (
	extMu      sync.Mutex // guards extensions
	extensions = map[string]ExtensionFactory{}
)

// RegisterExtension makes an extension available to server agents under
// name (ServerConfig.Extension). Call it from TestMain before
// MaybeRunAgent, so the agent (the same test binary) knows it too.
func RegisterExtension(name string, f ExtensionFactory) {
	extMu.Lock()
	defer extMu.Unlock()
	extensions[name] = f
}

func startExtension(ctx context.Context, node *cluster.Node, name string, cfg json.RawMessage) (Extension, error) {
	extMu.Lock()
	f := extensions[name]
	extMu.Unlock()
	if f == nil {
		return nil, fmt.Errorf("tunneltest: no extension %q registered in this test binary", name)
	}
	return f(ctx, node, cfg)
}
