package crypto

import (
	"encoding/hex"
	"fmt"
	"net/netip"
)

// Wireshark's names for the ESP algorithms, as its esp_sa UAT file stores
// them (epan/dissectors/packet-ipsec.c, esp_encryption_type_vals).
const (
	wiresharkAESGCM16 = "AES-GCM with 16 octet ICV [RFC4106]"
	// Wireshark 4.0 (Debian 12) has no ChaCha20-Poly1305 ESP decryption;
	// later releases list it under this name.
	wiresharkChaCha20Poly1305 = "ChaCha20 with Poly1305 [RFC7634]"
	wiresharkAuthNULL         = "NULL"
)

// wiresharkSA formats one line of Wireshark's esp_sa UAT file (in the
// personal configuration directory, next to "preferences"):
//
//	"IPv4","192.0.2.1","198.51.100.2","0x0000c001","AES-GCM with 16 octet ICV [RFC4106]","0x<key||salt>","NULL",""
//
// Fields: protocol, source, destination, SPI, encryption algorithm,
// encryption key (for AEAD suites the key with the 4-byte salt appended,
// which is how Wireshark wants it), authentication algorithm (NULL: the
// AEAD authenticates) and authentication key. Wireshark also needs the
// preference esp.enable_encryption_decode: TRUE.
func (s *sa) wiresharkSA(src, dst netip.Addr) string {
	proto := "IPv4"
	if src.Is6() && !src.Is4In6() {
		proto = "IPv6"
	}
	alg := wiresharkAESGCM16
	if s.suite == SuiteChaCha20Poly1305 {
		alg = wiresharkChaCha20Poly1305
	}
	s.keyMu.Lock()
	key := hex.EncodeToString(s.keymat)
	s.keyMu.Unlock()
	return fmt.Sprintf("%q,%q,%q,\"0x%08x\",%q,\"0x%s\",%q,\"\"",
		proto, src.Unmap().String(), dst.Unmap().String(), s.spi, alg, key, wiresharkAuthNULL)
}

// WiresharkSA returns this SA as one line of Wireshark's esp_sa UAT file,
// for src (this host) to dst (the peer); see the package documentation of
// the format in wiresharkSA. It reveals the key: for debugging captures only.
func (o *OutboundSA) WiresharkSA(src, dst netip.Addr) string { return o.wiresharkSA(src, dst) }

// WiresharkSA returns this SA as one line of Wireshark's esp_sa UAT file,
// for src (the peer) to dst (this host). It reveals the key.
func (in *InboundSA) WiresharkSA(src, dst netip.Addr) string { return in.wiresharkSA(src, dst) }
