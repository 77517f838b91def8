// ChaCha20 32 blocks at a time on 512-bit registers (AVX-512 F, BW) and
// BMI2: two groups of sixteen blocks, A in Z0..Z15 and B in Z16..Z31,
// register i holding state word i of its group's blocks (lane j: the
// block with counter base+j, base+16+j for B). Two groups side by side
// give each step of the rounds eight independent operations, which is
// what keeps a core's vector units busy (one group of sixteen leaves
// them half idle, waiting on the chain of each quarter round).

#include "textflag.h"

// laneInc: 0 .. 15, added to the broadcast counter.
DATA laneInc<>+0(SB)/8, $0x0000000100000000
DATA laneInc<>+8(SB)/8, $0x0000000300000002
DATA laneInc<>+16(SB)/8, $0x0000000500000004
DATA laneInc<>+24(SB)/8, $0x0000000700000006
DATA laneInc<>+32(SB)/8, $0x0000000900000008
DATA laneInc<>+40(SB)/8, $0x0000000b0000000a
DATA laneInc<>+48(SB)/8, $0x0000000d0000000c
DATA laneInc<>+56(SB)/8, $0x0000000f0000000e
GLOBL laneInc<>(SB), RODATA|NOPTR, $64

DATA sixteen<>+0(SB)/4, $16
GLOBL sixteen<>(SB), RODATA|NOPTR, $4

// The frame: B's sixteen registers while A is transposed (0..1023), the
// two groups' counter words (1024, 1088).
#define SPILL 0
#define CTRA 1024
#define CTRB 1088

// LOADSTATE16 broadcasts the state at AX into group A, the counter (word
// 12) from R9 plus each lane's index, and keeps the counter words in the
// frame for ADDSTATE16. LOADSTATE does the same for both groups (B: the
// counter plus 16).
#define LOADSTATE16 \
	VPBROADCASTD 0(AX), Z0; VPBROADCASTD 4(AX), Z1; VPBROADCASTD 8(AX), Z2; VPBROADCASTD 12(AX), Z3 \
	VPBROADCASTD 16(AX), Z4; VPBROADCASTD 20(AX), Z5; VPBROADCASTD 24(AX), Z6; VPBROADCASTD 28(AX), Z7 \
	VPBROADCASTD 32(AX), Z8; VPBROADCASTD 36(AX), Z9; VPBROADCASTD 40(AX), Z10; VPBROADCASTD 44(AX), Z11 \
	VPBROADCASTD R9, Z12; VPADDD laneInc<>(SB), Z12, Z12 \
	VPBROADCASTD 52(AX), Z13; VPBROADCASTD 56(AX), Z14; VPBROADCASTD 60(AX), Z15 \
	VMOVDQU64 Z12, CTRA(SP)
#define LOADSTATE \
	LOADSTATE16 \
	VMOVDQA64 Z0, Z16; VMOVDQA64 Z1, Z17; VMOVDQA64 Z2, Z18; VMOVDQA64 Z3, Z19 \
	VMOVDQA64 Z4, Z20; VMOVDQA64 Z5, Z21; VMOVDQA64 Z6, Z22; VMOVDQA64 Z7, Z23 \
	VMOVDQA64 Z8, Z24; VMOVDQA64 Z9, Z25; VMOVDQA64 Z10, Z26; VMOVDQA64 Z11, Z27 \
	VPADDD.BCST sixteen<>(SB), Z12, Z28; VMOVDQA64 Z13, Z29; VMOVDQA64 Z14, Z30; VMOVDQA64 Z15, Z31 \
	VMOVDQU64 Z28, CTRB(SP)

// QR8 is eight quarter rounds side by side (four of each group).
#define QR8(a0, b0, c0, d0, a1, b1, c1, d1, a2, b2, c2, d2, a3, b3, c3, d3, a4, b4, c4, d4, a5, b5, c5, d5, a6, b6, c6, d6, a7, b7, c7, d7) \
	VPADDD b0, a0, a0; VPADDD b1, a1, a1; VPADDD b2, a2, a2; VPADDD b3, a3, a3 \
	VPADDD b4, a4, a4; VPADDD b5, a5, a5; VPADDD b6, a6, a6; VPADDD b7, a7, a7 \
	VPXORD a0, d0, d0; VPXORD a1, d1, d1; VPXORD a2, d2, d2; VPXORD a3, d3, d3 \
	VPXORD a4, d4, d4; VPXORD a5, d5, d5; VPXORD a6, d6, d6; VPXORD a7, d7, d7 \
	VPROLD $16, d0, d0; VPROLD $16, d1, d1; VPROLD $16, d2, d2; VPROLD $16, d3, d3 \
	VPROLD $16, d4, d4; VPROLD $16, d5, d5; VPROLD $16, d6, d6; VPROLD $16, d7, d7 \
	VPADDD d0, c0, c0; VPADDD d1, c1, c1; VPADDD d2, c2, c2; VPADDD d3, c3, c3 \
	VPADDD d4, c4, c4; VPADDD d5, c5, c5; VPADDD d6, c6, c6; VPADDD d7, c7, c7 \
	VPXORD c0, b0, b0; VPXORD c1, b1, b1; VPXORD c2, b2, b2; VPXORD c3, b3, b3 \
	VPXORD c4, b4, b4; VPXORD c5, b5, b5; VPXORD c6, b6, b6; VPXORD c7, b7, b7 \
	VPROLD $12, b0, b0; VPROLD $12, b1, b1; VPROLD $12, b2, b2; VPROLD $12, b3, b3 \
	VPROLD $12, b4, b4; VPROLD $12, b5, b5; VPROLD $12, b6, b6; VPROLD $12, b7, b7 \
	VPADDD b0, a0, a0; VPADDD b1, a1, a1; VPADDD b2, a2, a2; VPADDD b3, a3, a3 \
	VPADDD b4, a4, a4; VPADDD b5, a5, a5; VPADDD b6, a6, a6; VPADDD b7, a7, a7 \
	VPXORD a0, d0, d0; VPXORD a1, d1, d1; VPXORD a2, d2, d2; VPXORD a3, d3, d3 \
	VPXORD a4, d4, d4; VPXORD a5, d5, d5; VPXORD a6, d6, d6; VPXORD a7, d7, d7 \
	VPROLD $8, d0, d0; VPROLD $8, d1, d1; VPROLD $8, d2, d2; VPROLD $8, d3, d3 \
	VPROLD $8, d4, d4; VPROLD $8, d5, d5; VPROLD $8, d6, d6; VPROLD $8, d7, d7 \
	VPADDD d0, c0, c0; VPADDD d1, c1, c1; VPADDD d2, c2, c2; VPADDD d3, c3, c3 \
	VPADDD d4, c4, c4; VPADDD d5, c5, c5; VPADDD d6, c6, c6; VPADDD d7, c7, c7 \
	VPXORD c0, b0, b0; VPXORD c1, b1, b1; VPXORD c2, b2, b2; VPXORD c3, b3, b3 \
	VPXORD c4, b4, b4; VPXORD c5, b5, b5; VPXORD c6, b6, b6; VPXORD c7, b7, b7 \
	VPROLD $7, b0, b0; VPROLD $7, b1, b1; VPROLD $7, b2, b2; VPROLD $7, b3, b3 \
	VPROLD $7, b4, b4; VPROLD $7, b5, b5; VPROLD $7, b6, b6; VPROLD $7, b7, b7

// QR4 is four quarter rounds side by side (group A alone).
#define QR4(a0, b0, c0, d0, a1, b1, c1, d1, a2, b2, c2, d2, a3, b3, c3, d3) \
	VPADDD b0, a0, a0; VPADDD b1, a1, a1; VPADDD b2, a2, a2; VPADDD b3, a3, a3 \
	VPXORD a0, d0, d0; VPXORD a1, d1, d1; VPXORD a2, d2, d2; VPXORD a3, d3, d3 \
	VPROLD $16, d0, d0; VPROLD $16, d1, d1; VPROLD $16, d2, d2; VPROLD $16, d3, d3 \
	VPADDD d0, c0, c0; VPADDD d1, c1, c1; VPADDD d2, c2, c2; VPADDD d3, c3, c3 \
	VPXORD c0, b0, b0; VPXORD c1, b1, b1; VPXORD c2, b2, b2; VPXORD c3, b3, b3 \
	VPROLD $12, b0, b0; VPROLD $12, b1, b1; VPROLD $12, b2, b2; VPROLD $12, b3, b3 \
	VPADDD b0, a0, a0; VPADDD b1, a1, a1; VPADDD b2, a2, a2; VPADDD b3, a3, a3 \
	VPXORD a0, d0, d0; VPXORD a1, d1, d1; VPXORD a2, d2, d2; VPXORD a3, d3, d3 \
	VPROLD $8, d0, d0; VPROLD $8, d1, d1; VPROLD $8, d2, d2; VPROLD $8, d3, d3 \
	VPADDD d0, c0, c0; VPADDD d1, c1, c1; VPADDD d2, c2, c2; VPADDD d3, c3, c3 \
	VPXORD c0, b0, b0; VPXORD c1, b1, b1; VPXORD c2, b2, b2; VPXORD c3, b3, b3 \
	VPROLD $7, b0, b0; VPROLD $7, b1, b1; VPROLD $7, b2, b2; VPROLD $7, b3, b3

// ROUNDS16 is ROUNDS for group A alone (a message of at most sixteen
// blocks).
#define ROUNDS16 \
	MOVQ $10, DX \
rounds16: \
	QR4(Z0, Z4, Z8, Z12, Z1, Z5, Z9, Z13, Z2, Z6, Z10, Z14, Z3, Z7, Z11, Z15) \
	QR4(Z0, Z5, Z10, Z15, Z1, Z6, Z11, Z12, Z2, Z7, Z8, Z13, Z3, Z4, Z9, Z14) \
	DECQ DX \
	JNZ rounds16

// ADDSTATE16 adds the input state back to group A (RFC 8439 §2.3),
// ADDSTATE to both groups.
#define ADDSTATE16 \
	VPADDD.BCST 0(AX), Z0, Z0; VPADDD.BCST 4(AX), Z1, Z1; VPADDD.BCST 8(AX), Z2, Z2; VPADDD.BCST 12(AX), Z3, Z3 \
	VPADDD.BCST 16(AX), Z4, Z4; VPADDD.BCST 20(AX), Z5, Z5; VPADDD.BCST 24(AX), Z6, Z6; VPADDD.BCST 28(AX), Z7, Z7 \
	VPADDD.BCST 32(AX), Z8, Z8; VPADDD.BCST 36(AX), Z9, Z9; VPADDD.BCST 40(AX), Z10, Z10; VPADDD.BCST 44(AX), Z11, Z11 \
	VPADDD CTRA(SP), Z12, Z12; VPADDD.BCST 52(AX), Z13, Z13; VPADDD.BCST 56(AX), Z14, Z14; VPADDD.BCST 60(AX), Z15, Z15
#define ADDSTATE \
	ADDSTATE16 \
	VPADDD.BCST 0(AX), Z16, Z16; VPADDD.BCST 4(AX), Z17, Z17; VPADDD.BCST 8(AX), Z18, Z18; VPADDD.BCST 12(AX), Z19, Z19 \
	VPADDD.BCST 16(AX), Z20, Z20; VPADDD.BCST 20(AX), Z21, Z21; VPADDD.BCST 24(AX), Z22, Z22; VPADDD.BCST 28(AX), Z23, Z23 \
	VPADDD.BCST 32(AX), Z24, Z24; VPADDD.BCST 36(AX), Z25, Z25; VPADDD.BCST 40(AX), Z26, Z26; VPADDD.BCST 44(AX), Z27, Z27 \
	VPADDD CTRB(SP), Z28, Z28; VPADDD.BCST 52(AX), Z29, Z29; VPADDD.BCST 56(AX), Z30, Z30; VPADDD.BCST 60(AX), Z31, Z31

// SPILLB parks group B in the frame; UNSPILLB brings it back into Z0..Z15.
#define SPILLB \
	VMOVDQU64 Z16, SPILL+0(SP); VMOVDQU64 Z17, SPILL+64(SP); VMOVDQU64 Z18, SPILL+128(SP); VMOVDQU64 Z19, SPILL+192(SP) \
	VMOVDQU64 Z20, SPILL+256(SP); VMOVDQU64 Z21, SPILL+320(SP); VMOVDQU64 Z22, SPILL+384(SP); VMOVDQU64 Z23, SPILL+448(SP) \
	VMOVDQU64 Z24, SPILL+512(SP); VMOVDQU64 Z25, SPILL+576(SP); VMOVDQU64 Z26, SPILL+640(SP); VMOVDQU64 Z27, SPILL+704(SP) \
	VMOVDQU64 Z28, SPILL+768(SP); VMOVDQU64 Z29, SPILL+832(SP); VMOVDQU64 Z30, SPILL+896(SP); VMOVDQU64 Z31, SPILL+960(SP)
#define UNSPILLB \
	VMOVDQU64 SPILL+0(SP), Z0; VMOVDQU64 SPILL+64(SP), Z1; VMOVDQU64 SPILL+128(SP), Z2; VMOVDQU64 SPILL+192(SP), Z3 \
	VMOVDQU64 SPILL+256(SP), Z4; VMOVDQU64 SPILL+320(SP), Z5; VMOVDQU64 SPILL+384(SP), Z6; VMOVDQU64 SPILL+448(SP), Z7 \
	VMOVDQU64 SPILL+512(SP), Z8; VMOVDQU64 SPILL+576(SP), Z9; VMOVDQU64 SPILL+640(SP), Z10; VMOVDQU64 SPILL+704(SP), Z11 \
	VMOVDQU64 SPILL+768(SP), Z12; VMOVDQU64 SPILL+832(SP), Z13; VMOVDQU64 SPILL+896(SP), Z14; VMOVDQU64 SPILL+960(SP), Z15

// TRANS4 turns four word registers (words 4g..4g+3 of sixteen blocks)
// into four registers whose 128-bit lane k holds those words of block
// 4k+j (j = 0..3: a, b, c, d). Z16..Z19 are scratch.
#define TRANS4(a, b, c, d) \
	VPUNPCKLDQ b, a, Z16; VPUNPCKHDQ b, a, Z17; VPUNPCKLDQ d, c, Z18; VPUNPCKHDQ d, c, Z19 \
	VPUNPCKLQDQ Z18, Z16, a; VPUNPCKHQDQ Z18, Z16, b; VPUNPCKLQDQ Z19, Z17, c; VPUNPCKHQDQ Z19, Z17, d

// TRANS128 gathers the 128-bit lanes k of A, B, C, D (words 0-3, 4-7,
// 8-11, 12-15 of blocks 4k+j) into whole blocks: block 4k+j goes to Ok.
// A, B, C and D are scratch once read.
#define TRANS128(A, B, C, D, O0, O1, O2, O3) \
	VSHUFI32X4 $0x44, B, A, O0; VSHUFI32X4 $0xee, B, A, O1 \
	VSHUFI32X4 $0x44, D, C, A; VSHUFI32X4 $0xee, D, C, B \
	VSHUFI32X4 $0x88, A, O0, C; VSHUFI32X4 $0xdd, A, O0, D \
	VSHUFI32X4 $0x88, B, O1, O2; VSHUFI32X4 $0xdd, B, O1, O3 \
	VMOVDQA64 C, O0; VMOVDQA64 D, O1

// TRANSPOSE turns the group in Z0..Z15 into its sixteen keystream
// blocks, block i in Z16+i.
#define TRANSPOSE \
	TRANS4(Z0, Z1, Z2, Z3) \
	TRANS4(Z4, Z5, Z6, Z7) \
	TRANS4(Z8, Z9, Z10, Z11) \
	TRANS4(Z12, Z13, Z14, Z15) \
	TRANS128(Z0, Z4, Z8, Z12, Z16, Z20, Z24, Z28) \
	TRANS128(Z1, Z5, Z9, Z13, Z17, Z21, Z25, Z29) \
	TRANS128(Z2, Z6, Z10, Z14, Z18, Z22, Z26, Z30) \
	TRANS128(Z3, Z7, Z11, Z15, Z19, Z23, Z27, Z31)

// ROUNDS runs the twenty rounds on both groups (DX counts).
#define ROUNDS \
	MOVQ $10, DX \
rounds: \
	QR8(Z0, Z4, Z8, Z12, Z1, Z5, Z9, Z13, Z2, Z6, Z10, Z14, Z3, Z7, Z11, Z15, Z16, Z20, Z24, Z28, Z17, Z21, Z25, Z29, Z18, Z22, Z26, Z30, Z19, Z23, Z27, Z31) \
	QR8(Z0, Z5, Z10, Z15, Z1, Z6, Z11, Z12, Z2, Z7, Z8, Z13, Z3, Z4, Z9, Z14, Z16, Z21, Z26, Z31, Z17, Z22, Z27, Z28, Z18, Z23, Z24, Z29, Z19, Z20, Z25, Z30) \
	DECQ DX \
	JNZ rounds

// STORE16 stores blocks Z16..Z31 at DI+off.
#define STORE16(off) \
	VMOVDQU64 Z16, off+0(DI); VMOVDQU64 Z17, off+64(DI); VMOVDQU64 Z18, off+128(DI); VMOVDQU64 Z19, off+192(DI) \
	VMOVDQU64 Z20, off+256(DI); VMOVDQU64 Z21, off+320(DI); VMOVDQU64 Z22, off+384(DI); VMOVDQU64 Z23, off+448(DI) \
	VMOVDQU64 Z24, off+512(DI); VMOVDQU64 Z25, off+576(DI); VMOVDQU64 Z26, off+640(DI); VMOVDQU64 Z27, off+704(DI) \
	VMOVDQU64 Z28, off+768(DI); VMOVDQU64 Z29, off+832(DI); VMOVDQU64 Z30, off+896(DI); VMOVDQU64 Z31, off+960(DI)

// func keyStream16(state *[16]uint32, out *[1024]byte)
TEXT ·keyStream16(SB), 0, $1152-16
	MOVQ state+0(FP), AX
	MOVQ out+8(FP), DI
	MOVL 48(AX), R9
	LOADSTATE16
	ROUNDS16
	ADDSTATE16
	TRANSPOSE
	STORE16(0)
	VZEROUPPER
	RET

// func keyStream32(state *[16]uint32, out *[2048]byte)
TEXT ·keyStream32(SB), 0, $1152-16
	MOVQ state+0(FP), AX
	MOVQ out+8(FP), DI
	MOVL 48(AX), R9
	LOADSTATE
	ROUNDS
	ADDSTATE
	SPILLB
	TRANSPOSE
	STORE16(0)
	UNSPILLB
	TRANSPOSE
	STORE16(1024)
	VZEROUPPER
	RET

// XORBLOCK XORs keystream block blk with the next 64 bytes of src at SI
// into dst at DI (CX bytes left); fewer than 64 left go to tail, blk in
// Z0. Done when no bytes are left.
#define XORBLOCK(blk) \
	VMOVDQA64 blk, Z0; CMPQ CX, $64; JB tail \
	VPXORD (SI), blk, blk; VMOVDQU64 blk, (DI) \
	ADDQ $64, SI; ADDQ $64, DI; SUBQ $64, CX; JZ done

#define XOR16 \
	XORBLOCK(Z16); XORBLOCK(Z17); XORBLOCK(Z18); XORBLOCK(Z19) \
	XORBLOCK(Z20); XORBLOCK(Z21); XORBLOCK(Z22); XORBLOCK(Z23) \
	XORBLOCK(Z24); XORBLOCK(Z25); XORBLOCK(Z26); XORBLOCK(Z27) \
	XORBLOCK(Z28); XORBLOCK(Z29); XORBLOCK(Z30); XORBLOCK(Z31)

#define XOR15 \
	XORBLOCK(Z17); XORBLOCK(Z18); XORBLOCK(Z19) \
	XORBLOCK(Z20); XORBLOCK(Z21); XORBLOCK(Z22); XORBLOCK(Z23) \
	XORBLOCK(Z24); XORBLOCK(Z25); XORBLOCK(Z26); XORBLOCK(Z27) \
	XORBLOCK(Z28); XORBLOCK(Z29); XORBLOCK(Z30); XORBLOCK(Z31)

// func xorKeyStream(state *[16]uint32, dst, src *byte, n int, keyBlock *[64]byte)
//
// With keyBlock, the first block (the state's counter, 0 for the AEAD)
// goes there instead, and the data starts at the next.
TEXT ·xorKeyStream(SB), 0, $1152-40
	MOVQ state+0(FP), AX
	MOVQ dst+8(FP), DI
	MOVQ src+16(FP), SI
	MOVQ n+24(FP), CX
	MOVQ keyBlock+32(FP), R12
	MOVL 48(AX), R9
	TESTQ CX, CX
	JLE done

	// At most sixteen blocks (fifteen after a key block): group A alone.
	MOVQ $1024, R13
	TESTQ R12, R12
	JZ short
	MOVQ $960, R13
short:
	CMPQ CX, R13
	JA pass
	LOADSTATE16
	ROUNDS16
	ADDSTATE16
	TRANSPOSE
	TESTQ R12, R12
	JZ whole16
	VMOVDQU64 Z16, (R12)
	XOR15

whole16:
	XOR16

pass:
	LOADSTATE
	ROUNDS
	ADDSTATE
	SPILLB
	TRANSPOSE
	TESTQ R12, R12
	JZ whole
	VMOVDQU64 Z16, (R12)
	XORQ R12, R12
	XOR15
	JMP groupB

whole:
	XOR16

groupB:
	UNSPILLB
	TRANSPOSE
	XOR16
	ADDL $32, R9
	JMP pass

tail:
	MOVQ $-1, R11
	BZHIQ CX, R11, R11
	KMOVQ R11, K1
	VMOVDQU8.Z (SI), K1, Z1
	VPXORD Z1, Z0, Z0
	VMOVDQU8 Z0, K1, (DI)

done:
	VZEROUPPER
	RET
