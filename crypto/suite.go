package crypto

import "fmt"

// Suite is an ESP AEAD cipher suite.
type Suite uint8

// The suites vxswitch offers. Each uses a 16-byte ICV, a 4-byte salt taken
// from the end of the key material and an 8-byte explicit IV.
const (
	SuiteAES128GCM16      Suite = iota + 1 // RFC 4106, ENCR_AES_GCM_16 with a 128-bit key
	SuiteAES256GCM16                       // RFC 4106, ENCR_AES_GCM_16 with a 256-bit key
	SuiteChaCha20Poly1305                  // RFC 7634, ENCR_CHACHA20_POLY1305
)

// Suites lists every supported suite, strongest-default first.
var Suites = []Suite{SuiteAES128GCM16, SuiteAES256GCM16, SuiteChaCha20Poly1305}

// ParseSuite parses a suite name as written in the configuration and in
// strongSwan proposals: aes128gcm16, aes256gcm16 or chacha20poly1305.
func ParseSuite(name string) (Suite, error) {
	for _, s := range Suites {
		if s.String() == name {
			return s, nil
		}
	}
	return 0, fmt.Errorf("unknown suite %q (want aes128gcm16, aes256gcm16 or chacha20poly1305)", name)
}

// String returns the configuration name of s.
func (s Suite) String() string {
	switch s {
	case SuiteAES128GCM16:
		return "aes128gcm16"
	case SuiteAES256GCM16:
		return "aes256gcm16"
	case SuiteChaCha20Poly1305:
		return "chacha20poly1305"
	}
	return fmt.Sprintf("suite(%d)", uint8(s))
}

// KeyLen is the cipher key length in bytes, without the salt.
func (s Suite) KeyLen() int {
	switch s {
	case SuiteAES128GCM16:
		return 16
	case SuiteAES256GCM16, SuiteChaCha20Poly1305:
		return 32
	}
	return 0
}

// SaltLen is the length of the implicit nonce salt (RFC 4106 §4, RFC 7634 §2).
func (s Suite) SaltLen() int { return 4 }

// KeymatLen is how many bytes of key material an SA of this suite takes:
// key || salt, as drawn from the IKEv2 KEYMAT (RFC 4106 §8.1, RFC 7634 §2).
func (s Suite) KeymatLen() int { return s.KeyLen() + s.SaltLen() }

// ICVLen is the length of the integrity check value.
func (s Suite) ICVLen() int { return 16 }

// IKE transform IDs (RFC 7296 §3.3.2, IANA "Transform Type 1").
const (
	TransformAESGCM16         uint16 = 20
	TransformChaCha20Poly1305 uint16 = 28
)

// IKETransform returns the IKEv2 encryption transform ID and the key length
// attribute in bits (0 when the transform takes none) that name s.
func (s Suite) IKETransform() (id uint16, keyBits uint16) {
	switch s {
	case SuiteAES128GCM16:
		return TransformAESGCM16, 128
	case SuiteAES256GCM16:
		return TransformAESGCM16, 256
	case SuiteChaCha20Poly1305:
		return TransformChaCha20Poly1305, 0
	}
	return 0, 0
}
