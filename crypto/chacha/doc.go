// Package chacha is ChaCha20-Poly1305 (RFC 8439) for the ESP data plane:
// a cipher.AEAD with a 12-byte nonce and a 16-byte tag, as RFC 7634 uses
// it. On amd64 processors with AVX-512 (F, BW, VL and IFMA: Intel Xeon
// from Ice Lake on, AMD Zen 4 and later) and BMI2 it runs its own
// assembly: ChaCha20 on 32 blocks at a time (two groups of sixteen side
// by side), Poly1305 eight blocks at a time in 44-bit limbs with 52-bit
// multiply-adds, about twice the speed of golang.org/x/crypto on
// packet-sized messages. Elsewhere, or with VXSWITCH_CHACHA=stdlib in the
// environment, New returns golang.org/x/crypto's unchanged.
//
// Open checks the tag before it decrypts: a refused packet's plaintext
// is never written.
//
// # Ownership
//
// Seal and Open follow cipher.AEAD: they append to dst, work in place when
// dst and the input overlap exactly, and keep no reference to any buffer.
// The AEAD owns a copy of the key, kept until it is garbage collected (as
// golang.org/x/crypto keeps its own).
//
// # Allocation
//
// Seal and Open allocate nothing (after the caller's dst has room); New
// allocates the AEAD once per key.
//
// # Concurrency
//
// Seal and Open are safe for concurrent use: they only read the AEAD.
package chacha
