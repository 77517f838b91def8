//go:build amd64 && !purego

package gcm

import "golang.org/x/sys/cpu"

// haveAsm: every instruction family the assembly uses (VEX-encoded xmm
// instructions need AVX). HasAVX512 is the one GODEBUG=cpu.avx512=off
// turns off (cpu.avx512f=off turns off F).
var haveAsm = cpu.X86.HasAES && cpu.X86.HasPCLMULQDQ && cpu.X86.HasAVX && cpu.X86.HasAVX2 && cpu.X86.HasAVX512 &&
	cpu.X86.HasAVX512F && cpu.X86.HasAVX512BW && cpu.X86.HasAVX512VL &&
	cpu.X86.HasAVX512VAES && cpu.X86.HasAVX512VPCLMULQDQ && cpu.X86.HasBMI2

// encryptBlock writes E(K, src) to dst.
//
//go:noescape
func encryptBlock(rk *[240]byte, rounds int, dst, src *[16]byte)

// ctr XORs n bytes of src with the keystream of the counter blocks J0+1,
// J0+2, ... (the last 32 bits big-endian, incremented) into dst. dst and
// src may be the same.
//
//go:noescape
func ctr(rk *[240]byte, rounds int, j0 *[16]byte, dst, src *byte, n int)

// ghashPiece continues the GHASH in acc (bit-reflected) over n bytes, 1
// to shortBlocks*16, the last block zero-padded, with one reduction;
// powers is &table[(shortBlocks-m)*16] for a piece of m blocks.
//
//go:noescape
func ghashPiece(powers *byte, acc *[16]byte, data *byte, n int)

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
