package encap

import "encoding/binary"

// EtherType values used by vxswitch.
const (
	EtherTypeIPv4 uint16 = 0x0800
	EtherTypeARP  uint16 = 0x0806
	EtherTypeVLAN uint16 = 0x8100
	EtherTypeIPv6 uint16 = 0x86dd
)

// Ethernet header lengths.
const (
	EthernetHeaderLen = 14
	VLANTagLen        = 4
)

// Ethernet is a view over an Ethernet II frame, optionally with one 802.1Q tag:
//
//	 0                   1                   2                   3
//	+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+
//	|                 destination MAC (6)                           |
//	|                                 |   source MAC (6)            |
//	|                                                               |
//	| [ TPID 0x8100 | PCP|D| VLAN ID ] |  EtherType                 |
//	+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+
type Ethernet []byte

// IsValid reports whether e holds a whole header (with its tag, if tagged).
func (e Ethernet) IsValid() bool {
	if len(e) < EthernetHeaderLen {
		return false
	}
	if binary.BigEndian.Uint16(e[12:]) == EtherTypeVLAN {
		return len(e) >= EthernetHeaderLen+VLANTagLen
	}
	return true
}

// Dst returns the destination MAC.
func (e Ethernet) Dst() (m MAC) { copy(m[:], e[0:6]); return m }

// Src returns the source MAC.
func (e Ethernet) Src() (m MAC) { copy(m[:], e[6:12]); return m }

// SetDst sets the destination MAC.
func (e Ethernet) SetDst(m MAC) { copy(e[0:6], m[:]) }

// SetSrc sets the source MAC.
func (e Ethernet) SetSrc(m MAC) { copy(e[6:12], m[:]) }

// Tagged reports whether the frame carries an 802.1Q tag.
func (e Ethernet) Tagged() bool { return binary.BigEndian.Uint16(e[12:]) == EtherTypeVLAN }

// VLAN returns the 12-bit VLAN ID, or 0 when untagged.
func (e Ethernet) VLAN() uint16 {
	if !e.Tagged() {
		return 0
	}
	return binary.BigEndian.Uint16(e[14:]) & 0x0fff
}

// EtherType returns the type of the payload, after the tag if there is one.
func (e Ethernet) EtherType() uint16 {
	if e.Tagged() {
		return binary.BigEndian.Uint16(e[16:])
	}
	return binary.BigEndian.Uint16(e[12:])
}

// HeaderLen is 14, or 18 when tagged.
func (e Ethernet) HeaderLen() int {
	if e.Tagged() {
		return EthernetHeaderLen + VLANTagLen
	}
	return EthernetHeaderLen
}

// Payload returns the bytes after the header.
func (e Ethernet) Payload() []byte { return e[e.HeaderLen():] }

// EthernetFields describes an Ethernet header to encode.
type EthernetFields struct {
	Dst, Src  MAC
	VLAN      uint16 // 0: untagged
	PCP       uint8
	EtherType uint16
}

// Len is the encoded header length.
func (f *EthernetFields) Len() int {
	if f.VLAN != 0 {
		return EthernetHeaderLen + VLANTagLen
	}
	return EthernetHeaderLen
}

// Encode writes the header to the start of e, which must have room for Len bytes.
func (f *EthernetFields) Encode(e []byte) {
	copy(e[0:6], f.Dst[:])
	copy(e[6:12], f.Src[:])
	if f.VLAN != 0 {
		binary.BigEndian.PutUint16(e[12:], EtherTypeVLAN)
		binary.BigEndian.PutUint16(e[14:], uint16(f.PCP&7)<<13|f.VLAN&0x0fff)
		binary.BigEndian.PutUint16(e[16:], f.EtherType)
		return
	}
	binary.BigEndian.PutUint16(e[12:], f.EtherType)
}
