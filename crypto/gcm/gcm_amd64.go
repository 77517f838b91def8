package gcm

import "golang.org/x/sys/cpu"

var haveAsm = cpu.X86.HasAES && cpu.X86.HasPCLMULQDQ && cpu.X86.HasAVX2 &&
	cpu.X86.HasAVX512F && cpu.X86.HasAVX512BW && cpu.X86.HasAVX512VL &&
	cpu.X86.HasAVX512VAES && cpu.X86.HasAVX512VPCLMULQDQ && cpu.X86.HasBMI2

// encryptBlock writes E(K, src) to dst.
//
//go:noescape
func encryptBlock(rk *[240]byte, rounds int, dst, src *[16]byte)

// ctr XORs n bytes of src with the keystream of the counter blocks ctr,
// ctr+1, ... (the last 32 bits big-endian, incremented) into dst. dst and
// src may be the same.
//
//go:noescape
func ctr(rk *[240]byte, rounds int, ctr *[16]byte, dst, src *byte, n int)

// ghash folds aad, then ct (each zero-padded to whole blocks), then the
// lengths block into the bit-reflected accumulator acc.
//
//go:noescape
func ghash(table *[512]byte, acc *[16]byte, aad *byte, aadLen int, ct *byte, ctLen int, lens *[16]byte)

// sealShort seals a message of at most shortBlocks blocks (AAD,
// plaintext, lengths) in one pass over the keys: j0 is the first counter
// block, powers &table[(shortBlocks-m)*16]; it writes the ciphertext to
// dst and the tag to tag.
//
//go:noescape
func sealShort(rk *[240]byte, rounds int, powers *byte, j0 *[16]byte, dst, src *byte, n int, aad *byte, aadLen int, lens, tag *[16]byte)

// openShort is sealShort's inverse: it checks tag against the ciphertext
// src and, only if it matches, decrypts src into dst.
//
//go:noescape
func openShort(rk *[240]byte, rounds int, powers *byte, j0 *[16]byte, dst, src *byte, n int, aad *byte, aadLen int, lens, tag *[16]byte) bool
