package encap

import (
	"encoding/binary"
	"errors"
	"fmt"
	"net/netip"
)

// VXLANHeaderLen is the length of a VXLAN header.
const VXLANHeaderLen = 8

// vxlanFlagI is the I flag: the VNI is valid (RFC 7348 §5).
const vxlanFlagI = 0x08

// InnerIPv4Overhead is what EncapIP puts in front of an Ethernet frame for
// an IPv4 tunnel: IPv4 (20) + UDP (8) + VXLAN (8).
const InnerIPv4Overhead = IPv4MinHeaderLen + UDPHeaderLen + VXLANHeaderLen

// InnerIPv6Overhead is what EncapIP puts in front of an Ethernet frame for
// an IPv6 tunnel: IPv6 (40) + UDP (8) + VXLAN (8).
const InnerIPv6Overhead = IPv6HeaderLen + UDPHeaderLen + VXLANHeaderLen

// Errors returned by the decapsulation functions. They are values: callers
// count them and drop the packet.
var (
	ErrTruncated   = errors.New("packet truncated")
	ErrMalformed   = errors.New("malformed header")
	ErrNotVXLAN    = errors.New("not a VXLAN packet")
	ErrNoVNI       = errors.New("VXLAN I flag not set")
	ErrFragment    = errors.New("packet is a fragment")
	ErrNoHeadroom  = errors.New("not enough headroom")
	ErrFrameTooBig = errors.New("frame too big")
	// ErrTunnelAddrs: Tunnel.Src and Tunnel.Dst are not both IPv4 or both
	// IPv6 (IPv4-mapped IPv6 counts as IPv6); fix the configuration.
	ErrTunnelAddrs = errors.New("tunnel addresses not both IPv4 or both IPv6")
)

// VXLAN is a view over a VXLAN header and the Ethernet frame after it
// (RFC 7348 §5):
//
//	+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+
//	|R|R|R|R|I|R|R|R|            Reserved                           |
//	+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+
//	|                VXLAN Network Identifier (VNI) |   Reserved    |
//	+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+
//
// Reserved bits are ignored on receive and sent as zero.
type VXLAN []byte

// IsValid reports whether b holds a whole header.
func (b VXLAN) IsValid() bool { return len(b) >= VXLANHeaderLen }

// HasVNI reports whether the I flag is set.
func (b VXLAN) HasVNI() bool { return b[0]&vxlanFlagI != 0 }

// VNI returns the 24-bit VNI.
func (b VXLAN) VNI() VNI { return VNI(binary.BigEndian.Uint32(b[4:]) >> 8) }

// Payload returns the encapsulated Ethernet frame.
func (b VXLAN) Payload() []byte { return b[VXLANHeaderLen:] }

// EncodeVXLAN writes a VXLAN header with the I flag and vni to the start of b.
func EncodeVXLAN(b []byte, vni VNI) {
	_ = b[VXLANHeaderLen-1]
	binary.BigEndian.PutUint32(b[0:], vxlanFlagI<<24)
	binary.BigEndian.PutUint32(b[4:], uint32(vni)<<8)
}

// EncapVXLAN writes a VXLAN header in the headroom in front of the frame at
// buf[off:] and returns the offset where the VXLAN packet (the UDP payload of
// plain mode) starts, off-8.
func EncapVXLAN(buf []byte, off int, vni VNI) (int, error) {
	if off > len(buf) {
		return 0, ErrTruncated
	}
	if off < VXLANHeaderLen {
		return 0, ErrNoHeadroom
	}
	EncodeVXLAN(buf[off-VXLANHeaderLen:], vni)
	return off - VXLANHeaderLen, nil
}

// DecapVXLAN parses the VXLAN packet b (a UDP payload) and returns its VNI
// and the Ethernet frame inside, a slice of b.
func DecapVXLAN(b []byte) (VNI, []byte, error) {
	if len(b) < VXLANHeaderLen+EthernetHeaderLen {
		return 0, nil, ErrTruncated
	}
	v := VXLAN(b)
	if !v.HasVNI() {
		return 0, nil, ErrNoVNI
	}
	return v.VNI(), v.Payload(), nil
}

// Tunnel describes the tunnel-inner IP and UDP headers that EncapIP writes in front of a VXLAN packet: the VTEP addresses.
type Tunnel struct {
	Src, Dst netip.Addr // local and peer VTEP; both IPv4 or both IPv6
	TTL      uint8      // 0 means 64
}

// Overhead returns the bytes EncapIP puts in front of a frame for t.
func (t *Tunnel) Overhead() int {
	if t.Src.Is4() {
		return InnerIPv4Overhead
	}
	return InnerIPv6Overhead
}

// EncapIP writes IP + UDP + VXLAN headers in front of the frame at
// buf[off:off+frameLen] and returns the offset where the IP packet starts.
// The UDP source port is derived from the inner flow (RFC 7348 §5) so
// underlay ECMP spreads flows; the UDP checksum is zero over IPv4 and computed
// over IPv6. id is the IPv4 identification (ignored for IPv6); DF is not set,
// since the inner packet may be fragmented before encryption.
// It returns ErrTruncated if buf[off:off+frameLen] is out of range,
// ErrNoHeadroom if off is smaller than t.Overhead(), ErrTunnelAddrs for a
// mixed or invalid address pair and ErrFrameTooBig past 65535 bytes.
func EncapIP(buf []byte, off, frameLen int, vni VNI, t *Tunnel, id uint16) (int, error) {
	if off < 0 || frameLen < 0 || off > len(buf) || frameLen > len(buf)-off {
		return 0, ErrTruncated
	}
	if !(t.Src.Is4() && t.Dst.Is4()) && !(t.Src.Is6() && t.Dst.Is6()) {
		return 0, ErrTunnelAddrs
	}
	h := t.Overhead()
	if off < h {
		return 0, ErrNoHeadroom
	}
	start := off - h
	ttl := t.TTL
	if ttl == 0 {
		ttl = 64
	}
	frame := buf[off : off+frameLen]
	sport := SourcePort(FlowHash(frame))
	if t.Src.Is4() {
		total := h + frameLen
		if total > 0xffff {
			return 0, ErrFrameTooBig
		}
		ip := IPv4Fields{TotalLen: uint16(total), ID: id, TTL: ttl, Protocol: ProtoUDP, Src: t.Src, Dst: t.Dst}
		ip.Encode(buf[start:])
		u := UDPFields{SrcPort: sport, DstPort: PortVXLAN, Length: uint16(total - IPv4MinHeaderLen)}
		u.Encode(buf[start+IPv4MinHeaderLen:])
		EncodeVXLAN(buf[start+IPv4MinHeaderLen+UDPHeaderLen:], vni)
		return start, nil
	}
	plen := UDPHeaderLen + VXLANHeaderLen + frameLen
	if plen > 0xffff {
		return 0, ErrFrameTooBig
	}
	ip := IPv6Fields{PayloadLen: uint16(plen), NextHeader: ProtoUDP, HopLimit: ttl, Src: t.Src, Dst: t.Dst}
	ip.Encode(buf[start:])
	udp := buf[start+IPv6HeaderLen : off+frameLen]
	u := UDPFields{SrcPort: sport, DstPort: PortVXLAN, Length: uint16(plen)}
	u.Encode(udp)
	EncodeVXLAN(udp[UDPHeaderLen:], vni)
	IPv6(buf[start:]).SetPayloadLen(uint16(plen))
	UDP(udp).SetChecksum(UDPChecksum(udp, IPv6(buf[start:]).SrcBytes(), IPv6(buf[start:]).DstBytes()))
	return start, nil
}

// Decap is the result of DecapIP, filled into caller-owned storage.
type Decap struct {
	Src, Dst netip.Addr // tunnel-inner (VTEP) addresses
	SrcPort  uint16
	VNI      VNI
	Frame    []byte // the Ethernet frame, a slice of the packet
}

// DecapIP parses a tunnel-inner IP packet (IPv4 or IPv6, not a fragment)
// carrying UDP to port 4789 and VXLAN, and fills d. The frame in d is a slice
// of pkt. Malformed input returns an error wrapping one of the package's
// sentinel errors, without allocating.
func DecapIP(pkt []byte, d *Decap) error {
	if len(pkt) < 1 {
		return ErrTruncated
	}
	var udp []byte
	switch pkt[0] >> 4 {
	case IPv4Version:
		ip := IPv4(pkt)
		if !ip.IsValid() {
			return ErrMalformed
		}
		if ip.IsFragment() {
			return ErrFragment
		}
		if ip.Protocol() != ProtoUDP {
			return ErrNotVXLAN
		}
		d.Src, d.Dst = ip.Src(), ip.Dst()
		udp = ip.Payload()
	case IPv6Version:
		ip := IPv6(pkt)
		if !ip.IsValid() {
			return ErrMalformed
		}
		if ip.NextHeader() == ProtoIPv6Frag {
			return ErrFragment
		}
		if ip.NextHeader() != ProtoUDP {
			return ErrNotVXLAN
		}
		d.Src, d.Dst = ip.Src(), ip.Dst()
		udp = ip.Payload()
	default:
		return ErrMalformed
	}
	u := UDP(udp)
	if !u.IsValid() {
		return ErrTruncated
	}
	if u.DstPort() != PortVXLAN {
		return ErrNotVXLAN
	}
	d.SrcPort = u.SrcPort()
	vni, frame, err := DecapVXLAN(u.Payload())
	if err != nil {
		return err
	}
	d.VNI, d.Frame = vni, frame
	return nil
}

// FlowHash hashes the flow identity of an Ethernet frame: the MAC addresses,
// the EtherType and, for IPv4 and IPv6, the addresses, the protocol and the
// TCP/UDP ports of unfragmented packets. Frames of one flow hash alike. The
// value is not stable across versions; do not store it.
func FlowHash(frame []byte) uint32 {
	e := Ethernet(frame)
	if !e.IsValid() {
		h := uint64(len(frame))
		for _, c := range frame {
			h = flowMix(h, uint64(c))
		}
		return flowFinish(h)
	}
	h := flowMix(0, binary.BigEndian.Uint64(frame[0:]))
	h = flowMix(h, uint64(binary.BigEndian.Uint32(frame[8:])))
	et := e.EtherType()
	p := e.Payload()
	switch et {
	case EtherTypeIPv4:
		ip := IPv4(p)
		if !ip.IsValid() {
			break
		}
		proto := ip.Protocol()
		h = flowMix(h, binary.BigEndian.Uint64(p[ipv4Src:]))
		l4 := uint64(proto) << 32
		if pl := ip.Payload(); !ip.IsFragment() && (proto == ProtoTCP || proto == ProtoUDP) && len(pl) >= 4 {
			l4 |= uint64(binary.BigEndian.Uint32(pl))
		}
		h = flowMix(h, l4)
	case EtherTypeIPv6:
		ip := IPv6(p)
		if !ip.IsValid() {
			break
		}
		nh := ip.NextHeader()
		h = flowMix(h, binary.BigEndian.Uint64(p[ipv6Src:]))
		h = flowMix(h, binary.BigEndian.Uint64(p[ipv6Src+8:]))
		h = flowMix(h, binary.BigEndian.Uint64(p[ipv6Dst:]))
		h = flowMix(h, binary.BigEndian.Uint64(p[ipv6Dst+8:]))
		l4 := uint64(nh) << 32
		if pl := ip.Payload(); (nh == ProtoTCP || nh == ProtoUDP) && len(pl) >= 4 {
			l4 |= uint64(binary.BigEndian.Uint32(pl))
		}
		h = flowMix(h, l4)
	default:
		h = flowMix(h, uint64(et))
	}
	return flowFinish(h)
}

// flowMix folds v into the running flow hash h.
func flowMix(h, v uint64) uint64 {
	h = (h ^ v) * 0x9e3779b97f4a7c15
	return h ^ h>>29
}

// flowFinish is MurmurHash3's fmix64 finaliser, folded to 32 bits.
func flowFinish(h uint64) uint32 {
	h ^= h >> 33
	h *= 0xff51afd7ed558ccd
	h ^= h >> 33
	h *= 0xc4ceb9fe1a85ec53
	h ^= h >> 33
	return uint32(h ^ h>>32)
}

// SourcePort maps a flow hash into the dynamic port range 49152-65535, as
// RFC 7348 §5 recommends for the VXLAN UDP source port.
func SourcePort(hash uint32) uint16 {
	return 49152 + uint16((hash^hash>>16)%16384)
}

// String formats d for logs and tests.
func (d *Decap) String() string {
	return fmt.Sprintf("%v->%v vni %d frame %d bytes", d.Src, d.Dst, d.VNI, len(d.Frame))
}
