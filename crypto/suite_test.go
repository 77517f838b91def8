package crypto

import "testing"

func TestSuites(t *testing.T) {
	for _, tc := range []struct {
		name            string
		suite           Suite
		keymat          int
		transform, bits uint16
	}{
		{"aes128gcm16", SuiteAES128GCM16, 20, TransformAESGCM16, 128},
		{"aes256gcm16", SuiteAES256GCM16, 36, TransformAESGCM16, 256},
		{"chacha20poly1305", SuiteChaCha20Poly1305, 36, TransformChaCha20Poly1305, 0},
	} {
		t.Run(tc.name, func(t *testing.T) {
			s, err := ParseSuite(tc.name)
			if err != nil || s != tc.suite {
				t.Fatalf("ParseSuite: got %v, %v; want %v", s, err, tc.suite)
			}
			if got := s.String(); got != tc.name {
				t.Errorf("String: got %q, want %q", got, tc.name)
			}
			if got := s.KeymatLen(); got != tc.keymat {
				t.Errorf("KeymatLen: got %d, want %d", got, tc.keymat)
			}
			if id, bits := s.IKETransform(); id != tc.transform || bits != tc.bits {
				t.Errorf("IKETransform: got %d/%d, want %d/%d", id, bits, tc.transform, tc.bits)
			}
			if s.ICVLen() != ICVLen {
				t.Errorf("ICVLen: got %d, want %d", s.ICVLen(), ICVLen)
			}
			o, in := pair(t, SAConfig{Suite: s, SPI: 77, ESN: true})
			if o.SPI() != 77 || in.Suite() != s || !in.ESN() {
				t.Errorf("accessors: got spi %d suite %v esn %v", o.SPI(), in.Suite(), in.ESN())
			}
		})
	}
	if _, err := ParseSuite("aes128"); err == nil {
		t.Error("ParseSuite(aes128): got nil error")
	}
	if _, _, err := newAEAD(Suite(0), nil); err == nil {
		t.Error("newAEAD(0): got nil error")
	}
	for k, want := range map[PacketKind]string{KindESP: "esp", KindIKE: "ike", KindKeepalive: "keepalive", KindInvalid: "invalid"} {
		if got := k.String(); got != want {
			t.Errorf("PacketKind(%d): got %q, want %q", k, got, want)
		}
	}
}
