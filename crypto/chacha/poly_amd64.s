// Poly1305 eight blocks at a time with AVX-512 IFMA (52-bit multiply-add).
// A number mod 2^130-5 is held in three limbs of 44, 44 and 42 bits
// (weights 1, 2^44, 2^88), one per register, one block per 64-bit lane;
// limbs may run a few bits over between multiplications. See poly.go.

#include "textflag.h"

DATA m44<>+0(SB)/8, $0x00000fffffffffff
GLOBL m44<>(SB), RODATA|NOPTR, $8
DATA m42<>+0(SB)/8, $0x000003ffffffffff
GLOBL m42<>(SB), RODATA|NOPTR, $8
DATA hibit<>+0(SB)/8, $0x0000010000000000
GLOBL hibit<>(SB), RODATA|NOPTR, $8
DATA one<>+0(SB)/8, $1
GLOBL one<>(SB), RODATA|NOPTR, $8

// idxLo, idxHi pick the low and the high halves of eight 16-byte blocks
// out of two registers of four blocks each.
DATA idxLo<>+0(SB)/8, $0
DATA idxLo<>+8(SB)/8, $2
DATA idxLo<>+16(SB)/8, $4
DATA idxLo<>+24(SB)/8, $6
DATA idxLo<>+32(SB)/8, $8
DATA idxLo<>+40(SB)/8, $10
DATA idxLo<>+48(SB)/8, $12
DATA idxLo<>+56(SB)/8, $14
GLOBL idxLo<>(SB), RODATA|NOPTR, $64
DATA idxHi<>+0(SB)/8, $1
DATA idxHi<>+8(SB)/8, $3
DATA idxHi<>+16(SB)/8, $5
DATA idxHi<>+24(SB)/8, $7
DATA idxHi<>+32(SB)/8, $9
DATA idxHi<>+40(SB)/8, $11
DATA idxHi<>+48(SB)/8, $13
DATA idxHi<>+56(SB)/8, $15
GLOBL idxHi<>(SB), RODATA|NOPTR, $64

// Registers: Z31 = 2^44-1, Z30 = 2^42-1, Z29 = 2^128 as limb 2's bit 40,
// Z28/Z27 the block gathers. Z6..Z13 are MUL's scratch.

// TIMES20 sets s = 20*y (2^130 = 5 mod p, and limb products that reach
// 2^132 carry a factor 4).
#define TIMES20(y, s) \
	VPSLLQ $2, y, Z12; VPSLLQ $4, y, s; VPADDQ Z12, s, s

// MUL sets (h0, h1, h2) to h*y mod p (partly reduced), with s1 = 20*y1
// and s2 = 20*y2. IFMA gives each 104-bit product as a low 52-bit and a
// high part (weight 2^52 = 2^44 * 2^8). One round of carries, all three
// at once, leaves each limb a few bits over 44 (42): inputs limbs below
// 2^46 (limb 2 below 2^43) keep every sum in range and the next
// multiplication's operands below IFMA's 52 bits.
#define MUL(h0, h1, h2, y0, y1, y2, s1, s2) \
	VPXORQ Z6, Z6, Z6; VPXORQ Z7, Z7, Z7; VPXORQ Z8, Z8, Z8 \
	VPXORQ Z9, Z9, Z9; VPXORQ Z10, Z10, Z10; VPXORQ Z11, Z11, Z11 \
	VPMADD52LUQ y0, h0, Z6; VPMADD52HUQ y0, h0, Z7 \
	VPMADD52LUQ y1, h0, Z8; VPMADD52HUQ y1, h0, Z9 \
	VPMADD52LUQ y2, h0, Z10; VPMADD52HUQ y2, h0, Z11 \
	VPMADD52LUQ s2, h1, Z6; VPMADD52HUQ s2, h1, Z7 \
	VPMADD52LUQ y0, h1, Z8; VPMADD52HUQ y0, h1, Z9 \
	VPMADD52LUQ y1, h1, Z10; VPMADD52HUQ y1, h1, Z11 \
	VPMADD52LUQ s1, h2, Z6; VPMADD52HUQ s1, h2, Z7 \
	VPMADD52LUQ s2, h2, Z8; VPMADD52HUQ s2, h2, Z9 \
	VPMADD52LUQ y0, h2, Z10; VPMADD52HUQ y0, h2, Z11 \
	VPSLLQ $8, Z7, Z7; VPADDQ Z7, Z8, Z8 \
	VPSLLQ $8, Z9, Z9; VPADDQ Z9, Z10, Z10 \
	VPSLLQ $10, Z11, Z11; VPSLLQ $2, Z11, Z12; VPADDQ Z12, Z11, Z11; VPADDQ Z11, Z6, Z6 \
	VPSRLQ $44, Z6, Z7; VPSRLQ $44, Z8, Z9; VPSRLQ $42, Z10, Z11 \
	VPANDQ Z31, Z6, h0; VPANDQ Z31, Z8, h1; VPANDQ Z30, Z10, h2 \
	VPSLLQ $2, Z11, Z12; VPADDQ Z12, Z11, Z11 \
	VPADDQ Z11, h0, h0; VPADDQ Z7, h1, h1; VPADDQ Z9, h2, h2

// SPLIT turns LO, HI (the halves of eight blocks) into limbs in m0, LO,
// HI (m1, m2), without the 2^128 bit.
#define SPLIT(LO, HI, m0) \
	VPANDQ Z31, LO, m0 \
	VPSRLQ $44, LO, LO; VPSLLQ $20, HI, Z12; VPORQ Z12, LO, LO; VPANDQ Z31, LO, LO \
	VPSRLQ $24, HI, HI

// HSUM adds the eight lanes of z into the low quadword of x (y, x: z's
// lower halves; ty, tx scratch). Lanes below 2^45: no overflow.
#define HSUM(z, y, x, ty, tx) \
	VEXTRACTI64X4 $1, z, ty; VPADDQ ty, y, y \
	VEXTRACTI128 $1, y, tx; VPADDQ tx, x, x \
	VPSHUFD $0x4e, x, tx; VPADDQ tx, x, x

// LOADCHUNK loads the eight blocks at SI+off as limbs in Z14, Z3, Z5
// (with the 2^128 bit).
#define LOADCHUNK(off) \
	VMOVDQU64 off(SI), Z3; VMOVDQU64 off+64(SI), Z4; VMOVDQA64 Z3, Z5 \
	VPERMT2Q Z4, Z28, Z3; VPERMT2Q Z4, Z27, Z5 \
	SPLIT(Z3, Z5, Z14) \
	VPORQ Z29, Z5, Z5

// func polyBlocks(h, r *[3]uint64, msg *byte, n int, sum *[3]uint64)
//
// n >= 8 blocks, in chunks of eight (lane j: block j of the chunk),
// h added to the first block. Lanes are multiplied by r^8 per chunk; when
// n is not a multiple of 8, the q blocks left are taken as the message's
// last eight blocks with the first 8-q masked out, after a multiplication
// by r^q; the last chunk is multiplied by r^8 .. r^1. Nothing is read
// outside the n blocks.
// sum gets the sums of the eight lanes' limbs, limb by limb (stored from
// general registers: a wide store read back in pieces may stall).
TEXT ·polyBlocks(SB), NOSPLIT, $0-40
	MOVQ h+0(FP), AX
	MOVQ r+8(FP), BX
	MOVQ msg+16(FP), SI
	MOVQ n+24(FP), CX
	MOVQ sum+32(FP), DI

	VPBROADCASTQ m44<>(SB), Z31
	VPBROADCASTQ m42<>(SB), Z30
	VPBROADCASTQ hibit<>(SB), Z29
	VMOVDQU64 idxLo<>(SB), Z28
	VMOVDQU64 idxHi<>(SB), Z27

	// Powers. R = r in Z20..Z22 (s: Z23, Z24).
	VPBROADCASTQ 0(BX), Z20
	VPBROADCASTQ 8(BX), Z21
	VPBROADCASTQ 16(BX), Z22
	TIMES20(Z21, Z23)
	TIMES20(Z22, Z24)
	// P2 = r^2 in Z15..Z17.
	VMOVDQA64 Z20, Z15; VMOVDQA64 Z21, Z16; VMOVDQA64 Z22, Z17
	MUL(Z15, Z16, Z17, Z20, Z21, Z22, Z23, Z24)
	// W (Z0..Z2): r^2 in even lanes, r in odd ones.
	MOVQ $0x55, R8; KMOVW R8, K5
	VMOVDQA64 Z20, Z0; VMOVDQA64 Z21, Z1; VMOVDQA64 Z22, Z2
	VMOVDQA64 Z15, K5, Z0; VMOVDQA64 Z16, K5, Z1; VMOVDQA64 Z17, K5, Z2
	// B2 (Z3..Z5): r^2 in lanes 0, 1, 4, 5, one elsewhere.
	MOVQ $0x33, R8; KMOVW R8, K5
	VPBROADCASTQ one<>(SB), Z3
	VMOVDQA64 Z15, K5, Z3; VMOVDQA64.Z Z16, K5, Z4; VMOVDQA64.Z Z17, K5, Z5
	TIMES20(Z4, Z25)
	TIMES20(Z5, Z26)
	// Q = W*B2 = r^4, r^3, r^2, r, r^4, r^3, r^2, r.
	MUL(Z0, Z1, Z2, Z3, Z4, Z5, Z25, Z26)
	// P4 = P2^2.
	TIMES20(Z16, Z18)
	TIMES20(Z17, Z19)
	MUL(Z15, Z16, Z17, Z15, Z16, Z17, Z18, Z19)
	// B4: r^4 in lanes 0..3, one elsewhere; RF = Q*B4 = r^8 .. r^1.
	MOVQ $0x0f, R8; KMOVW R8, K5
	VPBROADCASTQ one<>(SB), Z3
	VMOVDQA64 Z15, K5, Z3; VMOVDQA64.Z Z16, K5, Z4; VMOVDQA64.Z Z17, K5, Z5
	TIMES20(Z4, Z25)
	TIMES20(Z5, Z26)
	MUL(Z0, Z1, Z2, Z3, Z4, Z5, Z25, Z26)
	// R8 = P4^2 into Z20..Z24; RF into Z15..Z19.
	TIMES20(Z16, Z18)
	TIMES20(Z17, Z19)
	MUL(Z15, Z16, Z17, Z15, Z16, Z17, Z18, Z19)
	VMOVDQA64 Z15, Z20; VMOVDQA64 Z16, Z21; VMOVDQA64 Z17, Z22
	TIMES20(Z21, Z23)
	TIMES20(Z22, Z24)
	VMOVDQA64 Z0, Z15; VMOVDQA64 Z1, Z16; VMOVDQA64 Z2, Z17
	TIMES20(Z16, Z18)
	TIMES20(Z17, Z19)

	// The first chunk, h added to its first block (lane 0).
	MOVQ CX, R8
	ANDQ $7, R8          // q: blocks of the last, partial chunk
	SHRQ $3, CX          // whole chunks, at least 1
	VMOVDQU64 0(SI), Z3
	VMOVDQU64 64(SI), Z4
	VMOVDQA64 Z3, Z5
	VPERMT2Q Z4, Z28, Z3
	VPERMT2Q Z4, Z27, Z5
	SPLIT(Z3, Z5, Z0)
	VPORQ Z29, Z5, Z2
	VMOVDQA64 Z3, Z1
	MOVQ $1, R10
	KMOVW R10, K4
	VPBROADCASTQ 0(AX), Z12
	VPADDQ Z12, Z0, K4, Z0
	VPBROADCASTQ 8(AX), Z12
	VPADDQ Z12, Z1, K4, Z1
	VPBROADCASTQ 16(AX), Z12
	VPADDQ Z12, Z2, K4, Z2
	ADDQ $128, SI
	DECQ CX
	JZ whole

chunk:
	MUL(Z0, Z1, Z2, Z20, Z21, Z22, Z23, Z24)
	LOADCHUNK(0)
	VPADDQ Z14, Z0, Z0
	VPADDQ Z3, Z1, Z1
	VPADDQ Z5, Z2, Z2
	ADDQ $128, SI
	DECQ CX
	JNZ chunk

whole:
	TESTQ R8, R8
	JZ last
	// q more blocks: h = h*r^q plus the last eight blocks of the message
	// with the 8-q already taken masked out. r^q is RF's lane 8-q.
	MOVQ $8, R10
	SUBQ R8, R10
	VPBROADCASTQ R10, Z12
	VPERMQ Z15, Z12, Z3
	VPERMQ Z16, Z12, Z4
	VPERMQ Z17, Z12, Z5
	TIMES20(Z4, Z25)
	TIMES20(Z5, Z26)
	MUL(Z0, Z1, Z2, Z3, Z4, Z5, Z25, Z26)
	MOVQ $0xff, R11
	SHLXQ R10, R11, R11
	KMOVW R11, K3        // lanes 8-q .. 7
	SHLQ $4, R8
	LEAQ -128(SI)(R8*1), SI
	LOADCHUNK(0)
	VMOVDQA64.Z Z14, K3, Z14
	VMOVDQA64.Z Z3, K3, Z3
	VMOVDQA64.Z Z5, K3, Z5
	VPADDQ Z14, Z0, Z0
	VPADDQ Z3, Z1, Z1
	VPADDQ Z5, Z2, Z2

last:
	MUL(Z0, Z1, Z2, Z15, Z16, Z17, Z18, Z19)
	HSUM(Z0, Y0, X0, Y3, X3)
	HSUM(Z1, Y1, X1, Y4, X4)
	HSUM(Z2, Y2, X2, Y5, X5)
	MOVQ X0, 0(DI)
	MOVQ X1, 8(DI)
	MOVQ X2, 16(DI)
	VZEROUPPER
	RET
