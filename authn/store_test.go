package authn_test

import (
	"bytes"
	"encoding/base32"
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/ferryvpn/ferry/authn"
	"github.com/ferryvpn/ferry/authn/authntest"
	"github.com/ferryvpn/ferry/cluster/clustertest"
	"github.com/ferryvpn/ferry/cluster/seal"
)

// stateEnv is a three-node cluster with an MFA, Sessions and Users on every
// node, sharing one master key, one hand-moved clock and one recorder.
type stateEnv struct {
	t     testing.TB
	c     *clustertest.Cluster
	clock *authntest.Clock
	rec   *authntest.Recorder
	key   seal.Key
	mfa   []*authn.MFA
	sess  []*authn.Sessions
	users []*authn.Users
}

// stateEpoch is where test clocks start: on a TOTP step boundary.
var stateEpoch = time.Date(2030, 1, 2, 3, 4, 0, 0, time.UTC)

func newStateEnv(t testing.TB) *stateEnv {
	t.Helper()
	return newStateEnvWith(t, clustertest.Options{Fast: true})
}

// newStateEnvWith is newStateEnv on a cluster started with opts.
func newStateEnvWith(t testing.TB, opts clustertest.Options) *stateEnv {
	t.Helper()
	key, err := seal.GenerateKey()
	if err != nil {
		t.Fatal(err)
	}
	e := &stateEnv{
		t: t, c: clustertest.Start(t, 3, opts),
		clock: authntest.NewClock(stateEpoch), key: key,
	}
	e.rec = &authntest.Recorder{Now: e.clock.Now}
	for i := 0; i < e.c.Len(); i++ {
		m, err := authn.NewMFA(authn.MFAConfig{Store: e.c.Node(i), Key: key, Now: e.clock.Now, Recorder: e.rec})
		if err != nil {
			t.Fatal(err)
		}
		s, err := authn.NewSessions(authn.SessionConfig{
			Store: e.c.Node(i), Now: e.clock.Now, Recorder: e.rec, AdminGroups: []string{"vpn-admins"},
		})
		if err != nil {
			t.Fatal(err)
		}
		e.mfa = append(e.mfa, m)
		e.sess = append(e.sess, s)
		e.users = append(e.users, authn.NewUsers(e.c.Node(i), e.clock.Now, e.rec))
	}
	return e
}

// enroll enrolls id (begin on node 0, confirm on node 1) and moves the
// clock to the next step, so the confirming code is not the next one asked.
func (e *stateEnv) enroll(id authn.Identity) (uri string, recovery []string) {
	e.t.Helper()
	ctx := e.t.Context()
	enr, err := e.mfa[0].BeginEnroll(ctx, id)
	if err != nil {
		e.t.Fatalf("BeginEnroll(%s): %v", id.UserID, err)
	}
	recovery, err = e.mfa[1].ConfirmEnroll(ctx, id, e.code(enr.URI), authn.Source{Addr: "192.0.2.1"})
	if err != nil {
		e.t.Fatalf("ConfirmEnroll(%s): %v", id.UserID, err)
	}
	e.clock.Advance(30 * time.Second)
	return enr.URI, recovery
}

// code returns the current TOTP code for an enrollment URI.
func (e *stateEnv) code(uri string) string {
	e.t.Helper()
	c, err := authntest.TOTPCode(uri, e.clock.Now())
	if err != nil {
		e.t.Fatal(err)
	}
	return c
}

// wrong returns a well-formed code that is not the current one (nor one
// step either side).
func (e *stateEnv) wrong(uri string) string {
	e.t.Helper()
	ok := map[string]bool{}
	for _, d := range []time.Duration{-30 * time.Second, 0, 30 * time.Second} {
		c, err := authntest.TOTPCode(uri, e.clock.Now().Add(d))
		if err != nil {
			e.t.Fatal(err)
		}
		ok[c] = true
	}
	for _, c := range []string{"000000", "111111", "222222", "333333"} {
		if !ok[c] {
			return c
		}
	}
	e.t.Fatal("no wrong code found")
	return ""
}

var testSrc = authn.Source{Addr: "198.51.100.7", Port: 40000, UserAgent: "ferry/1.0"}

// TestSecretsSealedAtRest enrolls users, then scans every node's raw files
// (the bbolt state file, the Raft log, snapshots) and a backup for the TOTP
// secrets in raw and base32 form, and for the recovery codes: none may
// appear.
func TestSecretsSealedAtRest(t *testing.T) {
	e := newStateEnv(t)
	ctx := t.Context()
	var needles [][]byte
	for i := range 5 {
		uri, recovery := e.enroll(authn.Identity{UserID: fmt.Sprintf("user-%d", i), Email: fmt.Sprintf("u%d@example.com", i)})
		b32, err := authntest.TOTPSecret(uri)
		if err != nil {
			t.Fatal(err)
		}
		raw, err := base32.StdEncoding.WithPadding(base32.NoPadding).DecodeString(b32)
		if err != nil {
			t.Fatal(err)
		}
		needles = append(needles, raw, []byte(b32), []byte(strings.ToLower(b32)))
		for _, c := range recovery {
			needles = append(needles, []byte(c), []byte(strings.ReplaceAll(c, "-", "")))
		}
	}
	// A pending (unconfirmed) enrollment is sealed too.
	pending, err := e.mfa[2].BeginEnroll(ctx, authn.Identity{UserID: "pending"})
	if err != nil {
		t.Fatal(err)
	}
	b32, _ := authntest.TOTPSecret(pending.URI)
	raw, _ := base32.StdEncoding.WithPadding(base32.NoPadding).DecodeString(b32)
	needles = append(needles, raw, []byte(b32))

	e.c.WaitConverged(10 * time.Second)
	for i := 0; i < e.c.Len(); i++ {
		if err := e.c.Node(i).Snapshot(); err != nil {
			t.Fatalf("node %d: snapshot: %v", i, err)
		}
		var backup bytes.Buffer
		if _, err := e.c.Node(i).Backup(&backup); err != nil {
			t.Fatalf("node %d: backup: %v", i, err)
		}
		if backup.Len() == 0 {
			t.Fatalf("node %d: empty backup", i)
		}
		for _, n := range needles {
			if bytes.Contains(backup.Bytes(), n) {
				t.Errorf("node %d: backup contains a secret (%d bytes)", i, len(n))
			}
		}
		scanDir(t, e.c.Dir(i), needles...)
	}
	// The scan would have found them had they been there: the backup does
	// hold the user IDs in clear.
	var backup bytes.Buffer
	if _, err := e.c.Node(0).Backup(&backup); err != nil {
		t.Fatal(err)
	}
	if !bytes.Contains(backup.Bytes(), []byte("mfa/user-3/totp")) {
		t.Error("backup does not hold the MFA keys: the scan proves nothing")
	}
	for i := 0; i < e.c.Len(); i++ {
		state, err := os.ReadFile(filepath.Join(e.c.Dir(i), "state.db"))
		if err != nil {
			t.Fatal(err)
		}
		if !bytes.Contains(state, []byte("mfa/user-3/totp")) {
			t.Errorf("node %d: state.db does not hold the MFA keys: the scan proves nothing", i)
		}
	}
}

// scanDir fails the test if any file under dir contains any of needles.
func scanDir(t *testing.T, dir string, needles ...[]byte) {
	t.Helper()
	files := 0
	err := filepath.WalkDir(dir, func(path string, d os.DirEntry, err error) error {
		if err != nil || d.IsDir() {
			return err
		}
		data, err := os.ReadFile(path)
		if err != nil {
			return err
		}
		files++
		for _, n := range needles {
			if bytes.Contains(data, n) {
				t.Errorf("%s contains a secret (%d bytes)", path, len(n))
			}
		}
		return nil
	})
	if err != nil {
		t.Fatal(err)
	}
	if files == 0 {
		t.Fatalf("no files under %s", dir)
	}
}
