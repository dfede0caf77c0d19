package vmtest

import (
	"errors"
	"os"
	"testing"
)

// Require returns the kernel to boot, or skips t with the reason the
// machine cannot run here: not root (the kernel is fetched into a system
// cache), QEMU or busybox missing, no kernel package to be had.
func Require(t testing.TB) *Kernel {
	t.Helper()
	if os.Geteuid() != 0 {
		t.Skip("vmtest: needs root (to fetch the kernel package into " + DefaultCacheDir + ")")
	}
	if err := Requirements(); err != nil {
		t.Skipf("kernel WireGuard suite skipped: %v", err)
	}
	k, err := FindKernel(DefaultCacheDir, true)
	if errors.Is(err, ErrUnavailable) {
		t.Skipf("kernel WireGuard suite skipped: %v", err)
	}
	if err != nil {
		t.Fatal(err)
	}
	return k
}
