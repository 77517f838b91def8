package main

import (
	"bytes"
	"crypto/fips140"
	"os"
	"os/exec"
	"strings"
	"testing"
)

// TestConfigFIPS runs this test binary again under GODEBUG=fips140=on and
// =only. Under on, the configuration refuses what the FIPS 140-3 module
// does not approve (ChaCha20-Poly1305 for ESP, X25519 and ChaCha20 for
// IKE), naming the key; the defaults still load. Under only, esp mode is
// refused with the reason (the module refuses caller-chosen GCM nonces)
// and plain mode loads.
func TestConfigFIPS(t *testing.T) {
	switch os.Getenv("VXSWITCH_FIPS_CHILD") {
	case "on":
		if !fips140.Enabled() || fips140.Enforced() {
			t.Fatal("GODEBUG=fips140=on did not give FIPS mode without enforcement")
		}
		if _, err := parseTest(conf{}.String()); err != nil {
			t.Errorf("defaults in FIPS mode: %v", err)
		}
		for _, c := range []struct{ security, want string }{
			{baseSecurity + "suite = \"chacha20poly1305\"\n", "security.suite: chacha20poly1305: not approved in FIPS 140-3 mode"},
			{baseSecurity + "ike_proposal = \"aes128gcm16-prfsha256-x25519\"\n", "security.ike_proposal: \"aes128gcm16-prfsha256-x25519\": x25519: not approved in FIPS 140-3 mode"},
			{baseSecurity + "ike_proposal = \"chacha20poly1305-prfsha256-ecp256\"\n", "security.ike_proposal: \"chacha20poly1305-prfsha256-ecp256\": chacha20poly1305: not approved"},
		} {
			if _, err := parseTest(conf{security: c.security}.String()); err == nil || !strings.Contains(err.Error(), c.want) {
				t.Errorf("%q: got %v, want %q", c.security, err, c.want)
			}
		}
		if _, err := parseTest(conf{security: baseSecurity + "ike_proposal = \"aes256gcm16-prfsha384-ecp384\"\n"}.String()); err != nil {
			t.Errorf("an approved IKE proposal: %v", err)
		}
		return
	case "only":
		if !fips140.Enforced() {
			t.Fatal("GODEBUG=fips140=only did not enforce")
		}
		if _, err := parseTest(conf{}.String()); err == nil || !strings.Contains(err.Error(), "security.mode: esp: GODEBUG=fips140=only: Go's FIPS 140-3 module refuses AES-GCM with nonces the caller chooses") {
			t.Errorf("esp under fips140=only: got %v", err)
		}
		if _, err := parseTest(conf{security: "[security]\nmode = \"plain\"\n"}.String()); err != nil {
			t.Errorf("plain under fips140=only: %v", err)
		}
		return
	}
	for _, mode := range []string{"on", "only"} {
		cmd := exec.Command(os.Args[0], "-test.run=^TestConfigFIPS$", "-test.v")
		cmd.Env = append(os.Environ(), "GODEBUG=fips140="+mode, "VXSWITCH_FIPS_CHILD="+mode)
		out, err := cmd.CombinedOutput()
		if err != nil || !bytes.Contains(out, []byte("--- PASS: TestConfigFIPS")) {
			t.Errorf("under GODEBUG=fips140=%s: %v\n%s", mode, err, out)
		}
	}
	// outside FIPS mode the same settings load
	if _, err := parseTest(conf{security: baseSecurity + "suite = \"chacha20poly1305\"\nike_proposal = \"aes128gcm16-prfsha256-x25519\"\n"}.String()); err != nil {
		t.Errorf("outside FIPS mode: %v", err)
	}
}
