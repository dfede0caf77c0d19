package vmtest

import (
	"context"
	"errors"
	"path/filepath"
	"testing"
	"time"
)

// TestLockMachine: a second machine waits while one runs, gives up when
// its context ends, and starts once the first has released the lock.
func TestLockMachine(t *testing.T) {
	old := machineLock
	machineLock = filepath.Join(t.TempDir(), "vm.lock")
	t.Cleanup(func() { machineLock = old })

	unlock, err := lockMachine(context.Background())
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithTimeout(context.Background(), 700*time.Millisecond)
	defer cancel()
	if _, err := lockMachine(ctx); !errors.Is(err, context.DeadlineExceeded) {
		t.Fatalf("second machine while the first runs: %v, want it to wait until its context ends", err)
	}
	got := make(chan error, 1)
	go func() {
		u, err := lockMachine(context.Background())
		if err == nil {
			u()
		}
		got <- err
	}()
	unlock()
	if err := <-got; err != nil {
		t.Fatalf("second machine after the first ended: %v", err)
	}
}
