package apitest_test

import (
	"bufio"
	"bytes"
	"context"
	"crypto/tls"
	"crypto/x509"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"net/netip"
	"os"
	"os/exec"
	"slices"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/google/nftables"
	"golang.zx2c4.com/wireguard/wgctrl"
	"golang.zx2c4.com/wireguard/wgctrl/wgtypes"

	"github.com/ferryvpn/ferry/audit"
	"github.com/ferryvpn/ferry/authn"
	"github.com/ferryvpn/ferry/cmd/internal/apitest"
	"github.com/ferryvpn/ferry/profiles"
	"github.com/ferryvpn/ferry/tunnel"
)

// These tests run three API nodes of one cluster, each with its own data
// plane (embedded wireguard-go device and nftables table), in a fresh
// network namespace, and deprovision users through SCIM as an identity
// provider would. Run them as root under flock /tmp/ferry-root.lock.

// inNetns runs the calling test or benchmark again, alone, in a fresh
// network namespace, and reports whether the caller is that child and
// should go on. A parent benchmark reports the child's metrics as its own.
func inNetns(tb testing.TB) bool {
	tb.Helper()
	const env = "FERRY_APITEST_IN_NETNS"
	if os.Getenv(env) == tb.Name() {
		return true
	}
	if os.Geteuid() != 0 {
		tb.Skip("needs root for network namespaces, WireGuard devices and nftables")
	}
	if err := tunnel.Available(); err != nil {
		tb.Skipf("the data plane cannot run here: %v", err)
	}
	if _, err := exec.LookPath("ip"); err != nil {
		tb.Skip("needs ip(8) (apt iproute2)")
	}
	ns := fmt.Sprintf("fscim%d", os.Getpid())
	if out, err := exec.Command("ip", "netns", "add", ns).CombinedOutput(); err != nil {
		tb.Skipf("cannot create a network namespace: %v: %s", err, out)
	}
	tb.Cleanup(func() { exec.Command("ip", "netns", "del", ns).Run() })
	exec.Command("ip", "-n", ns, "link", "set", "lo", "up").Run()
	args := []string{"netns", "exec", ns, os.Args[0], "-test.count=1", "-test.timeout=10m"}
	_, bench := tb.(*testing.B)
	if bench {
		args = append(args, "-test.run=^$", "-test.bench=^"+tb.Name()+"$", "-test.benchtime=1x")
	} else {
		args = append(args, "-test.run=^"+tb.Name()+"$")
	}
	if testing.Verbose() {
		args = append(args, "-test.v")
	}
	cmd := exec.Command("ip", args...)
	cmd.Env = append(os.Environ(), env+"="+tb.Name())
	out, err := cmd.CombinedOutput()
	if err != nil {
		tb.Fatalf("in namespace %s: %v\n%s", ns, err, out)
	}
	if testing.Verbose() {
		tb.Logf("in namespace %s:\n%s", ns, out)
	}
	if b, ok := tb.(*testing.B); ok {
		reportChildMetrics(b, out)
	}
	return false
}

// reportChildMetrics copies the custom metrics of the child's benchmark
// line to b.
func reportChildMetrics(b *testing.B, out []byte) {
	sc := bufio.NewScanner(bytes.NewReader(out))
	for sc.Scan() {
		f := strings.Fields(sc.Text())
		if len(f) < 4 || !strings.HasPrefix(f[0], b.Name()) {
			continue
		}
		for i := 2; i+1 < len(f); i += 2 {
			v, err := strconv.ParseFloat(f[i], 64)
			if err == nil && f[i+1] != "ns/op" {
				b.ReportMetric(v, f[i+1])
			}
		}
	}
}

// deprov is the running setup: three API nodes with data planes, a
// profile for group eng, and SCIM users each holding one peer.
type deprov struct {
	servers []*apitest.Server
	tables  []string
	ifaces  []string
	token   string
	groupID string // SCIM group eng, which the profile is assigned to
	client  *http.Client
	users   []deprovUser
}

type deprovUser struct {
	scimID string
	userID string
	addr   netip.Addr
	key    string
}

func startDeprov(tb testing.TB, users int) *deprov {
	tb.Helper()
	// Every node runs its data plane through the assembly, as ferryd does
	// with wireguard.enabled.
	d := &deprov{}
	for i := range 3 {
		d.ifaces = append(d.ifaces, fmt.Sprintf("fsd%d-%d", os.Getpid()%100000, i))
		d.tables = append(d.tables, fmt.Sprintf("fscim%d", i))
	}
	srvs := apitest.StartWith(tb, apitest.Options{Nodes: 3, DataPlane: func(i int) *tunnel.Config {
		return &tunnel.Config{Interface: d.ifaces[i], ListenPort: 51900 + i, Table: d.tables[i], Userspace: true, NoFlows: true, MemoryLimit: -1}
	}})
	d.servers = srvs
	admin := audit.Actor{UserID: "admin"}
	if _, err := srvs[0].Profiles.Put(context.Background(), profiles.Profile{
		Name: "eng", Groups: []string{"eng"}, Rules: []profiles.Rule{{CIDR: netip.MustParsePrefix("10.99.0.0/16")}},
	}, nil, admin); err != nil {
		tb.Fatal(err)
	}
	tok, err := srvs[0].SCIM.RotateToken(context.Background(), admin)
	if err != nil {
		tb.Fatal(err)
	}
	d.token = tok.Reveal()
	pem, err := os.ReadFile(srvs[0].CAFile)
	if err != nil {
		tb.Fatal(err)
	}
	roots := x509.NewCertPool()
	for _, s := range srvs {
		p, _ := os.ReadFile(s.CAFile)
		roots.AppendCertsFromPEM(p)
	}
	roots.AppendCertsFromPEM(pem)
	d.client = &http.Client{Timeout: 10 * time.Second, Transport: &http.Transport{TLSClientConfig: &tls.Config{RootCAs: roots}}}

	// The identity provider pushes the users and their group, as Okta
	// does: users first, then the group with its members.
	var members []map[string]string
	for k := range users {
		sub := fmt.Sprintf("00u-%04d", k)
		var res struct{ ID string }
		d.scim(tb, 0, http.MethodPost, "/Users", fmt.Sprintf(`{"schemas":["urn:ietf:params:scim:schemas:core:2.0:User"],
			"userName":"user%d@example.com","externalId":%q,"active":true,
			"emails":[{"value":"user%d@example.com","primary":true}]}`, k, sub, k), http.StatusCreated, &res)
		d.users = append(d.users, deprovUser{scimID: res.ID, userID: authn.UserKey(apitest.Issuer, sub)})
		members = append(members, map[string]string{"value": res.ID})
	}
	mb, _ := json.Marshal(members)
	var g struct{ ID string }
	d.scim(tb, 0, http.MethodPost, "/Groups", `{"schemas":["urn:ietf:params:scim:schemas:core:2.0:Group"],"displayName":"eng","members":`+string(mb)+`}`, http.StatusCreated, &g)
	d.groupID = g.ID

	// Each signs in (a session, as after OIDC and TOTP) and gets a peer.
	for k := range d.users {
		u := &d.users[k]
		rec, ok, err := srvs[0].Users.Get(context.Background(), u.userID)
		if err != nil || !ok || !slices.Contains(rec.Groups, "eng") {
			tb.Fatalf("provisioned user %s: %+v %v %v", u.userID, rec, ok, err)
		}
		_, sess, err := srvs[0].Sessions.Create(context.Background(), rec.Identity(), authn.MethodTOTP, authn.Source{Addr: "127.0.0.1"})
		if err != nil {
			tb.Fatal(err)
		}
		pk, _ := wgtypes.GeneratePrivateKey()
		p, _, err := srvs[0].Profiles.Issue(context.Background(), sess, profiles.IssueRequest{PublicKey: pk.PublicKey().String(), Device: "laptop", Profile: "eng"})
		if err != nil {
			tb.Fatal(err)
		}
		u.addr, u.key = p.Address, p.PublicKey
	}
	// Every node's data plane holds every client.
	deadline := time.Now().Add(30 * time.Second)
	for {
		missing := ""
		for i := range d.tables {
			in, err := d.clients(i)
			if err != nil {
				tb.Fatal(err)
			}
			for _, u := range d.users {
				if !in[u.addr] {
					missing = fmt.Sprintf("%s on node %d", u.addr, i)
				}
			}
		}
		if missing == "" {
			break
		}
		if time.Now().After(deadline) {
			tb.Fatalf("client %s never reached the data plane", missing)
		}
		time.Sleep(20 * time.Millisecond)
	}
	return d
}

// scim sends one SCIM request to node i.
func (d *deprov) scim(tb testing.TB, i int, method, path, body string, want int, out any) {
	tb.Helper()
	req, err := http.NewRequest(method, d.servers[i].URL+"/scim/v2"+path, strings.NewReader(body))
	if err != nil {
		tb.Fatal(err)
	}
	req.Header.Set("Authorization", "Bearer "+d.token)
	req.Header.Set("Content-Type", "application/scim+json")
	resp, err := d.client.Do(req)
	if err != nil {
		tb.Fatal(err)
	}
	defer resp.Body.Close()
	b, _ := io.ReadAll(resp.Body)
	if resp.StatusCode != want {
		tb.Fatalf("%s %s: %d %s", method, path, resp.StatusCode, b)
	}
	if out != nil {
		if err := json.Unmarshal(b, out); err != nil {
			tb.Fatal(err)
		}
	}
}

// clients returns the addresses in node i's client map (nftables).
func (d *deprov) clients(i int) (map[netip.Addr]bool, error) {
	conn, err := nftables.New()
	if err != nil {
		return nil, err
	}
	set := &nftables.Set{Table: &nftables.Table{Name: d.tables[i], Family: nftables.TableFamilyINet}, Name: "clients"}
	els, err := conn.GetSetElements(set)
	if err != nil {
		return nil, err
	}
	out := map[netip.Addr]bool{}
	for _, e := range els {
		if a, ok := netip.AddrFromSlice(e.Key); ok {
			out[a] = true
		}
	}
	return out, nil
}

// devicePeers returns the public keys on node i's WireGuard device.
func (d *deprov) devicePeers(i int) (map[string]bool, error) {
	c, err := wgctrl.New()
	if err != nil {
		return nil, err
	}
	defer c.Close()
	dev, err := c.Device(d.ifaces[i])
	if err != nil {
		return nil, err
	}
	out := map[string]bool{}
	for _, p := range dev.Peers {
		out[p.PublicKey.String()] = true
	}
	return out, nil
}

// deactivate PATCHes user k inactive through node via, in Okta's shape,
// and returns how long until its address left the client map of all
// three nodes.
func (d *deprov) deactivate(tb testing.TB, k, via int) time.Duration {
	tb.Helper()
	return d.cut(tb, k, func() {
		d.scim(tb, via, http.MethodPatch, "/Users/"+d.users[k].scimID,
			`{"schemas":["urn:ietf:params:scim:api:messages:2.0:PatchOp"],"Operations":[{"op":"replace","value":{"active":false}}]}`, http.StatusOK, nil)
	})
}

// ungroup removes user k from group eng through node via, in the shape
// Okta and the RFC use, and returns how long until its address left the
// client map of all three nodes (the entitlement watcher revokes it).
func (d *deprov) ungroup(tb testing.TB, k, via int) time.Duration {
	tb.Helper()
	return d.cut(tb, k, func() {
		d.scim(tb, via, http.MethodPatch, "/Groups/"+d.groupID,
			`{"schemas":["urn:ietf:params:scim:api:messages:2.0:PatchOp"],"Operations":[{"op":"remove","path":"members[value eq \"`+d.users[k].scimID+`\"]"}]}`,
			http.StatusNoContent, nil)
	})
}

// cut runs push and returns how long until user k's address left the
// client map of all three nodes.
func (d *deprov) cut(tb testing.TB, k int, push func()) time.Duration {
	tb.Helper()
	u := d.users[k]
	start := time.Now()
	push()
	gone := make([]bool, len(d.tables))
	for deadline := start.Add(10 * time.Second); time.Now().Before(deadline); time.Sleep(time.Millisecond) {
		all := true
		for i := range d.tables {
			if gone[i] {
				continue
			}
			in, err := d.clients(i)
			if err != nil {
				tb.Fatal(err)
			}
			gone[i] = !in[u.addr]
			all = all && gone[i]
		}
		if all {
			return time.Since(start)
		}
	}
	tb.Fatalf("user %d's client %s still in a client map 10 s after the push (gone: %v)", k, u.addr, gone)
	return 0
}

// TestSCIMDeactivateCutsEveryNode: active=false pushed through SCIM to one
// node removes the user's client from the client map and the WireGuard
// device of all three nodes, ends their sessions, records why, and
// leaves the other user alone.
func TestSCIMDeactivateCutsEveryNode(t *testing.T) {
	if !inNetns(t) {
		return
	}
	d := startDeprov(t, 2)
	lat := d.deactivate(t, 0, 1)
	t.Logf("SCIM active=false to the client gone on all three nodes: %s", lat)
	victim, other := d.users[0], d.users[1]
	for i := range d.servers {
		peers, err := d.devicePeers(i)
		if err != nil {
			t.Fatal(err)
		}
		if peers[victim.key] {
			t.Errorf("node %d's WireGuard device still has the deactivated user's peer", i)
		}
		if !peers[other.key] {
			t.Errorf("node %d lost the other user's peer", i)
		}
		in, _ := d.clients(i)
		if !in[other.addr] {
			t.Errorf("node %d's client map lost the other user", i)
		}
	}
	s := d.servers[2]
	if ss, err := s.Sessions.List(context.Background(), victim.userID); err != nil || len(ss) != 0 {
		t.Errorf("sessions of the deactivated user: %v %v", ss, err)
	}
	u, _, _ := s.Users.Get(context.Background(), victim.userID)
	if !u.Disabled || u.Change == nil || !strings.Contains(u.Change.By, "scim") {
		t.Errorf("user record after deactivation: %+v", u)
	}
	ps, err := s.Profiles.Peers(context.Background(), profiles.PeerFilter{UserID: victim.userID})
	if err != nil || len(ps) != 1 || ps[0].Revoked == nil || !strings.Contains(ps[0].RevokedReason, "disabled") {
		t.Errorf("victim's peer: %+v %v", ps, err)
	}
}

// BenchmarkSCIMDeprovision: for each of 100 users, each through the next
// node, SCIM active=false (deactivate) or removal from the group the
// profile is assigned to (group-removal), to the user's client map entry
// gone on all three nodes. The goal is a p99 under 1 s (moonshot:
// 200 ms).
func BenchmarkSCIMDeprovision(b *testing.B) {
	if !inNetns(b) {
		return
	}
	const users = 100
	for _, v := range []struct {
		name string
		push func(*deprov, testing.TB, int, int) time.Duration
	}{
		{"deactivate", (*deprov).deactivate},
		{"group-removal", (*deprov).ungroup},
	} {
		b.Run(v.name, func(b *testing.B) {
			d := startDeprov(b, users)
			b.ResetTimer()
			var lats []time.Duration
			for range b.N {
				for k := range users {
					lats = append(lats, v.push(d, b, k, k%3))
				}
			}
			b.StopTimer()
			slices.Sort(lats)
			pct := func(q float64) float64 {
				return float64(lats[min(len(lats)-1, int(q*float64(len(lats))))].Microseconds()) / 1000
			}
			b.ReportMetric(pct(0.5), v.name+"-p50-ms")
			b.ReportMetric(pct(0.99), v.name+"-p99-ms")
		})
	}
}
