//go:build amd64 && !purego

// The RFC 1071 sum with AVX-512: 16-bit little-endian words added into
// 32-bit lanes, 128 bytes a loop, the tail by a byte mask.

#include "textflag.h"

// func sumWordsAVX512(b *byte, n int) uint16
// The one's-complement sum of n bytes (at most 65536) read as
// little-endian 16-bit words, an odd last byte as the low byte of a word,
// folded to 16 bits.
TEXT ·sumWordsAVX512(SB), NOSPLIT, $0-18
	MOVQ b+0(FP), SI
	MOVQ n+8(FP), DX
	VPXORQ Z0, Z0, Z0
	VPXORQ Z1, Z1, Z1
	MOVL   $0xffff, AX
	VPBROADCASTD AX, Z2

sum_loop128:
	CMPQ DX, $128
	JB   sum_loop64
	VMOVDQU64 (SI), Z3
	VMOVDQU64 64(SI), Z4
	VPSRLD    $16, Z3, Z5
	VPANDD    Z2, Z3, Z3
	VPSRLD    $16, Z4, Z6
	VPANDD    Z2, Z4, Z4
	VPADDD    Z3, Z0, Z0
	VPADDD    Z5, Z1, Z1
	VPADDD    Z4, Z0, Z0
	VPADDD    Z6, Z1, Z1
	ADDQ $128, SI
	SUBQ $128, DX
	JMP  sum_loop128

sum_loop64:
	CMPQ DX, $64
	JB   sum_tail
	VMOVDQU64 (SI), Z3
	VPSRLD    $16, Z3, Z5
	VPANDD    Z2, Z3, Z3
	VPADDD    Z3, Z0, Z0
	VPADDD    Z5, Z1, Z1
	ADDQ $64, SI
	SUBQ $64, DX

sum_tail:
	TESTQ DX, DX
	JZ    sum_fold
	MOVQ  $-1, R8
	BZHIQ DX, R8, R8
	KMOVQ R8, K1
	VMOVDQU8.Z (SI), K1, Z3
	VPSRLD    $16, Z3, Z5
	VPANDD    Z2, Z3, Z3
	VPADDD    Z3, Z0, Z0
	VPADDD    Z5, Z1, Z1

sum_fold:
	// 16 lanes of at most 2^26 each: their sum fits 32 bits.
	VPADDD        Z1, Z0, Z0
	VEXTRACTI64X4 $1, Z0, Y1
	VPADDD        Y1, Y0, Y0
	VEXTRACTI128  $1, Y0, X1
	VPADDD        X1, X0, X0
	VPSHUFD       $0x4e, X0, X1
	VPADDD        X1, X0, X0
	VPSHUFD       $0xb1, X0, X1
	VPADDD        X1, X0, X0
	VMOVD         X0, AX
	MOVL AX, CX
	SHRL $16, CX
	ANDL $0xffff, AX
	ADDL CX, AX
	MOVL AX, CX
	SHRL $16, CX
	ANDL $0xffff, AX
	ADDL CX, AX
	MOVW AX, ret+16(FP)
	VZEROUPPER
	RET
