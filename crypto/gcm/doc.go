// Package gcm is AES-GCM (NIST SP 800-38D) for the ESP data plane: a
// cipher.AEAD with a 12-byte nonce and a 16-byte tag, as RFC 4106 uses it.
// On amd64 processors with VAES, VPCLMULQDQ and AVX-512 (Intel Xeon from
// Ice Lake on and the Ice, Tiger and Rocket Lake client cores, not the
// client cores since Alder Lake, which lack AVX-512; AMD Zen 4 and later)
// it runs its own assembly: counter
// mode four blocks per instruction and a packet's GHASH in one reduction,
// 3-4 times the speed of crypto/aes on packet-sized messages. Elsewhere,
// or with VXSWITCH_GCM=stdlib in the environment, New returns crypto/aes's
// GCM unchanged.
//
// # Ownership
//
// Seal and Open follow cipher.AEAD: they append to dst, work in place when
// dst and the input overlap exactly, and keep no reference to any buffer.
// The AEAD owns a copy of the expanded key and the powers of H, kept until
// it is garbage collected (as crypto/aes keeps its own).
//
// # Allocation
//
// Seal and Open allocate nothing (after the caller's dst has room); New
// allocates the AEAD once per key.
//
// # Concurrency
//
// Seal and Open are safe for concurrent use: they only read the AEAD.
package gcm
