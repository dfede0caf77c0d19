package tunneltest

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"sync"
	"testing"
	"time"

	"github.com/ferryvpn/ferry/audit"
)

// agentEnv names the agent's config file; a test binary started with it
// set runs an agent instead of tests (see MaybeRunAgent).
const agentEnv = "FERRY_TUNNELTEST_AGENT"

// AgentConfig configures an agent process.
type AgentConfig struct {
	// Socket is the control socket's path.
	Socket string `json:"socket"`
	// Server, when set, runs a cluster node and a gateway.
	Server *ServerConfig `json:"server,omitempty"`
	// Echo lists services to run: "tcp:ADDR:PORT" echoes lines back,
	// "udp:ADDR:PORT" echoes datagrams, "sink:ADDR:PORT" discards.
	Echo []string `json:"echo,omitempty"`
}

// Request is one control command; fields by op.
type Request struct {
	Op    string `json:"op"`
	Key   string `json:"key,omitempty"`
	Value []byte `json:"value,omitempty"`
	ID    string `json:"id,omitempty"`
	Addr  string `json:"addr,omitempty"`
	Proto string `json:"proto,omitempty"`
	// Src binds the local address (to forge a source).
	Src     string        `json:"src,omitempty"`
	Timeout time.Duration `json:"timeout,omitempty"`
	Bytes   int           `json:"bytes,omitempty"`
	Conn    int           `json:"conn,omitempty"`
	WG      *WGClient     `json:"wg,omitempty"`
}

// Response answers a Request.
type Response struct {
	Err    string        `json:"err,omitempty"`
	Rev    uint64        `json:"rev,omitempty"`
	Events []audit.Event `json:"events,omitempty"`
	Text   string        `json:"text,omitempty"`
	Conn   int           `json:"conn,omitempty"`
	// GC answers "gcstats".
	GC *GCStats `json:"gc,omitempty"`
	// LastOK and FirstFail bracket when a held connection stopped working.
	LastOK    time.Time     `json:"last_ok,omitempty"`
	FirstFail time.Time     `json:"first_fail,omitempty"`
	Elapsed   time.Duration `json:"elapsed,omitempty"`
	RSS       int64         `json:"rss,omitempty"`
	// TTL is the smallest TTL of a resolve's answer, in seconds.
	TTL uint32 `json:"ttl,omitempty"`
}

// Agent is a running agent process seen from the test.
type Agent struct {
	Name string
	sock string
	log  string
	proc *os.Process
}

// StartAgent runs the test binary as an agent inside ns and waits until
// it answers.
func StartAgent(t testing.TB, n *Net, ns, name string, cfg AgentConfig) *Agent {
	t.Helper()
	a, err := TryStartAgent(t, n, ns, name, cfg)
	if err != nil {
		t.Fatal(err)
	}
	return a
}

// TryStartAgent is StartAgent returning an error, instead of failing t,
// when the agent exits before it answers (such as a gateway that cannot
// start); the error holds the end of what the agent printed.
func TryStartAgent(t testing.TB, n *Net, ns, name string, cfg AgentConfig) (*Agent, error) {
	t.Helper()
	dir := t.TempDir()
	cfg.Socket = filepath.Join(dir, "ctl.sock")
	path := filepath.Join(dir, "agent.json")
	data, err := json.Marshal(cfg)
	if err != nil {
		return nil, err
	}
	if err := os.WriteFile(path, data, 0o600); err != nil {
		return nil, err
	}
	a := &Agent{Name: name, sock: cfg.Socket, log: filepath.Join(dir, "agent.log")}
	logf, err := os.Create(a.log)
	if err != nil {
		return nil, err
	}
	defer logf.Close()
	cmd := exec.Command("ip", "netns", "exec", ns, os.Args[0], "-test.run=^$")
	cmd.Env = append(os.Environ(), agentEnv+"="+path)
	cmd.Stdout, cmd.Stderr = logf, logf
	if err := cmd.Start(); err != nil {
		return nil, err
	}
	n.Track(cmd.Process)
	a.proc = cmd.Process
	exited := make(chan struct{})
	go func() {
		cmd.Wait()
		close(exited)
	}()
	t.Cleanup(func() {
		// Stop cleanly so the gateway removes its interface, table and
		// UAPI socket; the namespace teardown kills what remains.
		a.Do(Request{Op: "quit"})
		select {
		case <-exited:
		case <-time.After(10 * time.Second):
		}
	})
	t.Cleanup(func() {
		if t.Failed() || os.Getenv("FERRY_TEST_LOG") != "" {
			out, _ := os.ReadFile(a.log)
			if len(out) > 20000 {
				out = out[len(out)-20000:]
			}
			t.Logf("agent %s log:\n%s", name, out)
		}
	})
	deadline := time.Now().Add(60 * time.Second)
	for {
		_, err := a.Do(Request{Op: "ready"})
		if err == nil {
			return a, nil
		}
		select {
		case <-exited:
			out, _ := os.ReadFile(a.log)
			if len(out) > 4000 {
				out = out[len(out)-4000:]
			}
			return nil, fmt.Errorf("agent %s exited before it answered:\n%s", name, out)
		default:
		}
		if time.Now().After(deadline) {
			out, _ := os.ReadFile(a.log)
			return nil, fmt.Errorf("agent %s did not get ready: %v\n%s", name, err, out)
		}
		time.Sleep(50 * time.Millisecond)
	}
}

// Pid returns the agent's process id (its CPU time and memory are the
// gateway's).
func (a *Agent) Pid() int { return a.proc.Pid }

// Kill ends the agent at once (SIGKILL), as a crash would: nothing of
// what it set up is removed.
func (a *Agent) Kill() error {
	if err := a.proc.Kill(); err != nil {
		return fmt.Errorf("killing agent %s: %w", a.Name, err)
	}
	return nil
}

// Do sends one request and waits for its answer; a non-empty Err in the
// answer is returned as an error too.
func (a *Agent) Do(req Request) (Response, error) {
	c, err := net.Dial("unix", a.sock)
	if err != nil {
		return Response{}, err
	}
	defer c.Close()
	if err := json.NewEncoder(c).Encode(req); err != nil {
		return Response{}, err
	}
	var resp Response
	if err := json.NewDecoder(c).Decode(&resp); err != nil {
		return Response{}, fmt.Errorf("agent %s: %s: %w", a.Name, req.Op, err)
	}
	if resp.Err != "" {
		return resp, fmt.Errorf("agent %s: %s: %s", a.Name, req.Op, resp.Err)
	}
	return resp, nil
}

// Must is Do failing the test on error.
func (a *Agent) Must(t testing.TB, req Request) Response {
	t.Helper()
	r, err := a.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	return r
}

// MaybeRunAgent runs an agent and exits if this process was started as
// one; call it first in TestMain.
func MaybeRunAgent() {
	path := os.Getenv(agentEnv)
	if path == "" {
		return
	}
	if err := runAgent(path); err != nil {
		fmt.Fprintln(os.Stderr, "agent:", err)
		os.Exit(1)
	}
	os.Exit(0)
}

type agent struct {
	cfg    AgentConfig
	srv    *server
	client *client
}

func runAgent(path string) error {
	data, err := os.ReadFile(path)
	if err != nil {
		return err
	}
	var a agent
	if err := json.Unmarshal(data, &a.cfg); err != nil {
		return err
	}
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	var wg sync.WaitGroup
	defer wg.Wait()
	defer cancel()
	for _, e := range a.cfg.Echo {
		if err := startEcho(ctx, &wg, e); err != nil {
			return err
		}
	}
	a.client = &client{conns: map[int]net.Conn{}}
	defer a.client.close()
	if a.cfg.Server != nil {
		if a.srv, err = startServer(ctx, &wg, a.cfg.Server); err != nil {
			return err
		}
		defer a.srv.close()
	}
	os.Remove(a.cfg.Socket)
	ln, err := net.Listen("unix", a.cfg.Socket)
	if err != nil {
		return err
	}
	defer ln.Close()
	// The agent lives until its parent kills it or closes stdin's peer;
	// a "quit" request ends it cleanly.
	quit := make(chan struct{})
	var once sync.Once
	go func() {
		<-quit
		ln.Close()
	}()
	for {
		c, err := ln.Accept()
		if err != nil {
			return nil
		}
		wg.Add(1)
		go func() {
			defer wg.Done()
			defer c.Close()
			var req Request
			if err := json.NewDecoder(c).Decode(&req); err != nil {
				return
			}
			resp, err := a.handle(ctx, req)
			if req.Op == "quit" {
				once.Do(func() { close(quit) })
			}
			if err != nil {
				resp.Err = err.Error()
			}
			json.NewEncoder(c).Encode(resp)
		}()
	}
}

func (a *agent) handle(ctx context.Context, req Request) (Response, error) {
	switch req.Op {
	case "ready", "quit":
		return Response{}, nil
	case "rss":
		return Response{RSS: rss()}, nil
	case "gcstats":
		gc := readGCStats()
		return Response{GC: &gc}, nil
	case "allocs":
		// Key: the file to write the allocation profile to.
		return Response{}, writeAllocs(req.Key)
	}
	if a.srv != nil {
		if resp, ok, err := a.srv.handle(ctx, req); ok {
			return resp, err
		}
	}
	if resp, ok, err := a.client.handle(ctx, req); ok {
		return resp, err
	}
	return Response{}, errors.New("unknown op " + req.Op)
}

// rss returns this process's resident set size in bytes.
func rss() int64 {
	data, err := os.ReadFile("/proc/self/statm")
	if err != nil {
		return 0
	}
	var size, res int64
	fmt.Sscan(string(data), &size, &res)
	return res * int64(os.Getpagesize())
}
