package cluster_test

import (
	"context"
	"errors"
	"io"
	"strings"
	"testing"
	"time"

	"github.com/ferryvpn/ferry/cluster"
	"github.com/ferryvpn/ferry/cluster/clustertest"
)

// TestServiceCall: a member calls a service of another member and reads
// its streamed answer; without an administrator's proof it is refused
// before the handler runs; hanging up ends the handler on the other node.
func TestServiceCall(t *testing.T) {
	ev := &events{}
	c := clustertest.Start(t, 3, clustertest.Options{Fast: true, Tune: func(cfg *cluster.Config) { cfg.OnPeerEvent = ev.add }})
	defer c.Close()
	c.WaitAllReady(10 * time.Second)
	ended := make(chan error, 1)
	ran := make(chan cluster.ServiceRequest, 4)
	c.Node(2).HandleService("echo", func(ctx context.Context, req cluster.ServiceRequest, w io.Writer) error {
		ran <- req
		if string(req.Payload) == "forever" {
			w.Write([]byte("started"))
			<-ctx.Done()
			ended <- ctx.Err()
			return ctx.Err()
		}
		if string(req.Payload) == "fail" {
			w.Write([]byte("partial"))
			return errors.New("it broke")
		}
		for range 3 {
			if _, err := w.Write([]byte(strings.ToUpper(string(req.Payload)))); err != nil {
				return err
			}
		}
		return nil
	})
	ctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
	defer cancel()

	t.Run("streams the answer, with the proof's actor", func(t *testing.T) {
		rc, err := c.Node(0).CallService(clustertest.AsAdmin(ctx), c.ID(2), "echo", []byte("ab"))
		if err != nil {
			t.Fatal(err)
		}
		defer rc.Close()
		b, err := io.ReadAll(rc)
		if err != nil || string(b) != "ABABAB" {
			t.Fatalf("read %q, %v", b, err)
		}
		req := <-ran
		if req.Peer != c.ID(0) || req.Actor != "test-admin" {
			t.Fatalf("handler saw peer %q actor %q", req.Peer, req.Actor)
		}
	})
	t.Run("a handler's error follows its output", func(t *testing.T) {
		rc, err := c.Node(0).CallService(clustertest.AsAdmin(ctx), c.ID(2), "echo", []byte("fail"))
		if err != nil {
			t.Fatal(err)
		}
		defer rc.Close()
		b, err := io.ReadAll(rc)
		<-ran
		if string(b) != "partial" || err == nil || !strings.Contains(err.Error(), "it broke") {
			t.Fatalf("read %q, %v", b, err)
		}
	})
	t.Run("refused without an administrator's proof", func(t *testing.T) {
		_, err := c.Node(0).CallService(ctx, c.ID(2), "echo", []byte("ab"))
		if !errors.Is(err, cluster.ErrForbidden) {
			t.Fatalf("err %v, want ErrForbidden", err)
		}
		select {
		case <-ran:
			t.Fatal("the handler ran for a call without proof")
		default:
		}
		if rs := ev.refused(c.ID(0), "service"); len(rs) == 0 || rs[0].Target != "echo" {
			t.Fatal("the refusal was not reported as a peer event")
		}
	})
	t.Run("unknown service", func(t *testing.T) {
		_, err := c.Node(0).CallService(clustertest.AsAdmin(ctx), c.ID(1), "echo", nil)
		if !errors.Is(err, cluster.ErrInvalid) {
			t.Fatalf("err %v, want ErrInvalid", err)
		}
	})
	t.Run("hanging up ends the handler", func(t *testing.T) {
		rc, err := c.Node(1).CallService(clustertest.AsAdmin(ctx), c.ID(2), "echo", []byte("forever"))
		if err != nil {
			t.Fatal(err)
		}
		buf := make([]byte, 7)
		if _, err := io.ReadFull(rc, buf); err != nil {
			t.Fatal(err)
		}
		<-ran
		rc.Close()
		select {
		case <-ended:
		case <-ctx.Done():
			t.Fatal("the handler still runs after the caller hung up")
		}
	})
}
