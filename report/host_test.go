package report

import (
	"context"
	"fmt"
	"path/filepath"
	"reflect"
	"testing"
	"time"

	bolt "go.etcd.io/bbolt"
)

// TestAccessReportHosts: flow records admitted by host rules carry the
// granting name (details.host); the access report keeps it per row, apart
// from the same destination reached without a name, and a rebuild from the
// journal gives the same rows.
func TestAccessReportHosts(t *testing.T) {
	j := &memJournal{}
	a := flowEv(t0, "alice", "laptop", "eng", "10.0.4.17", 5432, false, 2, 100, 1000)
	a.Details["host"] = "db.prod.internal"
	b := flowEv(t0.Add(time.Minute), "alice", "laptop", "eng", "10.0.4.17", 5432, false, 1, 10, 10)
	b.Details["host"] = "db.prod.internal"
	c := flowEv(t0, "alice", "laptop", "eng", "10.0.4.17", 5432, false, 1, 5, 5) // reached by a CIDR rule
	d := flowEv(t0, "bob", "phone", "eng", "10.0.4.18", 443, false, 1, 7, 7)
	d.Details["host"] = "api.svc.example.com"
	j.add(t, a, b, c, d)
	path := filepath.Join(t.TempDir(), "r.db")
	r := openRollup(t, j, path)
	if _, err := r.Sync(context.Background()); err != nil {
		t.Fatal(err)
	}
	rows := func() []string {
		rep, err := r.Access(context.Background(), AccessQuery{})
		if err != nil {
			t.Fatal(err)
		}
		var got []string
		for _, row := range rep.Rows {
			got = append(got, fmt.Sprintf("%s %s:%d host=%q flows=%d out=%d", row.User, row.Dst, row.Port, row.Host, row.Flows, row.BytesOut))
		}
		return got
	}
	want := []string{`alice 10.0.4.17:5432 host="" flows=1 out=5`, `alice 10.0.4.17:5432 host="db.prod.internal" flows=3 out=110`,
		`bob 10.0.4.18:443 host="api.svc.example.com" flows=1 out=7`}
	if got := rows(); !reflect.DeepEqual(got, want) {
		t.Errorf("rows:\n got %q\nwant %q", got, want)
	}
	if err := r.Rebuild(context.Background()); err != nil {
		t.Fatal(err)
	}
	if got := rows(); !reflect.DeepEqual(got, want) {
		t.Errorf("rows after a rebuild:\n got %q\nwant %q", got, want)
	}

	// A file of the previous format (its keys have no host) is rebuilt on
	// open, so its rows gain the hosts.
	r.Close()
	db, err := bolt.Open(path, 0o600, nil)
	if err != nil {
		t.Fatal(err)
	}
	if err := db.Update(func(tx *bolt.Tx) error { return tx.Bucket(bucketMeta).Put(metaFormat, []byte("2")) }); err != nil {
		t.Fatal(err)
	}
	db.Close()
	r = openRollup(t, j, path)
	if c, _ := r.readCursor(); c.seq != 0 {
		t.Fatalf("a format-2 file was kept (cursor %d)", c.seq)
	}
	if _, err := r.Sync(context.Background()); err != nil {
		t.Fatal(err)
	}
	if got := rows(); !reflect.DeepEqual(got, want) {
		t.Errorf("rows after reopening an old-format file:\n got %q\nwant %q", got, want)
	}
}
