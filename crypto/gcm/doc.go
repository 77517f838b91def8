// Package gcm is AES-GCM (NIST SP 800-38D) for the ESP data plane: a
// cipher.AEAD with a 12-byte nonce and a 16-byte tag, as RFC 4106 uses it.
// On amd64 processors with VAES, VPCLMULQDQ and AVX-512 (Intel Xeon from
// Ice Lake on and the Ice, Tiger and Rocket Lake client cores, not the
// client cores since Alder Lake, which lack AVX-512; AMD Zen 4 and later)
// it runs its own assembly: counter
// mode four blocks per instruction and a packet's GHASH in one reduction,
// 3-4 times the speed of crypto/aes on packet-sized messages. Elsewhere,
// under the purego build tag, in FIPS 140-3 mode (GODEBUG=fips140=on or
// only: the standard library's validated module, nothing else), or with
// VXSWITCH_GCM=stdlib in the environment at start-up, New returns
// crypto/aes's GCM unchanged; Implementation says which runs.
//
// Key setup (the AES key schedule and the powers of H) runs in constant
// time: no branch and no memory index depends on the key (see the comment
// above initTable for how).
//
// # Ownership
//
// Seal and Open follow cipher.AEAD: they append to dst, work in place when
// dst and the input overlap exactly, and keep no reference to any buffer.
// The AEAD owns the expanded key and the powers of H; Wipe overwrites them
// (crypto's SAs do on Zero), and may run while a Seal or Open is under way
// if the caller then discards that call's result. Key setup clears the
// heap-free copies it makes (H, the key schedule's words); what the
// compiler spills to the stack and what the assembly leaves in vector
// registers (the round keys in Z16-Z26 after a Seal or Open) it cannot
// clear: Go offers no way to, short of GOEXPERIMENT=runtimesecret.
//
// # Allocation
//
// Seal and Open allocate nothing (after the caller's dst has room); New
// allocates the AEAD once per key.
//
// # Concurrency
//
// Seal and Open are safe for concurrent use: they only read the AEAD.
// Wipe writes it: see Ownership.
package gcm
