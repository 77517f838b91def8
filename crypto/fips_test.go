package crypto

import (
	"bytes"
	"errors"
	"os"
	"os/exec"
	"testing"
)

// TestFIPSMode runs this test binary again under GODEBUG=fips140=on: an
// AES-GCM SA runs on the standard library's module and says so, a
// ChaCha20-Poly1305 SA is refused with ErrFIPS; outside FIPS mode both run.
func TestFIPSMode(t *testing.T) {
	if os.Getenv("VXSWITCH_FIPS_CHILD") != "" {
		o, _ := pair(t, SAConfig{Suite: SuiteAES128GCM16})
		if o.Implementation() != "stdlib-fips" || o.fast != nil {
			t.Errorf("AES-GCM SA in FIPS mode: implementation %q", o.Implementation())
		}
		_, err := NewOutboundSA(SAConfig{SPI: 9, Suite: SuiteChaCha20Poly1305, Keymat: testKeymat(SuiteChaCha20Poly1305, 1)})
		if !errors.Is(err, ErrFIPS) {
			t.Errorf("ChaCha20-Poly1305 SA in FIPS mode: %v, want ErrFIPS", err)
		}
		for name, refused := range map[string]bool{"chacha20poly1305": true, "x25519": true, "curve25519": true, "aes128gcm16": false, "ecp256": false, "prfsha256": false} {
			if err := FIPSRefuses(name); (err != nil) != refused {
				t.Errorf("FIPSRefuses(%s) = %v", name, err)
			}
		}
		if FIPSCheckMode(true) != nil {
			t.Error("esp refused under fips140=on")
		}
		return
	}
	cmd := exec.Command(os.Args[0], "-test.run=^TestFIPSMode$", "-test.v")
	cmd.Env = append(os.Environ(), "GODEBUG=fips140=on", "VXSWITCH_FIPS_CHILD=1")
	if out, err := cmd.CombinedOutput(); err != nil || !bytes.Contains(out, []byte("--- PASS: TestFIPSMode")) {
		t.Fatalf("under GODEBUG=fips140=on: %v\n%s", err, out)
	}
	if FIPSRefuses("chacha20poly1305") != nil || FIPSRefuses("x25519") != nil || FIPSCheckMode(true) != nil {
		t.Error("outside FIPS mode an algorithm or esp was refused")
	}
}
