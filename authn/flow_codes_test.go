package authn

import (
	"slices"
	"strings"
	"testing"
)

// TestSealedCodesOpenOnlyForTheirBrowser: the recovery codes waiting in a
// sign-in step open with that step's ticket only, and the sealed bytes
// hold neither the codes nor the ticket's store key.
func TestSealedCodesOpenOnlyForTheirBrowser(t *testing.T) {
	codes := []string{"ABCDE-FGHJK", "LMNPQ-RSTUV"}
	sealed, err := sealCodes("ticket-1", codes)
	if err != nil {
		t.Fatal(err)
	}
	got, err := openCodes("ticket-1", sealed)
	if err != nil || !slices.Equal(got, codes) {
		t.Fatalf("openCodes = %q, %v", got, err)
	}
	for name, s := range map[string]string{"another ticket": "ticket-2", "the store key": signinHash("ticket-1")} {
		if _, err := openCodes(s, sealed); err == nil {
			t.Errorf("opened with %s", name)
		}
	}
	if strings.Contains(string(sealed), "ABCDE") {
		t.Error("sealed codes hold the plaintext")
	}
	for _, cut := range []int{0, 5, len(sealed) - 1} {
		if _, err := openCodes("ticket-1", sealed[:cut]); err == nil {
			t.Errorf("opened a truncation to %d bytes", cut)
		}
	}
}
