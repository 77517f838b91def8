package chacha

import "golang.org/x/sys/cpu"

var haveAsm = cpu.X86.HasAVX2 && cpu.X86.HasAVX512F && cpu.X86.HasAVX512BW && cpu.X86.HasAVX512VL &&
	cpu.X86.HasAVX512IFMA && cpu.X86.HasBMI2

// haveIFMA: poly.blocks may call polyBlocks.
var haveIFMA = haveAsm

// keyStream16 writes the sixteen keystream blocks for the state's counter
// .. counter+15 to out.
//
//go:noescape
func keyStream16(state *[16]uint32, out *[1024]byte)

// keyStream32 writes the 32 keystream blocks for the state's counter ..
// counter+31 to out.
//
//go:noescape
func keyStream32(state *[16]uint32, out *[2048]byte)

// xorKeyStream XORs n >= 0 bytes of src with the keystream from the
// state's counter on into dst (dst and src may be the same). With
// keyBlock (n > 0), the counter's own block goes there and the data
// starts at the next.
//
//go:noescape
func xorKeyStream(state *[16]uint32, dst, src *byte, n int, keyBlock *[64]byte)

// polyBlocks continues the Poly1305 accumulator h (44-bit limbs) over n
// >= 8 whole blocks at msg, r in 44-bit limbs, and leaves the result,
// not yet carried, in sum (poly.vector).
//
//go:noescape
func polyBlocks(h, r *[3]uint64, msg *byte, n int, sum *[3]uint64)
