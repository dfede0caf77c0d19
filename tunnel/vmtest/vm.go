package vmtest

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"syscall"
	"time"
)

// Config is one run of a command in a fresh machine.
type Config struct {
	// Kernel is the kernel to boot (FindKernel).
	Kernel *Kernel
	// Modules are loaded (insmod, dependencies first) before Command runs.
	Modules []string
	// Tools are host commands (names on PATH or absolute paths) copied to
	// /usr/bin in the guest with their shared libraries, and linked from
	// /bin.
	Tools []string
	// Files maps guest paths to host files copied there (executable).
	Files map[string]string
	// Command runs in /tmp of the guest as root with Env (through busybox
	// sh, whose applets win over PATH: name host tools by absolute path in
	// shell commands); its standard
	// output and error are the Result's Output.
	Command []string
	// Env holds extra KEY=value settings for Command.
	Env []string
	// MemoryMiB is the guest's memory; default 2048.
	MemoryMiB int
	// CPUs is the number of virtual CPUs; default 2.
	CPUs int
	// Timeout bounds the whole run, boot included; default 10 minutes.
	Timeout time.Duration
	// WorkDir holds the initramfs and the serial logs; default a new
	// temporary directory that Run removes.
	WorkDir string
}

// Validate reports whether the configuration can run.
func (c *Config) Validate() error {
	if c.Kernel == nil {
		return errors.New("vmtest: Config.Kernel is required")
	}
	if len(c.Command) == 0 {
		return errors.New("vmtest: Config.Command is required")
	}
	if c.MemoryMiB < 0 || c.CPUs < 0 || c.Timeout < 0 {
		return errors.New("vmtest: Config.MemoryMiB, CPUs and Timeout must not be negative")
	}
	return nil
}

// Result is what a run left.
type Result struct {
	// Output is what Command wrote (standard output and error).
	Output string
	// ExitCode is Command's exit status.
	ExitCode int
	// Console is the kernel's console (boot messages, the init's errors).
	Console string
	// Boot is the guest's uptime when Command started: the kernel's boot
	// and the loading of Modules (QEMU's own start-up is not in it).
	Boot time.Duration
	// Elapsed is the whole run's wall time.
	Elapsed time.Duration
}

// ErrNoExit is returned when the machine ended without reporting the
// command's exit status (a crash, a panic, the timeout).
var ErrNoExit = errors.New("vmtest: machine ended without an exit status")

// Requirements returns nil when this host can run machines, or an error
// wrapping ErrUnavailable that says what to install.
func Requirements() error {
	for _, c := range []struct{ cmd, pkg string }{
		{"qemu-system-x86_64", "qemu-system-x86"},
		{"busybox", "busybox-static"},
		{"ldd", "libc-bin"},
	} {
		if _, err := exec.LookPath(c.cmd); err != nil {
			return fmt.Errorf("%w: needs %s (apt-get install %s)", ErrUnavailable, c.cmd, c.pkg)
		}
	}
	return nil
}

const (
	exitMarker  = "VMTEST-EXIT "
	startMarker = "VMTEST-START"
)

// initScript is the guest's /init: mount the kernel file systems, load
// the modules, run the command with its output on the second serial port,
// report its status and reboot (which ends QEMU under -no-reboot).
const initScript = `#!/bin/sh
export PATH=/usr/sbin:/usr/bin:/sbin:/bin
mount -t proc proc /proc
mount -t sysfs sys /sys
mount -t devtmpfs dev /dev
mount -t tmpfs -o mode=1777 tmp /tmp
mount -t tmpfs run /run
mkdir -p /dev/pts /dev/shm /run/netns
mount -t devpts devpts /dev/pts
ln -s /proc/self/fd /dev/fd
ln -s /proc/self/fd/0 /dev/stdin
ln -s /proc/self/fd/1 /dev/stdout
ln -s /proc/self/fd/2 /dev/stderr
mount -t tmpfs shm /dev/shm
mount --make-rshared /
ip link set lo up
while read m; do
	insmod "$m" || echo "vmtest: insmod $m failed" >/dev/ttyS0
done </etc/vmtest/modules
exec 3>/dev/ttyS1
echo "` + startMarker + ` $(cut -d' ' -f1 /proc/uptime)" >&3
cd /tmp
. /etc/vmtest/env
/bin/sh /etc/vmtest/command >&3 2>&3
echo "` + exitMarker + `$?" >&3
sync
reboot -f
`

// Run boots a machine, runs cfg.Command in it and returns what it left.
// A non-zero exit status is a Result, not an error. Machines run one at a
// time on a host: Run first waits, for as long as ctx allows, until no
// other process runs one; cfg.Timeout counts from then.
func Run(ctx context.Context, cfg Config) (*Result, error) {
	if err := cfg.Validate(); err != nil {
		return nil, err
	}
	if err := Requirements(); err != nil {
		return nil, err
	}
	if cfg.MemoryMiB == 0 {
		cfg.MemoryMiB = 2048
	}
	if cfg.CPUs == 0 {
		cfg.CPUs = 2
	}
	if cfg.Timeout == 0 {
		cfg.Timeout = 10 * time.Minute
	}
	if cfg.WorkDir == "" {
		dir, err := os.MkdirTemp("", "vmtest-")
		if err != nil {
			return nil, fmt.Errorf("creating work directory: %w", err)
		}
		defer os.RemoveAll(dir)
		cfg.WorkDir = dir
	}
	unlock, err := lockMachine(ctx)
	if err != nil {
		return nil, err
	}
	defer unlock()
	initrd := filepath.Join(cfg.WorkDir, "initramfs.cpio")
	if err := buildInitramfs(&cfg, initrd); err != nil {
		return nil, err
	}
	console := filepath.Join(cfg.WorkDir, "console.log")
	output := filepath.Join(cfg.WorkDir, "output.log")
	ctx, cancel := context.WithTimeout(ctx, cfg.Timeout)
	defer cancel()
	start := time.Now()
	cmd := exec.CommandContext(ctx, "qemu-system-x86_64",
		"-machine", "q35", "-accel", "tcg,thread=multi", "-cpu", "max",
		"-smp", strconv.Itoa(cfg.CPUs), "-m", strconv.Itoa(cfg.MemoryMiB),
		"-kernel", cfg.Kernel.Image, "-initrd", initrd,
		"-append", "console=ttyS0 panic=-1 quiet loglevel=4 tsc=reliable",
		"-nographic", "-no-reboot", "-nic", "none", "-monitor", "none",
		"-serial", "file:"+console, "-serial", "file:"+output,
	)
	var stderr bytes.Buffer
	cmd.Stdout, cmd.Stderr = &stderr, &stderr
	runErr := cmd.Run()
	res := &Result{Elapsed: time.Since(start)}
	con, _ := os.ReadFile(console)
	res.Console = strings.ReplaceAll(string(con), "\r", "")
	out, _ := os.ReadFile(output)
	text := strings.ReplaceAll(string(out), "\r", "")
	// "VMTEST-START <uptime in seconds>\n" precedes the command's output.
	if i := strings.Index(text, startMarker+" "); i >= 0 {
		line, rest, _ := strings.Cut(text[i+len(startMarker)+1:], "\n")
		if up, err := strconv.ParseFloat(strings.TrimSpace(line), 64); err == nil {
			res.Boot = time.Duration(up * float64(time.Second))
		}
		text = rest
	}
	i := strings.LastIndex(text, exitMarker)
	if i < 0 {
		res.Output = text
		if ctx.Err() != nil {
			return res, fmt.Errorf("%w: timed out after %s", ErrNoExit, cfg.Timeout)
		}
		return res, fmt.Errorf("%w: qemu: %v: %s", ErrNoExit, runErr, stderr.String())
	}
	res.Output = text[:i]
	fmt.Sscan(text[i+len(exitMarker):], &res.ExitCode)
	return res, nil
}

// machineLock is the file whose lock admits one machine at a time on a
// host: two TCG machines on the same few cores would each run at half
// speed, and the suites' deadlines are set for one.
var machineLock = filepath.Join(os.TempDir(), "ferry-vmtest.lock")

// lockMachine waits, until ctx ends, for this process to hold
// machineLock, and returns its release.
func lockMachine(ctx context.Context) (func(), error) {
	f, err := os.OpenFile(machineLock, os.O_CREATE|os.O_RDWR, 0o600)
	if err != nil {
		return nil, fmt.Errorf("opening %s: %w", machineLock, err)
	}
	tick := time.NewTicker(500 * time.Millisecond)
	defer tick.Stop()
	for {
		err := syscall.Flock(int(f.Fd()), syscall.LOCK_EX|syscall.LOCK_NB)
		if err == nil {
			return func() { f.Close() }, nil
		}
		if !errors.Is(err, syscall.EWOULDBLOCK) {
			f.Close()
			return nil, fmt.Errorf("locking %s: %w", machineLock, err)
		}
		select {
		case <-ctx.Done():
			f.Close()
			return nil, fmt.Errorf("waiting for another machine to end (%s): %w", machineLock, ctx.Err())
		case <-tick.C:
		}
	}
}

// buildInitramfs writes the guest's root file system to path.
func buildInitramfs(cfg *Config, path string) error {
	a := newArchive()
	bb, err := exec.LookPath("busybox")
	if err != nil {
		return fmt.Errorf("%w: needs busybox (apt-get install busybox-static)", ErrUnavailable)
	}
	if libs, _ := sharedLibraries(bb); len(libs) > 0 {
		return fmt.Errorf("%w: %s is not static (apt-get install busybox-static)", ErrUnavailable, bb)
	}
	a.addFile("/bin/busybox", bb, 0o755)
	for _, app := range []string{"sh", "mount", "mkdir", "insmod", "reboot", "sync", "cat", "echo", "sleep",
		"ls", "ps", "kill", "rm", "cp", "mv", "ln", "sed", "grep", "awk", "stat", "readlink", "mktemp", "printf",
		"tr", "head", "tail", "wc", "sort", "uniq", "cut", "id", "env", "true", "false", "test", "[", "chmod",
		"touch", "basename", "dirname", "date", "uname", "umount", "dmesg", "sysctl", "nsenter", "ip", "ping"} {
		a.addSymlink("/bin/"+app, "busybox")
	}
	a.addData("/init", []byte(initScript), 0o755)
	for _, d := range []string{"/proc", "/sys", "/dev", "/tmp", "/run", "/etc/wireguard", "/root"} {
		a.addDir(d)
	}
	a.addSymlink("/var/run", "/run")
	a.addData("/etc/passwd", []byte("root:x:0:0:root:/root:/bin/sh\n"), 0o644)
	a.addData("/etc/group", []byte("root:x:0:\n"), 0o644)
	a.addData("/etc/hosts", []byte("127.0.0.1 localhost\n"), 0o644)
	a.addData("/etc/nsswitch.conf", []byte("hosts: files\n"), 0o644)

	mods, err := cfg.Kernel.LoadOrder(cfg.Modules...)
	if err != nil {
		return err
	}
	var list strings.Builder
	for _, m := range mods {
		rel, _ := filepath.Rel(cfg.Kernel.ModuleDir, m)
		g := "/lib/modules/" + cfg.Kernel.Release + "/" + filepath.ToSlash(rel)
		a.addFile(g, m, 0o644)
		fmt.Fprintln(&list, g)
	}
	a.addData("/etc/vmtest/modules", []byte(list.String()), 0o644)

	for _, tool := range cfg.Tools {
		src, err := exec.LookPath(tool)
		if err != nil {
			return fmt.Errorf("%w: needs %s on the host: %v", ErrUnavailable, tool, err)
		}
		name := filepath.Base(tool)
		if err := a.addProgram("/usr/bin/"+name, src); err != nil {
			return err
		}
		// Also in /bin, for scripts' #! lines (#!/bin/bash): the host's
		// tool replaces busybox's applet there.
		a.addSymlink("/bin/"+name, "/usr/bin/"+name)
	}
	for dst, src := range cfg.Files {
		if err := a.addProgram(dst, src); err != nil {
			return err
		}
	}
	var env strings.Builder
	for _, kv := range cfg.Env {
		k, v, ok := strings.Cut(kv, "=")
		if !ok {
			return fmt.Errorf("vmtest: Env entry %q is not KEY=value", kv)
		}
		fmt.Fprintf(&env, "export %s=%s\n", k, shellQuote(v))
	}
	a.addData("/etc/vmtest/env", []byte(env.String()), 0o644)
	var command strings.Builder
	for i, arg := range cfg.Command {
		if i > 0 {
			command.WriteByte(' ')
		}
		command.WriteString(shellQuote(arg))
	}
	command.WriteByte('\n')
	a.addData("/etc/vmtest/command", []byte(command.String()), 0o644)

	f, err := os.Create(path)
	if err != nil {
		return fmt.Errorf("creating initramfs: %w", err)
	}
	if err := a.write(f); err != nil {
		f.Close()
		return err
	}
	if err := f.Close(); err != nil {
		return fmt.Errorf("writing initramfs: %w", err)
	}
	return nil
}

func shellQuote(s string) string {
	return "'" + strings.ReplaceAll(s, "'", `'\''`) + "'"
}
