package encap

import (
	"encoding/binary"
	"net/netip"
)

// IPv6 header constants.
const (
	IPv6HeaderLen         = 40
	IPv6FragmentHeaderLen = 8
	IPv6Version           = 6

	ipv6PayloadLen = 4
	ipv6NextHeader = 6
	ipv6HopLimit   = 7
	ipv6Src        = 8
	ipv6Dst        = 24
)

// IPv6 is a view over an IPv6 fixed header and what follows (RFC 8200 §3):
//
//	+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+
//	|Version| Traffic Class |           Flow Label                  |
//	+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+
//	|         Payload Length        |  Next Header  |   Hop Limit   |
//	+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+
//	|                 Source Address (16)                           |
//	|                 Destination Address (16)                      |
//	+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+
type IPv6 []byte

// IsValid reports whether b holds a whole fixed header with version 6 and a
// payload length that fits in b.
func (b IPv6) IsValid() bool {
	return len(b) >= IPv6HeaderLen && b[0]>>4 == IPv6Version &&
		IPv6HeaderLen+int(b.PayloadLen()) <= len(b)
}

// TrafficClass returns the traffic class byte.
func (b IPv6) TrafficClass() uint8 { return uint8(binary.BigEndian.Uint16(b[0:]) >> 4) }

// FlowLabel returns the 20-bit flow label.
func (b IPv6) FlowLabel() uint32 { return binary.BigEndian.Uint32(b[0:]) & 0xfffff }

// PayloadLen returns the payload length field.
func (b IPv6) PayloadLen() uint16 { return binary.BigEndian.Uint16(b[ipv6PayloadLen:]) }

// NextHeader returns the next header field of the fixed header.
func (b IPv6) NextHeader() uint8 { return b[ipv6NextHeader] }

// HopLimit returns the hop limit.
func (b IPv6) HopLimit() uint8 { return b[ipv6HopLimit] }

// Src returns the source address.
func (b IPv6) Src() netip.Addr { return netip.AddrFrom16([16]byte(b[ipv6Src : ipv6Src+16])) }

// Dst returns the destination address.
func (b IPv6) Dst() netip.Addr { return netip.AddrFrom16([16]byte(b[ipv6Dst : ipv6Dst+16])) }

// SrcBytes returns the source address as a slice of b.
func (b IPv6) SrcBytes() []byte { return b[ipv6Src : ipv6Src+16] }

// DstBytes returns the destination address as a slice of b.
func (b IPv6) DstBytes() []byte { return b[ipv6Dst : ipv6Dst+16] }

// Payload returns the bytes after the fixed header up to the payload length.
func (b IPv6) Payload() []byte { return b[IPv6HeaderLen : IPv6HeaderLen+int(b.PayloadLen())] }

// SetPayloadLen sets the payload length field.
func (b IPv6) SetPayloadLen(n uint16) { binary.BigEndian.PutUint16(b[ipv6PayloadLen:], n) }

// SetNextHeader sets the next header field of the fixed header.
func (b IPv6) SetNextHeader(nh uint8) { b[ipv6NextHeader] = nh }

// IPv6Fields describes an IPv6 fixed header to encode.
type IPv6Fields struct {
	TrafficClass uint8
	FlowLabel    uint32
	PayloadLen   uint16
	NextHeader   uint8
	HopLimit     uint8
	Src, Dst     netip.Addr // IPv6 addresses
}

// Encode writes the 40-byte fixed header to the start of b.
func (f *IPv6Fields) Encode(b []byte) {
	_ = b[IPv6HeaderLen-1]
	binary.BigEndian.PutUint32(b[0:], IPv6Version<<28|uint32(f.TrafficClass)<<20|f.FlowLabel&0xfffff)
	binary.BigEndian.PutUint16(b[ipv6PayloadLen:], f.PayloadLen)
	b[ipv6NextHeader] = f.NextHeader
	b[ipv6HopLimit] = f.HopLimit
	src, dst := f.Src.As16(), f.Dst.As16()
	copy(b[ipv6Src:], src[:])
	copy(b[ipv6Dst:], dst[:])
}

// IPv6Fragment is a view over an IPv6 fragment extension header (RFC 8200 §4.5):
//
//	+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+
//	|  Next Header  |   Reserved    |      Fragment Offset    |Res|M|
//	+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+
//	|                         Identification                        |
//	+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+
type IPv6Fragment []byte

// IsValid reports whether b holds a whole fragment header.
func (b IPv6Fragment) IsValid() bool { return len(b) >= IPv6FragmentHeaderLen }

// NextHeader returns the protocol of the fragmentable part.
func (b IPv6Fragment) NextHeader() uint8 { return b[0] }

// FragmentOffset returns the offset of this fragment in bytes.
func (b IPv6Fragment) FragmentOffset() int { return int(binary.BigEndian.Uint16(b[2:]) & 0xfff8) }

// More reports whether the M flag is set.
func (b IPv6Fragment) More() bool { return b[3]&1 != 0 }

// ID returns the 32-bit identification.
func (b IPv6Fragment) ID() uint32 { return binary.BigEndian.Uint32(b[4:]) }

// IPv6FragmentFields describes a fragment header to encode.
type IPv6FragmentFields struct {
	NextHeader uint8
	Offset     int // bytes, a multiple of 8
	More       bool
	ID         uint32
}

// Encode writes the 8-byte fragment header to the start of b.
func (f *IPv6FragmentFields) Encode(b []byte) {
	_ = b[IPv6FragmentHeaderLen-1]
	b[0] = f.NextHeader
	b[1] = 0
	w := uint16(f.Offset) & 0xfff8
	if f.More {
		w |= 1
	}
	binary.BigEndian.PutUint16(b[2:], w)
	binary.BigEndian.PutUint32(b[4:], f.ID)
}
