package vmtest

import (
	"bufio"
	"fmt"
	"io"
	"os"
	"os/exec"
	"path"
	"path/filepath"
	"sort"
	"strings"
)

// archive is an initramfs being assembled: guest path -> what goes there.
type archive struct {
	files map[string]entry
}

type entry struct {
	mode   uint32 // file type and permissions, as in st_mode
	src    string // host file for regular files
	data   []byte // contents when src is empty
	target string // symlinks
}

const (
	modeDir     = 0o040000
	modeFile    = 0o100000
	modeSymlink = 0o120000
)

func newArchive() *archive { return &archive{files: map[string]entry{}} }

func (a *archive) mkdirs(p string) {
	for d := path.Dir(p); d != "/" && d != "."; d = path.Dir(d) {
		if _, ok := a.files[d]; !ok {
			a.files[d] = entry{mode: modeDir | 0o755}
		}
	}
}

// addFile copies the host file src to the guest path dst.
func (a *archive) addFile(dst, src string, perm uint32) {
	a.mkdirs(dst)
	a.files[dst] = entry{mode: modeFile | perm, src: src}
}

// addData writes data to the guest path dst.
func (a *archive) addData(dst string, data []byte, perm uint32) {
	a.mkdirs(dst)
	a.files[dst] = entry{mode: modeFile | perm, data: data}
}

func (a *archive) addSymlink(dst, target string) {
	a.mkdirs(dst)
	a.files[dst] = entry{mode: modeSymlink | 0o777, target: target}
}

func (a *archive) addDir(dst string) {
	a.mkdirs(dst + "/x")
}

// addProgram copies the host executable src to dst in the guest along with
// the shared libraries and the loader ldd lists for it; a script's
// interpreter is the caller's to add.
func (a *archive) addProgram(dst, src string) error {
	real, err := filepath.EvalSymlinks(src)
	if err != nil {
		return fmt.Errorf("finding %s: %w", src, err)
	}
	a.addFile(dst, real, 0o755)
	libs, err := sharedLibraries(real)
	if err != nil {
		return err
	}
	for _, l := range libs {
		lr, err := filepath.EvalSymlinks(l)
		if err != nil {
			return fmt.Errorf("finding %s (for %s): %w", l, src, err)
		}
		a.addFile(l, lr, 0o755)
	}
	return nil
}

// sharedLibraries returns the absolute paths ldd lists for an executable;
// none for static executables and scripts.
func sharedLibraries(p string) ([]string, error) {
	f, err := os.Open(p)
	if err != nil {
		return nil, err
	}
	magic := make([]byte, 4)
	_, err = io.ReadFull(f, magic)
	f.Close()
	if err != nil || string(magic) != "\x7fELF" {
		return nil, nil
	}
	out, err := exec.Command("ldd", p).Output()
	if err != nil {
		// "not a dynamic executable": static, nothing to add.
		return nil, nil
	}
	var libs []string
	sc := bufio.NewScanner(strings.NewReader(string(out)))
	for sc.Scan() {
		for _, f := range strings.Fields(sc.Text()) {
			if strings.HasPrefix(f, "/") {
				libs = append(libs, f)
				break
			}
		}
	}
	return libs, nil
}

// write writes the archive as a newc cpio stream, parents before children.
func (a *archive) write(w io.Writer) error {
	names := make([]string, 0, len(a.files))
	for n := range a.files {
		names = append(names, n)
	}
	sort.Strings(names)
	bw := bufio.NewWriterSize(w, 1<<20)
	ino := uint32(1)
	for _, n := range names {
		e := a.files[n]
		var body io.Reader
		var size int64
		switch e.mode &^ 0o7777 {
		case modeSymlink:
			body, size = strings.NewReader(e.target), int64(len(e.target))
		case modeFile:
			if e.src == "" {
				body, size = strings.NewReader(string(e.data)), int64(len(e.data))
				break
			}
			f, err := os.Open(e.src)
			if err != nil {
				return fmt.Errorf("adding %s: %w", e.src, err)
			}
			st, err := f.Stat()
			if err != nil {
				f.Close()
				return fmt.Errorf("adding %s: %w", e.src, err)
			}
			body, size = f, st.Size()
		}
		err := writeCPIO(bw, strings.TrimPrefix(n, "/"), ino, e.mode, size, body)
		if c, ok := body.(io.Closer); ok {
			c.Close()
		}
		if err != nil {
			return err
		}
		ino++
	}
	if err := writeCPIO(bw, "TRAILER!!!", 0, 0, 0, nil); err != nil {
		return err
	}
	return bw.Flush()
}

func writeCPIO(w *bufio.Writer, name string, ino, mode uint32, size int64, body io.Reader) error {
	nlink := 1
	if mode&^0o7777 == modeDir {
		nlink = 2
	}
	hdr := fmt.Sprintf("070701%08X%08X%08X%08X%08X%08X%08X%08X%08X%08X%08X%08X%08X",
		ino, mode, 0, 0, nlink, 0, size, 0, 0, 0, 0, len(name)+1, 0)
	w.WriteString(hdr)
	w.WriteString(name)
	w.WriteByte(0)
	pad(w, len(hdr)+len(name)+1)
	if body != nil {
		n, err := io.Copy(w, body)
		if err != nil {
			return fmt.Errorf("writing %s into the initramfs: %w", name, err)
		}
		if n != size {
			return fmt.Errorf("writing %s into the initramfs: size changed", name)
		}
	}
	pad(w, int(size))
	return nil
}

func pad(w *bufio.Writer, n int) {
	for ; n%4 != 0; n++ {
		w.WriteByte(0)
	}
}
