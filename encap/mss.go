package encap

import (
	"encoding/binary"
	"math/bits"
)

// IPv6 extension headers ClampMSS walks past to find TCP.
const (
	protoIPv6HopByHop = 0
	protoIPv6Routing  = 43
	protoIPv6DstOpts  = 60

	// maxIPv6ExtHeaders bounds the extension-header walk.
	maxIPv6ExtHeaders = 8
)

// ClampMSS rewrites the MSS option of a TCP SYN or SYN-ACK inside an
// Ethernet frame (untagged or one 802.1Q tag; IPv4 or IPv6 payload, IPv6
// Hop-by-Hop, Routing, Destination Options and first-fragment headers walked)
// down to mss if it is larger, fixing the TCP checksum incrementally (RFC 1624),
// as tinc's clamp_mss does. Non-first fragments, non-TCP packets, segments
// without SYN, and malformed headers or options are left untouched. Every MSS
// option in the header is clamped. An mss of 0 changes nothing. It reports
// whether it changed the frame. It does not allocate and never panics,
// whatever the bytes.
//
// The checksum is assumed complete (not a partial offload checksum).
func ClampMSS(frame []byte, mss uint16) bool {
	if mss == 0 {
		return false
	}
	e := Ethernet(frame)
	if !e.IsValid() {
		return false
	}
	var seg []byte
	switch e.EtherType() {
	case EtherTypeIPv4:
		ip := IPv4(e.Payload())
		if !ip.IsValid() || ip.Protocol() != ProtoTCP || ip.FragmentOffset() != 0 {
			return false
		}
		seg = ip.Payload()
	case EtherTypeIPv6:
		seg = ipv6TCP(IPv6(e.Payload()))
	default:
		return false
	}
	t := TCP(seg)
	if !t.IsValid() || t.Flags()&TCPFlagSYN == 0 {
		return false
	}
	// The option walk of TCPOptionIter, inlined: this runs per SYN.
	changed := false
	opts := t.Options()
	for i := 0; i < len(opts); {
		kind := opts[i]
		if kind == TCPOptEnd {
			break
		}
		if kind == TCPOptNOP {
			i++
			continue
		}
		if i+1 >= len(opts) {
			break
		}
		n := int(opts[i+1])
		if n < 2 || n > len(opts)-i {
			break
		}
		if kind == TCPOptMSS && n == TCPOptMSSLen {
			if clampOne(t, opts[i+2:i+4], i, mss) {
				changed = true
			}
		}
		i += n
	}
	return changed
}

// clampOne lowers the MSS value v (2 bytes of t's options, the option at
// offset off in them) to mss and fixes the checksum.
func clampOne(t TCP, v []byte, off int, mss uint16) bool {
	old := binary.BigEndian.Uint16(v)
	if old <= mss {
		return false
	}
	binary.BigEndian.PutUint16(v, mss)
	// The value sits at TCP offset 20+off+2. At an odd offset its bytes
	// straddle two 16-bit words of the checksummed data; in one's-complement
	// arithmetic (2^16 = 1) that contributes the byte-swapped value, so
	// update with the swapped words.
	o, n := old, mss
	if off&1 != 0 {
		o, n = bits.ReverseBytes16(o), bits.ReverseBytes16(n)
	}
	t.SetChecksum(ChecksumUpdate(t.Checksum(), o, n))
	return true
}

// ipv6TCP returns the TCP segment of an IPv6 packet, walking the extension
// headers ClampMSS knows, or nil when there is none or it is not reachable
// (non-first fragment, unknown header, malformed).
func ipv6TCP(ip IPv6) []byte {
	if !ip.IsValid() {
		return nil
	}
	nh := ip.NextHeader()
	p := ip.Payload()
	for range maxIPv6ExtHeaders {
		switch nh {
		case ProtoTCP:
			return p
		case protoIPv6HopByHop, protoIPv6Routing, protoIPv6DstOpts:
			if len(p) < 8 {
				return nil
			}
			n := (int(p[1]) + 1) * 8
			if n > len(p) {
				return nil
			}
			nh, p = p[0], p[n:]
		case ProtoIPv6Frag:
			f := IPv6Fragment(p)
			if !f.IsValid() || f.FragmentOffset() != 0 {
				return nil
			}
			nh, p = f.NextHeader(), p[IPv6FragmentHeaderLen:]
		default:
			return nil
		}
	}
	return nil
}

// MSSForMTU returns the TCP MSS that fits an IP MTU of mtu bytes: mtu less
// the IP header (20 for IPv4, 40 for IPv6) and 20 for TCP. It returns 0 when
// mtu is too small to carry any data and 65535 at most.
func MSSForMTU(mtu int, ipv6 bool) uint16 {
	h := IPv4MinHeaderLen + TCPMinHeaderLen
	if ipv6 {
		h = IPv6HeaderLen + TCPMinHeaderLen
	}
	n := mtu - h
	switch {
	case n <= 0:
		return 0
	case n > 0xffff:
		return 0xffff
	}
	return uint16(n)
}

// ClampMSSForMTU clamps the MSS of a TCP SYN in the Ethernet frame to what
// an IP MTU of mtu carries (a VLAN tag takes from it too); mtu <= 0
// leaves the frame alone. It reports whether it lowered the MSS.
func ClampMSSForMTU(frame []byte, mtu int) bool {
	if mtu <= 0 {
		return false
	}
	eth := Ethernet(frame)
	mtu -= eth.HeaderLen() - EthernetHeaderLen
	return ClampMSS(frame, MSSForMTU(mtu, eth.EtherType() == EtherTypeIPv6))
}

// TCPOf returns the TCP segment of an Ethernet frame (IPv4 or IPv6, not a
// non-first fragment) and a key of its flow (addresses and ports, hashed),
// or false. It does not allocate and never panics, whatever the bytes.
func TCPOf(frame []byte) (TCP, uint64, bool) {
	e := Ethernet(frame)
	if !e.IsValid() {
		return nil, 0, false
	}
	var seg []byte
	var key uint64
	switch e.EtherType() {
	case EtherTypeIPv4:
		ip := IPv4(e.Payload())
		if !ip.IsValid() || ip.Protocol() != ProtoTCP || ip.FragmentOffset() != 0 {
			return nil, 0, false
		}
		seg = ip.Payload()
		key = uint64(binary.BigEndian.Uint32(ip[12:16]))<<32 | uint64(binary.BigEndian.Uint32(ip[16:20]))
	case EtherTypeIPv6:
		ip := IPv6(e.Payload())
		if seg = ipv6TCP(ip); seg == nil {
			return nil, 0, false
		}
		for i := 8; i < 40; i += 8 { // both addresses, folded
			key = key*0x9e3779b97f4a7c15 ^ binary.BigEndian.Uint64(ip[i:])
		}
	default:
		return nil, 0, false
	}
	t := TCP(seg)
	if !t.IsValid() {
		return nil, 0, false
	}
	// ports mixed in before the last multiplication, and the product's
	// high half folded down: every input bit reaches the low bits a table
	// indexes by
	key = (key ^ uint64(t.SrcPort())<<16 ^ uint64(t.DstPort())) * 0x9e3779b97f4a7c15
	return t, key ^ key>>32, true
}
