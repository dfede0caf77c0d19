// Package vmtest runs tests inside a QEMU virtual machine that boots one of
// Debian's own kernels, so the data plane can be tested on kernel WireGuard
// (wireguard.ko) on hosts whose kernel has none.
//
// The kernel comes from a Debian package, downloaded with `apt-get download`
// by its exact name into a cache directory and unpacked with `dpkg -x`,
// never installed on the host. Each run builds an initramfs in Go (a newc
// cpio archive): busybox as /bin/sh and /init, the kernel modules asked for
// with their dependencies (read from each module's .modinfo), host tools
// with the shared libraries ldd lists, and the test binaries. The machine
// boots under TCG (no /dev/kvm needed), runs one command, writes its output
// to the second serial port, which QEMU writes to a host file, and reboots,
// which ends QEMU (-no-reboot).
//
// TCG is slow (several times slower than the host) and shares the host's
// CPUs: it is for functional tests, never for timings.
//
// The package does not decide what runs in the machine; the caller names
// the files, tools, modules and command. For the suites that run a Go test
// binary in the machine (tunnel's TestKernelSuiteVM, threenode's
// TestThreeNodesKernelVM) it has what they share: DataPlaneModules,
// PlainTestBinary (the binary to copy in, rebuilt without -race when the
// host's tests use it), RunTests (run, log, and fail on the guest's
// failures or a test that did not pass) and RequireKernelLink (fail when an
// interface is not kernel WireGuard, i.e. on a silent fallback to the
// embedded device).
package vmtest
