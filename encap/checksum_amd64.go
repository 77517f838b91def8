//go:build amd64 && !purego

package encap

import "golang.org/x/sys/cpu"

// haveSumAsm: sumWordsAVX512 runs here (AVX-512 F and BW for the byte
// masks, AVX2 for the VEXTRACTI128 and ymm adds of the final fold, BMI2
// for BZHI). HasAVX512 is what GODEBUG=cpu.avx512=off turns off.
var haveSumAsm = cpu.X86.HasAVX2 && cpu.X86.HasAVX512 && cpu.X86.HasAVX512F && cpu.X86.HasAVX512BW && cpu.X86.HasBMI2

// sumWordsAVX512 returns the one's-complement sum of n bytes (1 to 65536)
// at b read as little-endian 16-bit words, folded to 16 bits.
//
//go:noescape
func sumWordsAVX512(b *byte, n int) uint16
