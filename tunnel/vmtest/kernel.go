package vmtest

import (
	"debug/elf"
	"errors"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"sort"
	"strings"
)

// ErrUnavailable is returned when something the machine needs (QEMU,
// busybox, the kernel package) is missing; its message says what to install.
var ErrUnavailable = errors.New("vmtest: unavailable")

// KernelPackagePattern matches the names of the Debian kernel packages the
// harness uses: the cloud flavour is small and ships wireguard.ko.
var KernelPackagePattern = regexp.MustCompile(`^linux-image-6\.1\.0-([0-9]+)-cloud-amd64$`)

// Kernel is an unpacked Debian kernel package.
type Kernel struct {
	// Release is the kernel release, as uname -r prints it.
	Release string
	// Image is the path of the bootable kernel (vmlinuz).
	Image string
	// ModuleDir is lib/modules/<Release> of the unpacked package.
	ModuleDir string

	modules map[string]string // module name -> path of its .ko
}

// DefaultCacheDir is where downloaded and unpacked kernel packages are
// kept between runs.
const DefaultCacheDir = "/var/cache/ferry-vmtest"

// FindKernel returns the newest kernel package unpacked in cacheDir. When
// none is, and fetch is true, it picks the newest exactly named package
// that apt-cache lists, downloads it with apt-get download (one package by
// its exact name, never a pattern) and unpacks it with dpkg -x.
func FindKernel(cacheDir string, fetch bool) (*Kernel, error) {
	debs, _ := filepath.Glob(filepath.Join(cacheDir, "linux-image-*-cloud-amd64_*.deb"))
	if len(debs) == 0 {
		if !fetch {
			return nil, fmt.Errorf("%w: no linux-image-6.1.0-NN-cloud-amd64 package in %s", ErrUnavailable, cacheDir)
		}
		name, err := newestKernelPackage()
		if err != nil {
			return nil, err
		}
		if err := os.MkdirAll(cacheDir, 0o755); err != nil {
			return nil, fmt.Errorf("creating %s: %w", cacheDir, err)
		}
		cmd := exec.Command("apt-get", "download", name)
		cmd.Dir = cacheDir
		if out, err := cmd.CombinedOutput(); err != nil {
			return nil, fmt.Errorf("%w: apt-get download %s: %v: %s", ErrUnavailable, name, err, out)
		}
		if debs, _ = filepath.Glob(filepath.Join(cacheDir, name+"_*.deb")); len(debs) == 0 {
			return nil, fmt.Errorf("%w: apt-get download %s left no package in %s", ErrUnavailable, name, cacheDir)
		}
	}
	sort.Slice(debs, func(i, j int) bool { return abiOf(debs[i]) < abiOf(debs[j]) })
	deb := debs[len(debs)-1]
	root := strings.TrimSuffix(deb, ".deb")
	if _, err := os.Stat(filepath.Join(root, "lib", "modules")); err != nil {
		tmp := root + ".tmp"
		os.RemoveAll(tmp)
		if out, err := exec.Command("dpkg", "-x", deb, tmp).CombinedOutput(); err != nil {
			return nil, fmt.Errorf("%w: dpkg -x %s: %v: %s", ErrUnavailable, deb, err, out)
		}
		if err := os.Rename(tmp, root); err != nil {
			return nil, fmt.Errorf("unpacking %s: %w", deb, err)
		}
	}
	return openKernel(root)
}

// abiOf returns the ABI number NN of a package file name, for sorting.
func abiOf(deb string) int {
	var n int
	fmt.Sscanf(strings.TrimPrefix(filepath.Base(deb), "linux-image-6.1.0-"), "%d", &n)
	return n
}

// newestKernelPackage asks apt-cache for the cloud kernel packages and
// returns the exact name with the highest ABI number.
func newestKernelPackage() (string, error) {
	out, err := exec.Command("apt-cache", "search", "--names-only", `^linux-image-6\.1\.0-[0-9]+-cloud-amd64$`).Output()
	if err != nil {
		return "", fmt.Errorf("%w: apt-cache search: %v", ErrUnavailable, err)
	}
	best, bestN := "", -1
	for _, line := range strings.Split(string(out), "\n") {
		name, _, _ := strings.Cut(line, " ")
		if m := KernelPackagePattern.FindStringSubmatch(name); m != nil {
			var n int
			fmt.Sscan(m[1], &n)
			if n > bestN {
				best, bestN = name, n
			}
		}
	}
	if best == "" {
		return "", fmt.Errorf("%w: apt-cache lists no linux-image-6.1.0-NN-cloud-amd64 (is the Debian 12 archive configured?)", ErrUnavailable)
	}
	return best, nil
}

func openKernel(root string) (*Kernel, error) {
	dirs, _ := filepath.Glob(filepath.Join(root, "lib", "modules", "*"))
	if len(dirs) != 1 {
		return nil, fmt.Errorf("%w: %s holds %d module trees, want 1", ErrUnavailable, root, len(dirs))
	}
	k := &Kernel{Release: filepath.Base(dirs[0]), ModuleDir: dirs[0], modules: map[string]string{}}
	k.Image = filepath.Join(root, "boot", "vmlinuz-"+k.Release)
	if _, err := os.Stat(k.Image); err != nil {
		return nil, fmt.Errorf("%w: %v", ErrUnavailable, err)
	}
	err := filepath.WalkDir(k.ModuleDir, func(p string, d os.DirEntry, err error) error {
		if err == nil && strings.HasSuffix(p, ".ko") {
			k.modules[moduleName(strings.TrimSuffix(filepath.Base(p), ".ko"))] = p
		}
		return err
	})
	if err != nil {
		return nil, fmt.Errorf("listing modules of %s: %w", k.Release, err)
	}
	return k, nil
}

// moduleName normalises a module name as the kernel does ('-' is '_').
func moduleName(s string) string { return strings.ReplaceAll(s, "-", "_") }

// LoadOrder returns the paths of the named modules and of everything they
// depend on, dependencies first. Modules built into the kernel are left out.
func (k *Kernel) LoadOrder(names ...string) ([]string, error) {
	builtin, _ := os.ReadFile(filepath.Join(k.ModuleDir, "modules.builtin"))
	isBuiltin := map[string]bool{}
	for _, l := range strings.Split(string(builtin), "\n") {
		isBuiltin[moduleName(strings.TrimSuffix(filepath.Base(l), ".ko"))] = true
	}
	var order []string
	state := map[string]int{} // 1 visiting, 2 done
	var visit func(name string) error
	visit = func(name string) error {
		name = moduleName(name)
		switch state[name] {
		case 1:
			return fmt.Errorf("vmtest: module dependency cycle at %s", name)
		case 2:
			return nil
		}
		path, ok := k.modules[name]
		if !ok {
			if isBuiltin[name] {
				state[name] = 2
				return nil
			}
			return fmt.Errorf("vmtest: kernel %s has no module %s", k.Release, name)
		}
		state[name] = 1
		deps, err := moduleDepends(path)
		if err != nil {
			return err
		}
		for _, d := range deps {
			if err := visit(d); err != nil {
				return err
			}
		}
		state[name] = 2
		order = append(order, path)
		return nil
	}
	for _, n := range names {
		if err := visit(n); err != nil {
			return nil, err
		}
	}
	return order, nil
}

// moduleDepends reads the depends= entry of a module's .modinfo section.
func moduleDepends(path string) ([]string, error) {
	f, err := elf.Open(path)
	if err != nil {
		return nil, fmt.Errorf("reading module %s: %w", path, err)
	}
	defer f.Close()
	s := f.Section(".modinfo")
	if s == nil {
		return nil, nil
	}
	data, err := s.Data()
	if err != nil {
		return nil, fmt.Errorf("reading .modinfo of %s: %w", path, err)
	}
	for _, kv := range strings.Split(string(data), "\x00") {
		if v, ok := strings.CutPrefix(kv, "depends="); ok && v != "" {
			return strings.Split(v, ","), nil
		}
	}
	return nil, nil
}
