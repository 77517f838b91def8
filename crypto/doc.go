// Package crypto implements the ESP data plane of vxswitch in userspace:
// RFC 4303 ESP in RFC 3948 UDP encapsulation with AEAD suites (AES-GCM per
// RFC 4106, ChaCha20-Poly1305 per RFC 7634), 64-bit extended sequence
// numbers, anti-replay windows and security associations with lifetimes.
// The IKEv2 key exchange that creates the SAs lives in crypto/ike.
//
// # Ownership
//
// Seal and Open work in place on caller-owned buffers and keep no
// reference to them after they return. Seal expects the inner packet at
// pkt[HeaderLen:] and room for MaxTrailerLen more bytes in cap(pkt); Open
// returns the payload as a subslice of the packet it was given, and
// overwrites the ciphertext (and on failure leaves the buffer undefined).
// An SA copies its key material; Zero (and SADB.Remove) wipes that copy.
//
// # Allocation
//
// Seal, Open, SADB.Lookup and SADB.Open allocate nothing, on success and
// on every error path; tests assert it with testing.AllocsPerRun. The
// hot-path errors are the package's sentinel values, returned unwrapped
// (wrapping would allocate); each has a per-SA counter (Stats). Setup
// functions (NewOutboundSA, NewInboundSA, SADB.Add) wrap their errors with
// the SPI.
//
// # Concurrency
//
// All methods are safe for concurrent use. An OutboundSA hands out
// sequence numbers with an atomic counter, so several workers may seal
// for one peer; a pipeline that must keep order reserves numbers with
// NextSeq in order and seals them in parallel with SealSeq. An InboundSA
// checks the replay window lock-free before decryption and updates it
// under a small mutex afterwards, only for packets whose ICV verified. The
// SADB is copy-on-write: Lookup is an atomic load and a map read.
//
// # Sequence numbers and nonces
//
// The IV on the wire is the 64-bit sequence number, so no nonce repeats
// under a key; an OutboundSA starts at 1 and refuses with ErrSeqExhausted
// at the end of its space (2^32-1, or 2^64-1 with ESN) instead of
// wrapping. NeedsRekey turns true at a soft lifetime or in the last 1/16
// of the sequence space; at a hard lifetime the SA refuses with
// ErrExpired.
package crypto
