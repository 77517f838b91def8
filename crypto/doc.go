// Package crypto implements the ESP data plane of vxswitch in userspace:
// RFC 4303 ESP in RFC 3948 UDP encapsulation with AEAD suites (AES-GCM per
// RFC 4106, ChaCha20-Poly1305 per RFC 7634), 64-bit extended sequence
// numbers, anti-replay windows and security associations with lifetimes.
//
// Seal and Open work in place on caller-owned buffers and allocate nothing.
// The IKEv2 key exchange that creates the SAs lives in crypto/ike.
package crypto
