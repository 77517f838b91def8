package encap

import (
	"encoding/binary"
	"math/bits"
)

// Checksum returns the RFC 1071 one's-complement sum of b folded to 16
// bits and added to initial (a partial sum, e.g. a pseudo-header). It is not
// complemented: the checksum field value is ^Checksum(...). An odd final
// byte is padded with zero on the right, so only the last piece of data
// summed in parts may have an odd length.
//
// On amd64 with AVX-512 it adds little-endian 16-bit words in 32-bit
// lanes, 128 bytes a step, and swaps the folded sum's bytes (RFC 1071
// §2(B), byte order independence), in pieces of 64 KB; elsewhere, and for
// short data, checksumWords.
func Checksum(b []byte, initial uint16) uint16 {
	if !haveSumAsm || len(b) < sumAsmMin {
		return checksumWords(b, initial)
	}
	return checksumAsm(b, initial)
}

// checksumAsm is Checksum through sumWordsAVX512, 64 KB at a time.
func checksumAsm(b []byte, initial uint16) uint16 {
	sum := initial
	for len(b) > 0 {
		n := min(len(b), 1<<16) // even: only the last piece may be odd
		sum = ChecksumCombine(sum, bits.ReverseBytes16(sumWordsAVX512(&b[0], n)))
		b = b[n:]
	}
	return sum
}

// sumAsmMin is where the assembly stops losing to checksumWords: with the
// call, the fold of 16 lanes and the byte swap, 32 bytes take 4.8 ns
// through it against 3.2-3.4 in Go, 64 bytes 4.3-5.2 against 4.4-4.5, 1514 bytes
// 12 against 86 (BenchmarkChecksumShort, BenchmarkChecksum).
const sumAsmMin = 64

// checksumWords is Checksum in Go: it adds 64-bit big-endian words with
// end-around carry; since 2^16 = 1 in one's-complement arithmetic, that
// equals the 16-bit sum once folded (RFC 1071 §2(B), "parallel
// summation").
func checksumWords(b []byte, initial uint16) uint16 {
	sum, carry := uint64(initial), uint64(0)
	for len(b) >= 32 {
		sum, carry = bits.Add64(sum, binary.BigEndian.Uint64(b[0:]), carry)
		sum, carry = bits.Add64(sum, binary.BigEndian.Uint64(b[8:]), carry)
		sum, carry = bits.Add64(sum, binary.BigEndian.Uint64(b[16:]), carry)
		sum, carry = bits.Add64(sum, binary.BigEndian.Uint64(b[24:]), carry)
		b = b[32:]
	}
	for len(b) >= 8 {
		sum, carry = bits.Add64(sum, binary.BigEndian.Uint64(b), carry)
		b = b[8:]
	}
	var tail uint64
	switch len(b) {
	case 7:
		tail |= uint64(b[6]) << 8
		fallthrough
	case 6:
		tail |= uint64(b[5]) << 16
		fallthrough
	case 5:
		tail |= uint64(b[4]) << 24
		fallthrough
	case 4:
		tail |= uint64(binary.BigEndian.Uint32(b)) << 32
	case 3:
		tail |= uint64(b[2]) << 40
		fallthrough
	case 2:
		tail |= uint64(b[1]) << 48
		fallthrough
	case 1:
		tail |= uint64(b[0]) << 56
	}
	sum, carry = bits.Add64(sum, tail, carry)
	sum, carry = bits.Add64(sum, 0, carry)
	sum += carry // cannot overflow again: sum is at most 2^64-2 here
	// Fold 64 -> 32 -> 16 bits with end-around carry.
	s := (sum >> 32) + (sum & 0xffffffff)
	s = (s >> 16) + (s & 0xffff)
	s = (s >> 16) + (s & 0xffff)
	s = (s >> 16) + (s & 0xffff)
	return uint16(s)
}

// ChecksumCombine adds two partial one's-complement sums.
func ChecksumCombine(a, b uint16) uint16 {
	s := uint32(a) + uint32(b)
	return uint16(s + s>>16)
}

// ChecksumUpdate returns the checksum field value after a 16-bit word of the
// covered data changed from old to new (RFC 1624 eqn. 3: HC' = ~(~HC + ~m + m')).
func ChecksumUpdate(field, old, new uint16) uint16 {
	return ^ChecksumCombine(ChecksumCombine(^field, ^old), new)
}

// PseudoHeaderChecksum returns the partial sum of the TCP/UDP pseudo-header
// for src and dst (4 or 16 bytes each), the protocol and the upper-layer length.
func PseudoHeaderChecksum(proto uint8, src, dst []byte, length uint16) uint16 {
	s := Checksum(src, 0)
	s = Checksum(dst, s)
	return ChecksumCombine(s, ChecksumCombine(uint16(proto), length))
}
