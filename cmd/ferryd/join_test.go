package main

import (
	"errors"
	"testing"
	"time"

	"github.com/ferryvpn/ferry/cluster/pki"
)

// A joining node checks the server it reaches against the CA pin of its
// token and against the name it dialled: a certificate of the cluster CA
// for another name is refused (before, any certificate of the pinned CA
// passed, whatever its name).
func TestPinnedTLSChecksTheServerName(t *testing.T) {
	now := time.Now()
	ca, err := pki.NewCA("test CA", time.Hour, now)
	if err != nil {
		t.Fatal(err)
	}
	key, err := pki.NewKey()
	if err != nil {
		t.Fatal(err)
	}
	certPEM, err := ca.IssueServer(key.Public(), []string{"vpn.example.com"}, nil, time.Hour, now)
	if err != nil {
		t.Fatal(err)
	}
	cert, err := pki.ParseCertPEM(certPEM)
	if err != nil {
		t.Fatal(err)
	}
	raw := [][]byte{cert.Raw, ca.Cert.Raw}
	pin := pki.Fingerprint(ca.Cert)[:32]
	if err := pinnedTLS(pin, "vpn.example.com").VerifyPeerCertificate(raw, nil); err != nil {
		t.Fatalf("the right name: %v", err)
	}
	for _, host := range []string{"other.example.com", "10.0.0.1", "ferry-cluster"} {
		if err := pinnedTLS(pin, host).VerifyPeerCertificate(raw, nil); !errors.Is(err, pki.ErrPinMismatch) {
			t.Errorf("server certificate for vpn.example.com dialled as %s: got %v, want ErrPinMismatch", host, err)
		}
	}
	other, err := pki.NewCA("other CA", time.Hour, now)
	if err != nil {
		t.Fatal(err)
	}
	if err := pinnedTLS(pki.Fingerprint(other.Cert)[:32], "vpn.example.com").VerifyPeerCertificate(raw, nil); err == nil {
		t.Error("a server of another CA passed the pin")
	}
}
