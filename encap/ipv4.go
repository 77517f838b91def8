package encap

import (
	"encoding/binary"
	"net/netip"
)

// IPv4 header constants.
const (
	IPv4MinHeaderLen = 20
	IPv4MaxHeaderLen = 60
	IPv4Version      = 4

	// IPv4 flags, in the high bits of the flags/fragment-offset word.
	IPv4FlagDF  uint16 = 0x4000
	IPv4FlagMF  uint16 = 0x2000
	ipv4OffMask        = 0x1fff
)

// IP protocol numbers used by vxswitch.
const (
	ProtoICMP     uint8 = 1
	ProtoTCP      uint8 = 6
	ProtoUDP      uint8 = 17
	ProtoIPv6Frag uint8 = 44
	ProtoESP      uint8 = 50
	ProtoICMPv6   uint8 = 58
	ProtoNoNext   uint8 = 59
)

const (
	ipv4VersIHL  = 0
	ipv4TOS      = 1
	ipv4TotalLen = 2
	ipv4ID       = 4
	ipv4FlagsOff = 6
	ipv4TTL      = 8
	ipv4Protocol = 9
	ipv4Checksum = 10
	ipv4Src      = 12
	ipv4Dst      = 16
)

// IPv4 is a view over an IPv4 header and what follows (RFC 791 §3.1):
//
//	 0                   1                   2                   3
//	 0 1 2 3 4 5 6 7 8 9 0 1 2 3 4 5 6 7 8 9 0 1 2 3 4 5 6 7 8 9 0 1
//	+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+
//	|Version|  IHL  |Type of Service|          Total Length         |
//	+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+
//	|         Identification        |Flags|      Fragment Offset    |
//	+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+
//	|  Time to Live |    Protocol   |         Header Checksum       |
//	+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+
//	|                       Source Address                          |
//	+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+
//	|                    Destination Address                        |
//	+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+
//	|                    Options                    |    Padding    |
//	+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+
type IPv4 []byte

// IsValid reports whether b holds a whole IPv4 header whose version is 4,
// whose IHL is at least 5, and whose total length is at least the header
// length and at most len(b). Bytes past the total length are allowed (link
// padding); use Payload, which honours the total length.
func (b IPv4) IsValid() bool {
	if len(b) < IPv4MinHeaderLen || b[ipv4VersIHL]>>4 != IPv4Version {
		return false
	}
	hl := b.HeaderLen()
	tl := int(b.TotalLen())
	return hl >= IPv4MinHeaderLen && hl <= tl && tl <= len(b)
}

// HeaderLen returns the header length from the IHL field, in bytes.
func (b IPv4) HeaderLen() int { return int(b[ipv4VersIHL]&0x0f) * 4 }

// TOS returns the type-of-service (DSCP and ECN) byte.
func (b IPv4) TOS() uint8 { return b[ipv4TOS] }

// TotalLen returns the total length field.
func (b IPv4) TotalLen() uint16 { return binary.BigEndian.Uint16(b[ipv4TotalLen:]) }

// ID returns the identification field.
func (b IPv4) ID() uint16 { return binary.BigEndian.Uint16(b[ipv4ID:]) }

// Flags returns the flag bits (IPv4FlagDF, IPv4FlagMF) of the flags/offset word.
func (b IPv4) Flags() uint16 { return binary.BigEndian.Uint16(b[ipv4FlagsOff:]) &^ ipv4OffMask }

// FragmentOffset returns the fragment offset in bytes.
func (b IPv4) FragmentOffset() int {
	return int(binary.BigEndian.Uint16(b[ipv4FlagsOff:])&ipv4OffMask) * 8
}

// More reports whether the MF flag is set.
func (b IPv4) More() bool { return b.Flags()&IPv4FlagMF != 0 }

// IsFragment reports whether b is a fragment (MF set or offset non-zero).
func (b IPv4) IsFragment() bool {
	return binary.BigEndian.Uint16(b[ipv4FlagsOff:])&(IPv4FlagMF|ipv4OffMask) != 0
}

// TTL returns the time-to-live.
func (b IPv4) TTL() uint8 { return b[ipv4TTL] }

// Protocol returns the payload protocol number.
func (b IPv4) Protocol() uint8 { return b[ipv4Protocol] }

// Checksum returns the header checksum field.
func (b IPv4) Checksum() uint16 { return binary.BigEndian.Uint16(b[ipv4Checksum:]) }

// Src returns the source address.
func (b IPv4) Src() netip.Addr { return netip.AddrFrom4([4]byte(b[ipv4Src : ipv4Src+4])) }

// Dst returns the destination address.
func (b IPv4) Dst() netip.Addr { return netip.AddrFrom4([4]byte(b[ipv4Dst : ipv4Dst+4])) }

// SrcBytes and DstBytes return the addresses as slices of b.
func (b IPv4) SrcBytes() []byte { return b[ipv4Src : ipv4Src+4] }

// DstBytes returns the destination address as a slice of b.
func (b IPv4) DstBytes() []byte { return b[ipv4Dst : ipv4Dst+4] }

// Options returns the options bytes of the header.
func (b IPv4) Options() []byte { return b[IPv4MinHeaderLen:b.HeaderLen()] }

// Payload returns the bytes after the header up to the total length.
func (b IPv4) Payload() []byte { return b[b.HeaderLen():b.TotalLen()] }

// SetTotalLen sets the total length field (the checksum is not updated).
func (b IPv4) SetTotalLen(n uint16) { binary.BigEndian.PutUint16(b[ipv4TotalLen:], n) }

// SetID sets the identification field (the checksum is not updated).
func (b IPv4) SetID(id uint16) { binary.BigEndian.PutUint16(b[ipv4ID:], id) }

// SetFlagsOffset sets the flags and the fragment offset (in bytes, a multiple
// of 8) (the checksum is not updated).
func (b IPv4) SetFlagsOffset(flags uint16, offset int) {
	binary.BigEndian.PutUint16(b[ipv4FlagsOff:], flags&^ipv4OffMask|uint16(offset/8)&ipv4OffMask)
}

// SetChecksum sets the header checksum field.
func (b IPv4) SetChecksum(c uint16) { binary.BigEndian.PutUint16(b[ipv4Checksum:], c) }

// CalculateChecksum returns the header checksum computed over the header
// with the checksum field taken as zero.
func (b IPv4) CalculateChecksum() uint16 {
	hl := b.HeaderLen()
	if hl == IPv4MinHeaderLen {
		// The common case, unrolled: nine 16-bit words.
		_ = b[19]
		s := uint32(binary.BigEndian.Uint16(b[0:])) + uint32(binary.BigEndian.Uint16(b[2:])) +
			uint32(binary.BigEndian.Uint16(b[4:])) + uint32(binary.BigEndian.Uint16(b[6:])) +
			uint32(binary.BigEndian.Uint16(b[8:])) + uint32(binary.BigEndian.Uint16(b[12:])) +
			uint32(binary.BigEndian.Uint16(b[14:])) + uint32(binary.BigEndian.Uint16(b[16:])) +
			uint32(binary.BigEndian.Uint16(b[18:]))
		s = s&0xffff + s>>16
		s = s&0xffff + s>>16
		return ^uint16(s)
	}
	s := Checksum(b[:ipv4Checksum], 0)
	s = Checksum(b[ipv4Checksum+2:hl], s)
	return ^s
}

// ChecksumValid reports whether the header checksum verifies.
func (b IPv4) ChecksumValid() bool { return Checksum(b[:b.HeaderLen()], 0) == 0xffff }

// IPv4Fields describes an IPv4 header (without options) to encode.
type IPv4Fields struct {
	TOS      uint8
	TotalLen uint16
	ID       uint16
	Flags    uint16 // IPv4FlagDF, IPv4FlagMF
	Offset   int    // fragment offset in bytes, a multiple of 8
	TTL      uint8
	Protocol uint8
	Src, Dst netip.Addr // IPv4 addresses
}

// Encode writes a 20-byte header, checksum included, to the start of b.
func (f *IPv4Fields) Encode(b []byte) {
	_ = b[IPv4MinHeaderLen-1]
	b[ipv4VersIHL] = IPv4Version<<4 | 5
	b[ipv4TOS] = f.TOS
	binary.BigEndian.PutUint16(b[ipv4TotalLen:], f.TotalLen)
	binary.BigEndian.PutUint16(b[ipv4ID:], f.ID)
	binary.BigEndian.PutUint16(b[ipv4FlagsOff:], f.Flags&^ipv4OffMask|uint16(f.Offset/8)&ipv4OffMask)
	b[ipv4TTL] = f.TTL
	b[ipv4Protocol] = f.Protocol
	b[ipv4Checksum], b[ipv4Checksum+1] = 0, 0
	src, dst := f.Src.As4(), f.Dst.As4()
	copy(b[ipv4Src:], src[:])
	copy(b[ipv4Dst:], dst[:])
	IPv4(b).SetChecksum(IPv4(b).CalculateChecksum())
}
