package cluster

import (
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"strconv"
	"strings"
)

// ErrDataDirLocked is returned by New when another process holds the data
// directory: two nodes on one directory would destroy each other's state.
// The error names the directory and, when known, the holder's PID.
var ErrDataDirLocked = errors.New("cluster: data directory in use by another process")

// lockFileName is the lock file in the data directory. It holds the PID of
// the process that holds the lock, for the error the next one reports.
const lockFileName = "ferryd.lock"

// dirLock is a held lock on a data directory; release drops it.
type dirLock struct {
	f *os.File
}

// lockDataDir takes the data directory's lock before anything in it is
// read or removed, and fails at once, without waiting, when another
// process holds it.
func lockDataDir(dir string) (*dirLock, error) {
	path := filepath.Join(dir, lockFileName)
	f, err := os.OpenFile(path, os.O_RDWR|os.O_CREATE, 0o600)
	if err != nil {
		return nil, fmt.Errorf("opening lock file: %w", err)
	}
	held, err := tryLock(f)
	if err != nil {
		f.Close()
		return nil, fmt.Errorf("locking %s: %w", path, err)
	}
	if !held {
		b, _ := os.ReadFile(path)
		f.Close()
		holder := "another process"
		if pid, err := strconv.Atoi(strings.TrimSpace(string(b))); err == nil && pid > 0 {
			holder = "process " + strconv.Itoa(pid)
		}
		return nil, fmt.Errorf("%w: %s is held by %s (is ferryd already running on it?)", ErrDataDirLocked, dir, holder)
	}
	err = f.Truncate(0)
	if err == nil {
		_, err = f.WriteAt([]byte(strconv.Itoa(os.Getpid())+"\n"), 0)
	}
	if err != nil {
		f.Close()
		return nil, fmt.Errorf("writing lock file: %w", err)
	}
	return &dirLock{f: f}, nil
}

// release drops the lock. The file stays: removing it would let a third
// process lock a new file while a second still waits on the old one.
func (l *dirLock) release() {
	if l != nil && l.f != nil {
		l.f.Close() // closing the descriptor drops the flock
		l.f = nil
	}
}
