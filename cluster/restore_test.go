package cluster_test

import (
	"bytes"
	"errors"
	"io"
	"testing"
	"time"

	"github.com/ferryvpn/ferry/cluster"
	"github.com/ferryvpn/ferry/cluster/clustertest"
)

// failingReader returns its data, then err.
type failingReader struct {
	r   io.Reader
	err error
}

func (f *failingReader) Read(p []byte) (int, error) {
	n, err := f.r.Read(p)
	if err == io.EOF {
		return n, f.err
	}
	return n, err
}

// A restore sent to a follower is streamed to the leader: every node ends
// with the backup's state. A damaged backup, or an upload that fails
// midway, changes nothing.
func TestRestoreThroughFollower(t *testing.T) {
	src := clustertest.Start(t, 1, clustertest.Options{Fast: true})
	// Enough data for several chunks of the stream.
	big := bytes.Repeat([]byte("x"), 60<<10)
	for i := 0; i < 60; i++ {
		if _, err := src.Node(0).Put(ctxT(t, 10*time.Second), "big/"+string(rune('a'+i%26))+string(rune('a'+i/26)), big); err != nil {
			t.Fatal(err)
		}
	}
	writeSome(t, src.Node(0), "data", 50)
	var backup bytes.Buffer
	if _, err := src.Node(0).Backup(&backup); err != nil {
		t.Fatal(err)
	}
	if backup.Len() < 3<<20 {
		t.Fatalf("backup of %d bytes is too small to span several chunks", backup.Len())
	}
	want := snapshotState(t, src.Node(0))

	dst := clustertest.Start(t, 3, clustertest.Options{Fast: true, WriteTimeout: 10 * time.Second})
	writeSome(t, dst.Node(0), "old", 5)
	dst.WaitConverged(10 * time.Second)
	leader := dst.Leader(5 * time.Second)
	follower := dst.Node((leader + 1) % 3)
	before := snapshotState(t, dst.Node(leader))

	refused := []struct {
		name string
		r    io.Reader
		want error
	}{
		{"truncated", bytes.NewReader(backup.Bytes()[:backup.Len()/2]), cluster.ErrInvalid},
		{"flipped byte", bytes.NewReader(flip(backup.Bytes(), backup.Len()-100)), cluster.ErrInvalid},
		{"not a backup", bytes.NewReader([]byte("hello")), cluster.ErrInvalid},
		{"upload fails midway", &failingReader{r: bytes.NewReader(backup.Bytes()[:backup.Len()-10]), err: io.ErrClosedPipe}, io.ErrClosedPipe},
	}
	for _, d := range refused {
		t.Run(d.name, func(t *testing.T) {
			err := follower.Restore(clustertest.AsAdmin(ctxT(t, 30*time.Second)), d.r)
			if !errors.Is(err, d.want) {
				t.Fatalf("got %v, want %v", err, d.want)
			}
			t.Logf("refused: %v", err)
		})
	}
	dst.WaitConverged(10 * time.Second)
	if err := diffState(before, snapshotState(t, dst.Node(leader))); err != nil {
		t.Fatalf("a refused restore changed state: %v", err)
	}

	if err := follower.Restore(clustertest.AsAdmin(ctxT(t, 30*time.Second)), bytes.NewReader(backup.Bytes())); err != nil {
		t.Fatalf("restore through a follower: %v", err)
	}
	dst.WaitConverged(15 * time.Second)
	for i := 0; i < 3; i++ {
		if err := diffState(want, snapshotState(t, dst.Node(i))); err != nil {
			t.Fatalf("node %s after restore: %v", dst.ID(i), err)
		}
		if _, err := dst.Node(i).VerifyJournal(); err != nil {
			t.Fatal(err)
		}
	}
}
