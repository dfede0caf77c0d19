//go:build linux

package main

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"time"

	"golang.zx2c4.com/wireguard/conn"
	"golang.zx2c4.com/wireguard/device"
	"golang.zx2c4.com/wireguard/ipc"
	"golang.zx2c4.com/wireguard/tun"
	"golang.zx2c4.com/wireguard/wgctrl"
)

// runEmbedded runs the tunnel in this process until ctx ends: wireguard-go
// on a TUN device with its UAPI socket (so that wg and wgctrl see it like
// a kernel device), configured through wgctrl; then the address, routes
// and DNS. Everything is undone on return.
func runEmbedded(ctx context.Context, o embeddedOptions) error {
	ep, err := net.ResolveUDPAddr("udp", o.Conf.Endpoint)
	if err != nil {
		return fmt.Errorf("resolving the server %s: %w", o.Conf.Endpoint, err)
	}
	epAddr := ep.AddrPort().Addr().Unmap()
	var bypass *hostRoute
	if needsBypass(o.Conf.AllowedIPs, epAddr) {
		out, err := exec.CommandContext(ctx, "ip", family(epAddr), "route", "get", epAddr.String()).Output()
		if err != nil {
			return fmt.Errorf("finding the route to the server %s: %w", epAddr, err)
		}
		r, err := parseRouteGet(epAddr, string(out))
		if err != nil {
			return err
		}
		bypass = &r
	}
	cfg, err := deviceConfig(o.Conf, ep)
	if err != nil {
		return err
	}

	// The device and its UAPI socket.
	td, err := tun.CreateTUN(o.Name, o.Conf.MTU)
	if err != nil {
		return fmt.Errorf("creating the TUN device %s: %w", o.Name, err)
	}
	dev := device.NewDevice(td, conn.NewDefaultBind(), &device.Logger{
		Verbosef: device.DiscardLogf,
		Errorf:   func(format string, args ...any) { fmt.Fprintf(o.Log, "wireguard: "+format+"\n", args...) },
	})
	defer dev.Close()
	uf, err := ipc.UAPIOpen(o.Name)
	if err != nil {
		return fmt.Errorf("opening the UAPI socket of %s: %w", o.Name, err)
	}
	uapi, err := ipc.UAPIListen(o.Name, uf)
	if err != nil {
		return fmt.Errorf("listening on the UAPI socket of %s: %w", o.Name, err)
	}
	var wg sync.WaitGroup // the accept loop and its handlers
	defer func() {
		uapi.Close()
		wg.Wait()
	}()
	wg.Add(1)
	go func() {
		defer wg.Done()
		for {
			c, err := uapi.Accept()
			if err != nil {
				return
			}
			wg.Add(1)
			go func() {
				defer wg.Done()
				dev.IpcHandle(c)
			}()
		}
	}()

	// Keys and peer, through wgctrl like any WireGuard device.
	wc, err := wgctrl.New()
	if err != nil {
		return fmt.Errorf("opening wgctrl: %w", err)
	}
	defer wc.Close()
	if err := wc.ConfigureDevice(o.Name, cfg); err != nil {
		return fmt.Errorf("configuring %s: %w", o.Name, err)
	}

	// Address, link and routes; the interface's own go with it.
	up, down := linkPlan(o.Name, o.Conf, bypass)
	defer runCommands(context.WithoutCancel(ctx), down, o.Log)
	for _, argv := range up {
		if err := runCommand(ctx, argv, nil); err != nil {
			return err
		}
	}
	dns := planDNS(o.Name, o.Conf, exec.LookPath)
	if dns.Warning != "" {
		fmt.Fprintf(o.Log, "ferry: %s\n", dns.Warning)
	}
	if len(dns.Up) > 0 {
		// Undone on the way out (ferry down signals this process), also
		// when a later step fails.
		defer runCommands(context.WithoutCancel(ctx), dns.Down, o.Log)
		for _, s := range dns.Up {
			if err := runCommand(ctx, s.Argv, strings.NewReader(s.Stdin)); err != nil {
				return fmt.Errorf("configuring DNS with %s: %w", dns.Via, err)
			}
		}
	}
	if err := writePid(o.RunDir); err != nil {
		return fmt.Errorf("recording the tunnel's pid: %w", err)
	}
	defer func() {
		if err := errors.Join(removePid(o.RunDir), removeCarried(o.RunDir)); err != nil {
			fmt.Fprintf(o.Log, "ferry: %v\n", err)
		}
	}()
	if err := removeCarried(o.RunDir); err != nil { // a killed tunnel's
		return err
	}

	// The dead-path watchdog (failover.go), stopped before wgctrl and the
	// device close.
	if o.FastFailover {
		wctx, stop := context.WithCancel(ctx)
		var ww sync.WaitGroup
		defer ww.Wait()
		defer stop()
		ww.Add(1)
		go func() {
			defer ww.Done()
			watchPath(wctx, wc, o.Name, cfg.Peers[0], o.RunDir, o.Log)
		}()
	}

	o.Ready()
	select {
	case <-ctx.Done():
	case <-dev.Wait():
	}
	return nil
}

// runCommand runs one command, with its output in the error.
func runCommand(ctx context.Context, argv []string, stdin io.Reader) error {
	var out bytes.Buffer
	cmd := exec.CommandContext(ctx, argv[0], argv[1:]...)
	cmd.Stdin, cmd.Stdout, cmd.Stderr = stdin, &out, &out
	if err := cmd.Run(); err != nil {
		return fmt.Errorf("%s: %w: %s", strings.Join(argv, " "), err, strings.TrimSpace(out.String()))
	}
	return nil
}

// runCommands runs clean-up commands, logging what fails and going on.
func runCommands(ctx context.Context, cmds [][]string, log io.Writer) {
	for _, argv := range cmds {
		if err := runCommand(ctx, argv, nil); err != nil {
			fmt.Fprintf(log, "ferry: %v\n", err)
		}
	}
}

// daemonReadyTimeout bounds how long up waits for the detached tunnel.
const daemonReadyTimeout = 30 * time.Second

// startDaemon runs "ferry up --foreground" detached from the terminal,
// logging to the run directory, and waits until it reports the tunnel up
// or fails.
func startDaemon(dir, runDir string, fastFailover bool) error {
	exe, err := os.Executable()
	if err != nil {
		return fmt.Errorf("finding ferry's own binary: %w", err)
	}
	if err := os.MkdirAll(runDir, 0o700); err != nil {
		return err
	}
	logPath := filepath.Join(runDir, fileLog)
	logf, err := os.OpenFile(logPath, os.O_CREATE|os.O_WRONLY|os.O_TRUNC, 0o600)
	if err != nil {
		return err
	}
	defer logf.Close()
	r, w, err := os.Pipe()
	if err != nil {
		return err
	}
	defer r.Close()
	// ExtraFiles[0] is descriptor 3 in the child.
	cmd := exec.Command(exe, daemonArgs(dir, 3, fastFailover)...)
	cmd.Stdout, cmd.Stderr = logf, logf
	cmd.ExtraFiles = []*os.File{w}
	cmd.SysProcAttr = &syscall.SysProcAttr{Setsid: true}
	err = cmd.Start()
	w.Close()
	if err != nil {
		return fmt.Errorf("starting the embedded tunnel: %w", err)
	}
	_ = r.SetReadDeadline(time.Now().Add(daemonReadyTimeout)) // a pipe supports deadlines on Linux
	if err := readReady(r); err != nil {
		_ = cmd.Process.Kill()
		_ = cmd.Wait()
		return fmt.Errorf("starting the embedded tunnel: %w (log: %s)", err, logPath)
	}
	return cmd.Process.Release()
}

// stopDaemon stops the detached tunnel recorded in runDir, if it runs,
// and reports whether it did.
func stopDaemon(runDir string, timeout time.Duration) (bool, error) {
	pid, err := readPid(runDir)
	if errors.Is(err, fs.ErrNotExist) {
		return false, nil
	}
	if err != nil {
		return false, err
	}
	if !daemonAlive(pid) {
		return false, removePid(runDir) // stale: the tunnel died without cleaning up
	}
	if err := syscall.Kill(pid, syscall.SIGTERM); err != nil && !errors.Is(err, syscall.ESRCH) {
		return false, fmt.Errorf("stopping the tunnel (pid %d): %w", pid, err)
	}
	deadline := time.Now().Add(timeout)
	for daemonAlive(pid) {
		if time.Now().After(deadline) {
			return true, fmt.Errorf("the tunnel (pid %d) did not stop within %s", pid, timeout)
		}
		time.Sleep(50 * time.Millisecond)
	}
	return true, removePid(runDir)
}

// tunnelCarried returns the traffic of peers the running embedded
// tunnel's watchdog replaced (failover.go); nothing when no embedded
// tunnel runs.
func tunnelCarried(runDir string) (carried, error) {
	pid, err := readPid(runDir)
	if err != nil || !daemonAlive(pid) {
		return carried{}, nil
	}
	return readCarried(runDir)
}

// daemonAlive reports whether pid is a running foreground "ferry up" (an
// exited one waiting to be reaped has an empty command line).
func daemonAlive(pid int) bool {
	b, err := os.ReadFile(filepath.Join("/proc", strconv.Itoa(pid), "cmdline"))
	return err == nil && isDaemonCmdline(b)
}
