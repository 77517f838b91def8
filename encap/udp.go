package encap

import "encoding/binary"

// UDPHeaderLen is the length of a UDP header.
const UDPHeaderLen = 8

// Well-known ports.
const (
	PortVXLAN  uint16 = 4789 // RFC 7348 §5
	PortIKE    uint16 = 500  // RFC 7296
	PortIKENAT uint16 = 4500 // RFC 3948, RFC 7296 §2.23
)

// UDP is a view over a UDP header and payload (RFC 768):
//
//	+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+
//	|          Source Port          |       Destination Port        |
//	+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+
//	|            Length             |           Checksum            |
//	+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+
type UDP []byte

// IsValid reports whether b holds a header whose length field is at least 8
// and fits in b.
func (b UDP) IsValid() bool {
	if len(b) < UDPHeaderLen {
		return false
	}
	l := int(b.Length())
	return l >= UDPHeaderLen && l <= len(b)
}

// SrcPort returns the source port.
func (b UDP) SrcPort() uint16 { return binary.BigEndian.Uint16(b[0:]) }

// DstPort returns the destination port.
func (b UDP) DstPort() uint16 { return binary.BigEndian.Uint16(b[2:]) }

// Length returns the length field (header and payload).
func (b UDP) Length() uint16 { return binary.BigEndian.Uint16(b[4:]) }

// Checksum returns the checksum field.
func (b UDP) Checksum() uint16 { return binary.BigEndian.Uint16(b[6:]) }

// SetChecksum sets the checksum field.
func (b UDP) SetChecksum(c uint16) { binary.BigEndian.PutUint16(b[6:], c) }

// Payload returns the bytes after the header up to the length field.
func (b UDP) Payload() []byte { return b[UDPHeaderLen:b.Length()] }

// UDPFields describes a UDP header to encode.
type UDPFields struct {
	SrcPort, DstPort uint16
	Length           uint16
	Checksum         uint16 // 0: none (allowed over IPv4, and for VXLAN over IPv6 per RFC 6935)
}

// Encode writes the 8-byte header to the start of b.
func (f *UDPFields) Encode(b []byte) {
	_ = b[UDPHeaderLen-1]
	binary.BigEndian.PutUint16(b[0:], f.SrcPort)
	binary.BigEndian.PutUint16(b[2:], f.DstPort)
	binary.BigEndian.PutUint16(b[4:], f.Length)
	binary.BigEndian.PutUint16(b[6:], f.Checksum)
}

// UDPChecksum computes the checksum field value of the UDP datagram b (header
// with any checksum, and payload) for the given pseudo-header addresses (4 or 16
// bytes each). A computed zero is sent as 0xffff (RFC 768).
func UDPChecksum(b []byte, src, dst []byte) uint16 {
	s := PseudoHeaderChecksum(ProtoUDP, src, dst, uint16(len(b)))
	s = Checksum(b[:6], s)
	s = Checksum(b[UDPHeaderLen:], s)
	c := ^s
	if c == 0 {
		c = 0xffff
	}
	return c
}
