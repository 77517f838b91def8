package encap

import "encoding/binary"

// Checksum returns the RFC 1071 one's-complement sum of b folded to 16
// bits and added to initial (a partial sum, e.g. a pseudo-header). It is not
// complemented: the checksum field value is ^Checksum(...).
func Checksum(b []byte, initial uint16) uint16 {
	sum := uint64(initial)
	for len(b) >= 32 {
		sum += uint64(binary.BigEndian.Uint32(b[0:]))
		sum += uint64(binary.BigEndian.Uint32(b[4:]))
		sum += uint64(binary.BigEndian.Uint32(b[8:]))
		sum += uint64(binary.BigEndian.Uint32(b[12:]))
		sum += uint64(binary.BigEndian.Uint32(b[16:]))
		sum += uint64(binary.BigEndian.Uint32(b[20:]))
		sum += uint64(binary.BigEndian.Uint32(b[24:]))
		sum += uint64(binary.BigEndian.Uint32(b[28:]))
		b = b[32:]
	}
	for len(b) >= 4 {
		sum += uint64(binary.BigEndian.Uint32(b))
		b = b[4:]
	}
	if len(b) >= 2 {
		sum += uint64(binary.BigEndian.Uint16(b))
		b = b[2:]
	}
	if len(b) == 1 {
		sum += uint64(b[0]) << 8
	}
	for sum>>16 != 0 {
		sum = (sum & 0xffff) + sum>>16
	}
	return uint16(sum)
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
