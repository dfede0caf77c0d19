package report

import (
	"bufio"
	"context"
	"os"
	"os/exec"
	"path/filepath"
	"reflect"
	"testing"
	"time"

	"github.com/ferryvpn/ferry/audit"
)

// bigTraffic is a deterministic journal large enough for several
// transactions.
func bigTraffic(t testing.TB) *memJournal {
	j := &memJournal{}
	users := []string{"alice", "bob", "carol", "dave"}
	for i := range 30000 {
		at := t0.Add(time.Duration(i) * time.Minute)
		u := users[i%len(users)]
		j.add(t, flowEv(at, u, "dev-"+u, "eng", "10.0.4.17", 5432+i%3, i%5 == 0, 1, uint64(i), 1))
		if i%100 == 0 {
			j.add(t, audit.Event{ID: "login", Time: at, Type: audit.TypeLogin, Outcome: audit.Success})
		}
	}
	return j
}

// TestRollupKill9: a process killed with SIGKILL while folding leaves a
// rollup that, synced again, equals a rebuild from the journal.
func TestRollupKill9(t *testing.T) {
	if path := os.Getenv("FERRY_REPORT_KILL_CHILD"); path != "" {
		j := &headLimit{memJournal: bigTraffic(t), head: 5000}
		r, err := Open(Config{Path: path, Journal: j})
		if err != nil {
			t.Fatal(err)
		}
		r.Sync(context.Background())
		j.head = 1 << 62
		os.Stdout.WriteString("syncing\n")
		r.Sync(context.Background())
		os.Stdout.WriteString("done\n")
		return
	}
	if testing.Short() {
		t.Skip("runs a child process")
	}
	dir := t.TempDir()
	path := filepath.Join(dir, "killed.db")
	cmd := exec.Command(os.Args[0], "-test.run=^TestRollupKill9$")
	cmd.Env = append(os.Environ(), "FERRY_REPORT_KILL_CHILD="+path)
	out, err := cmd.StdoutPipe()
	if err != nil {
		t.Fatal(err)
	}
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	sc := bufio.NewScanner(out)
	for sc.Scan() && sc.Text() != "syncing" {
	}
	cmd.Process.Kill() // SIGKILL, mid-fold
	cmd.Wait()

	j := bigTraffic(t)
	ctx := context.Background()
	killed := openRollup(t, j, path)
	c, err := killed.readCursor()
	if err != nil {
		t.Fatal(err)
	}
	t.Logf("killed at cursor %d of %d", c.seq, j.Len())
	if c.seq < 5000 {
		t.Errorf("cursor %d: the first transactions were lost", c.seq)
	}
	if _, err := killed.Sync(ctx); err != nil {
		t.Fatal(err)
	}
	full := openRollup(t, j, filepath.Join(dir, "full.db"))
	if err := full.Rebuild(ctx); err != nil {
		t.Fatal(err)
	}
	if a, b := dump(t, killed), dump(t, full); !reflect.DeepEqual(a, b) {
		t.Errorf("rollup after kill -9 (%d keys) differs from a rebuild (%d keys)", len(a), len(b))
	}
}

// headLimit shows a journal up to head.
type headLimit struct {
	*memJournal
	head uint64
}

func (h *headLimit) JournalHead() (uint64, [32]byte, error) {
	seq, hash, err := h.memJournal.JournalHead()
	if seq > h.head {
		recs, _ := h.JournalRange(h.head, h.head, 1)
		return h.head, recs[0].Hash, err
	}
	return seq, hash, err
}
