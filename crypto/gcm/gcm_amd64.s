//go:build amd64 && !purego

// AES-GCM with VAES and VPCLMULQDQ on 512-bit registers (AVX-512 F, BW,
// VL) and BMI2. See gcm.go for the representation of field elements.

#include "textflag.h"

// bswap reverses the 16 bytes of each 128-bit lane.
DATA bswap<>+0(SB)/8, $0x08090a0b0c0d0e0f
DATA bswap<>+8(SB)/8, $0x0001020304050607
GLOBL bswap<>(SB), RODATA|NOPTR, $16

// poly: the high qword is the reduction constant.
DATA poly<>+0(SB)/8, $0x0000000000000001
DATA poly<>+8(SB)/8, $0xc200000000000000
GLOBL poly<>(SB), RODATA|NOPTR, $16

// laneInc1: 1, 2, 3, 4 in the counter dword of each lane (byte-reversed
// counter blocks: the counter is dword 0), from J0 to the first four
// payload counters.
DATA laneInc1<>+0(SB)/8, $1
DATA laneInc1<>+8(SB)/8, $0
DATA laneInc1<>+16(SB)/8, $2
DATA laneInc1<>+24(SB)/8, $0
DATA laneInc1<>+32(SB)/8, $3
DATA laneInc1<>+40(SB)/8, $0
DATA laneInc1<>+48(SB)/8, $4
DATA laneInc1<>+56(SB)/8, $0
GLOBL laneInc1<>(SB), RODATA|NOPTR, $64

DATA four<>+0(SB)/8, $4
DATA four<>+8(SB)/8, $0
GLOBL four<>(SB), RODATA|NOPTR, $16

// Round keys live broadcast in Z12 .. Z26 (rk0 .. rk14); CX holds the
// number of rounds (10, 12 or 14).
#define LOADKEYS \
	VBROADCASTI32X4 0(AX), Z12 \
	VBROADCASTI32X4 16(AX), Z13 \
	VBROADCASTI32X4 32(AX), Z14 \
	VBROADCASTI32X4 48(AX), Z15 \
	VBROADCASTI32X4 64(AX), Z16 \
	VBROADCASTI32X4 80(AX), Z17 \
	VBROADCASTI32X4 96(AX), Z18 \
	VBROADCASTI32X4 112(AX), Z19 \
	VBROADCASTI32X4 128(AX), Z20 \
	VBROADCASTI32X4 144(AX), Z21 \
	VBROADCASTI32X4 160(AX), Z22 \
	VBROADCASTI32X4 176(AX), Z23 \
	VBROADCASTI32X4 192(AX), Z24 \
	VBROADCASTI32X4 208(AX), Z25 \
	VBROADCASTI32X4 224(AX), Z26

#define R4(k) \
	VAESENC k, Z0, Z0 \
	VAESENC k, Z1, Z1 \
	VAESENC k, Z2, Z2 \
	VAESENC k, Z3, Z3

#define L4(k) \
	VAESENCLAST k, Z0, Z0 \
	VAESENCLAST k, Z1, Z1 \
	VAESENCLAST k, Z2, Z2 \
	VAESENCLAST k, Z3, Z3

// AES4 encrypts Z0 .. Z3 in place (16 blocks).
#define AES4(l10, l12, ldone) \
	VPXORQ Z12, Z0, Z0 \
	VPXORQ Z12, Z1, Z1 \
	VPXORQ Z12, Z2, Z2 \
	VPXORQ Z12, Z3, Z3 \
	R4(Z13) \
	R4(Z14) \
	R4(Z15) \
	R4(Z16) \
	R4(Z17) \
	R4(Z18) \
	R4(Z19) \
	R4(Z20) \
	R4(Z21) \
	CMPQ CX, $10 \
	JE l10 \
	R4(Z22) \
	R4(Z23) \
	CMPQ CX, $12 \
	JE l12 \
	R4(Z24) \
	R4(Z25) \
	L4(Z26) \
	JMP ldone \
l12: \
	L4(Z24) \
	JMP ldone \
l10: \
	L4(Z22) \
ldone:

// AES1 encrypts Z0 in place (4 blocks).
#define AES1(l10, l12, ldone) \
	VPXORQ Z12, Z0, Z0 \
	VAESENC Z13, Z0, Z0 \
	VAESENC Z14, Z0, Z0 \
	VAESENC Z15, Z0, Z0 \
	VAESENC Z16, Z0, Z0 \
	VAESENC Z17, Z0, Z0 \
	VAESENC Z18, Z0, Z0 \
	VAESENC Z19, Z0, Z0 \
	VAESENC Z20, Z0, Z0 \
	VAESENC Z21, Z0, Z0 \
	CMPQ CX, $10 \
	JE l10 \
	VAESENC Z22, Z0, Z0 \
	VAESENC Z23, Z0, Z0 \
	CMPQ CX, $12 \
	JE l12 \
	VAESENC Z24, Z0, Z0 \
	VAESENC Z25, Z0, Z0 \
	VAESENCLAST Z26, Z0, Z0 \
	JMP ldone \
l12: \
	VAESENCLAST Z24, Z0, Z0 \
	JMP ldone \
l10: \
	VAESENCLAST Z22, Z0, Z0 \
ldone:

// CTR_INIT sets Z8 to the first four payload counter blocks, J0+1 ..
// J0+4 for J0 at BX, byte-reversed, and Z9, Z10 to the constants ctrBody
// uses.
#define CTR_INIT \
	VBROADCASTI32X4 bswap<>(SB), Z10 \
	VBROADCASTI32X4 four<>(SB), Z9 \
	VBROADCASTI32X4 (BX), Z8 \
	VPSHUFB Z10, Z8, Z8 \
	VPADDD  laneInc1<>(SB), Z8, Z8

// func ctr(rk *[240]byte, rounds int, j0 *[16]byte, dst, src *byte, n int)
TEXT ·ctr(SB), NOSPLIT, $0-48
	MOVQ rk+0(FP), AX
	MOVQ rounds+8(FP), CX
	MOVQ j0+16(FP), BX
	MOVQ dst+24(FP), DI
	MOVQ src+32(FP), SI
	MOVQ n+40(FP), DX
	LOADKEYS
	CTR_INIT
	CALL ctrBody<>(SB)
	VZEROUPPER
	RET

// ctrBody XORs DX bytes at SI with the keystream of the counter blocks in
// Z8 (byte-reversed, advanced by Z9 per 64 bytes) into DI. Z10 = bswap,
// Z12-Z26 the round keys, CX the rounds. Clobbers Z0-Z4, Z8, R9, K1, SI,
// DI, DX.
TEXT ctrBody<>(SB), NOSPLIT|NOFRAME, $0-0
ctr_loop256:
	CMPQ DX, $256
	JB   ctr_loop64
	VPSHUFB Z10, Z8, Z0
	VPADDD  Z9, Z8, Z8
	VPSHUFB Z10, Z8, Z1
	VPADDD  Z9, Z8, Z8
	VPSHUFB Z10, Z8, Z2
	VPADDD  Z9, Z8, Z8
	VPSHUFB Z10, Z8, Z3
	VPADDD  Z9, Z8, Z8
	AES4(ctr_a10, ctr_a12, ctr_adone)
	VPXORQ    (SI), Z0, Z0
	VPXORQ    64(SI), Z1, Z1
	VPXORQ    128(SI), Z2, Z2
	VPXORQ    192(SI), Z3, Z3
	VMOVDQU64 Z0, (DI)
	VMOVDQU64 Z1, 64(DI)
	VMOVDQU64 Z2, 128(DI)
	VMOVDQU64 Z3, 192(DI)
	ADDQ $256, SI
	ADDQ $256, DI
	SUBQ $256, DX
	JMP  ctr_loop256

ctr_loop64:
	CMPQ DX, $64
	JB   ctr_tail
	VPSHUFB Z10, Z8, Z0
	VPADDD  Z9, Z8, Z8
	AES1(ctr_b10, ctr_b12, ctr_bdone)
	VPXORQ    (SI), Z0, Z0
	VMOVDQU64 Z0, (DI)
	ADDQ $64, SI
	ADDQ $64, DI
	SUBQ $64, DX
	JMP  ctr_loop64

ctr_tail:
	TESTQ DX, DX
	JZ    ctr_done
	MOVQ  $-1, R9
	BZHIQ DX, R9, R9
	KMOVQ R9, K1
	VPSHUFB Z10, Z8, Z0
	AES1(ctr_c10, ctr_c12, ctr_cdone)
	VMOVDQU8.Z (SI), K1, Z4
	VPXORQ     Z4, Z0, Z0
	VMOVDQU8   Z0, K1, (DI)

ctr_done:
	RET

// ENC_J0 encrypts the block at BX into X5 with the round keys at AX
// (memory operands: no key registers needed). CX = rounds.
#define ENC_J0(l10, l12, ldone) \
	VMOVDQU (BX), X5 \
	VPXOR   0(AX), X5, X5 \
	VAESENC 16(AX), X5, X5 \
	VAESENC 32(AX), X5, X5 \
	VAESENC 48(AX), X5, X5 \
	VAESENC 64(AX), X5, X5 \
	VAESENC 80(AX), X5, X5 \
	VAESENC 96(AX), X5, X5 \
	VAESENC 112(AX), X5, X5 \
	VAESENC 128(AX), X5, X5 \
	VAESENC 144(AX), X5, X5 \
	CMPQ CX, $10 \
	JE   l10 \
	VAESENC 160(AX), X5, X5 \
	VAESENC 176(AX), X5, X5 \
	CMPQ CX, $12 \
	JE   l12 \
	VAESENC 192(AX), X5, X5 \
	VAESENC 208(AX), X5, X5 \
	VAESENCLAST 224(AX), X5, X5 \
	JMP  ldone \
l12: \
	VAESENCLAST 192(AX), X5, X5 \
	JMP  ldone \
l10: \
	VAESENCLAST 160(AX), X5, X5 \
ldone:

// func encryptBlock(rk *[240]byte, rounds int, dst, src *[16]byte)
TEXT ·encryptBlock(SB), NOSPLIT, $0-32
	MOVQ rk+0(FP), AX
	MOVQ rounds+8(FP), CX
	MOVQ dst+16(FP), DI
	MOVQ src+24(FP), BX
	ENC_J0(eb_10, eb_12, eb_done)
	VMOVDQU X5, (DI)
	RET

// FOLD_REDUCE sums the four lanes of the products in Z13 (low), Z14
// (high) and Z15 (middle), folds the middle term in and reduces into X11,
// with X12 = poly. Clobbers X0, Z13-Z15.
#define FOLD_REDUCE \
	/* the four lanes into one */ \
	VEXTRACTI64X4 $1, Z13, Y0 \
	VPXOR         Y0, Y13, Y13 \
	VEXTRACTI128  $1, Y13, X0 \
	VPXOR         X0, X13, X13 \
	VEXTRACTI64X4 $1, Z14, Y0 \
	VPXOR         Y0, Y14, Y14 \
	VEXTRACTI128  $1, Y14, X0 \
	VPXOR         X0, X14, X14 \
	VEXTRACTI64X4 $1, Z15, Y0 \
	VPXOR         Y0, Y15, Y15 \
	VEXTRACTI128  $1, Y15, X0 \
	VPXOR         X0, X15, X15 \
	/* middle term into low and high, then reduce */ \
	VPSLLDQ    $8, X15, X0 \
	VPSRLDQ    $8, X15, X15 \
	VPXOR      X0, X13, X13 \
	VPXOR      X15, X14, X14 \
	VPCLMULQDQ $0x01, X13, X12, X0 \
	VPSHUFD    $78, X13, X13 \
	VPXOR      X0, X13, X13 \
	VPCLMULQDQ $0x01, X13, X12, X0 \
	VPSHUFD    $78, X13, X13 \
	VPXOR      X0, X13, X13 \
	VPXOR      X14, X13, X11

// GHASH_PART folds DX bytes at SI, 64 at a time (the last block
// zero-padded), into the products Z13-Z15, with the powers at R10, which
// advance a block per block; R9 = -1, Z10 = bswap. Clobbers Z0, Z4,
// Z17-Z20, CX, R8, K1.
#define GHASH_PART(loop, done) \
loop: \
	TESTQ   DX, DX \
	JZ      done \
	MOVQ    $64, CX \
	CMPQ    DX, CX \
	CMOVQLT DX, CX \
	BZHIQ   CX, R9, R8 \
	KMOVQ   R8, K1 \
	VMOVDQU8.Z (SI), K1, Z0 \
	VPSHUFB    Z10, Z0, Z0 \
	VMOVDQU64  (R10), Z4 \
	VPCLMULQDQ $0x00, Z4, Z0, Z17 \
	VPCLMULQDQ $0x11, Z4, Z0, Z18 \
	VPCLMULQDQ $0x01, Z4, Z0, Z19 \
	VPCLMULQDQ $0x10, Z4, Z0, Z20 \
	VPXORQ     Z17, Z13, Z13 \
	VPXORQ     Z18, Z14, Z14 \
	VPTERNLOGD $0x96, Z19, Z20, Z15 \
	ADDQ CX, SI \
	SUBQ CX, DX \
	ADDQ $15, CX \
	ANDQ $-16, CX \
	ADDQ CX, R10 \
	JMP  loop \
done:


// GHASH_MSG computes GHASH of the AAD (R11, R12 bytes), the ciphertext
// (R13, BX bytes) and the lengths block at lens into X11, then the tag
// X11 = bswap(X11) XOR X5. R10 = the powers for the message's length.
// The label arguments name GHASH_PART's labels.
#define GHASH_MSG(a1, a2, c1, c2, l1, l2, lens) \
	MOVQ $-1, R9 \
	VBROADCASTI32X4 bswap<>(SB), Z10 \
	VMOVDQU poly<>(SB), X12 \
	VPXORQ  Z13, Z13, Z13 \
	VPXORQ  Z14, Z14, Z14 \
	VPXORQ  Z15, Z15, Z15 \
	MOVQ    R11, SI \
	MOVQ    R12, DX \
	GHASH_PART(a1, a2) \
	MOVQ    R13, SI \
	MOVQ    BX, DX \
	GHASH_PART(c1, c2) \
	MOVQ    lens, SI \
	MOVQ    $16, DX \
	GHASH_PART(l1, l2) \
	FOLD_REDUCE \
	VPSHUFB X10, X11, X11 \
	VPXOR   X5, X11, X11

// func sealShort(rk *[240]byte, rounds int, powers *byte, j0 *[16]byte, dst, src *byte, n int, aad *byte, aadLen int, lens, tag *[16]byte)
// Seal of a message of at most shortBlocks blocks: j0 is the first
// counter block (counter 1); the ciphertext goes to dst, the tag to tag.
TEXT ·sealShort(SB), NOSPLIT, $0-88
	MOVQ rk+0(FP), AX
	MOVQ rounds+8(FP), CX
	MOVQ j0+24(FP), BX
	ENC_J0(se_j10, se_j12, se_jdone)
	LOADKEYS
	CTR_INIT
	MOVQ dst+32(FP), DI
	MOVQ src+40(FP), SI
	MOVQ n+48(FP), DX
	CALL ctrBody<>(SB)
	MOVQ powers+16(FP), R10
	MOVQ aad+56(FP), R11
	MOVQ aadLen+64(FP), R12
	MOVQ dst+32(FP), R13
	MOVQ n+48(FP), BX
	MOVQ lens+72(FP), AX
	GHASH_MSG(se_a, se_ad, se_c, se_cd, se_l, se_ld, AX)
	MOVQ tag+80(FP), DI
	VMOVDQU X11, (DI)
	VZEROUPPER
	RET

// func openShort(rk *[240]byte, rounds int, powers *byte, j0 *[16]byte, dst, src *byte, n int, aad *byte, aadLen int, lens, tag *[16]byte) bool
// Open of a message of at most shortBlocks blocks: checks the tag at tag
// against GHASH of src, and only if it matches decrypts src into dst.
TEXT ·openShort(SB), NOSPLIT, $0-89
	MOVQ rk+0(FP), AX
	MOVQ rounds+8(FP), CX
	MOVQ j0+24(FP), BX
	ENC_J0(op_j10, op_j12, op_jdone)
	MOVQ powers+16(FP), R10
	MOVQ aad+56(FP), R11
	MOVQ aadLen+64(FP), R12
	MOVQ src+40(FP), R13
	MOVQ n+48(FP), BX
	MOVQ lens+72(FP), AX
	GHASH_MSG(op_a, op_ad, op_c, op_cd, op_l, op_ld, AX)
	MOVQ    tag+80(FP), DI
	VMOVDQU (DI), X6
	VPXOR   X6, X11, X11
	VPTEST  X11, X11
	JNZ     op_bad
	MOVQ rk+0(FP), AX
	MOVQ rounds+8(FP), CX
	MOVQ j0+24(FP), BX
	LOADKEYS
	CTR_INIT
	MOVQ dst+32(FP), DI
	MOVQ src+40(FP), SI
	MOVQ n+48(FP), DX
	CALL ctrBody<>(SB)
	VZEROUPPER
	MOVB $1, ret+88(FP)
	RET
op_bad:
	VZEROUPPER
	MOVB $0, ret+88(FP)
	RET

// func ghashPiece(powers *byte, acc *[16]byte, data *byte, n int)
// Continues the GHASH in acc over n bytes (1 to 2048, the last block
// zero-padded) with one reduction: acc·H^m + X_1·H^m + ... + X_m·H for a
// piece of m blocks, powers pointing at H^m.
TEXT ·ghashPiece(SB), NOSPLIT, $0-32
	MOVQ powers+0(FP), R10
	MOVQ acc+8(FP), BX
	MOVQ data+16(FP), SI
	MOVQ n+24(FP), DX
	MOVQ $-1, R9
	VBROADCASTI32X4 bswap<>(SB), Z10
	VMOVDQU poly<>(SB), X12
	// acc (lane 0; the others zero) times H^m starts the products.
	VMOVDQU    (BX), X11
	VMOVDQU64  (R10), Z4
	VPCLMULQDQ $0x00, Z4, Z11, Z13
	VPCLMULQDQ $0x11, Z4, Z11, Z14
	VPCLMULQDQ $0x01, Z4, Z11, Z15
	VPCLMULQDQ $0x10, Z4, Z11, Z16
	VPXORQ     Z16, Z15, Z15
	GHASH_PART(gp_loop, gp_done)
	FOLD_REDUCE
	VMOVDQU X11, (BX)
	VZEROUPPER
	RET
