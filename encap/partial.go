package encap

import "encoding/binary"

// FinishPartialChecksum completes the TCP or UDP checksum of an Ethernet
// frame that a Linux sender left to offload (CHECKSUM_PARTIAL): the
// checksum field then holds only the folded pseudo-header sum, which a
// NIC would have finished on the wire, but a kernel VTEP on a veth
// carries unfinished into the tunnel. A frame whose checksum verifies,
// or is wrong in any other way, is left as it is (the receiver's stack
// counts a bad one). It reports whether it finished the checksum. It
// allocates nothing.
func FinishPartialChecksum(frame []byte) bool {
	eth := Ethernet(frame)
	if !eth.IsValid() {
		return false
	}
	off := eth.HeaderLen()
	var proto uint8
	var src, dst []byte
	var l4 []byte
	switch eth.EtherType() {
	case EtherTypeIPv4:
		ip := IPv4(frame[off:])
		if !ip.IsValid() || ip.IsFragment() || off+int(ip.TotalLen()) > len(frame) {
			return false
		}
		proto, src, dst = ip.Protocol(), ip.SrcBytes(), ip.DstBytes()
		l4 = frame[off+ip.HeaderLen() : off+int(ip.TotalLen())]
	case EtherTypeIPv6:
		ip := IPv6(frame[off:])
		if !ip.IsValid() || off+IPv6HeaderLen+int(ip.PayloadLen()) > len(frame) {
			return false
		}
		proto, src, dst = ip.NextHeader(), ip.SrcBytes(), ip.DstBytes()
		l4 = frame[off+IPv6HeaderLen : off+IPv6HeaderLen+int(ip.PayloadLen())]
	default:
		return false
	}
	var field int
	switch {
	case proto == ProtoTCP && len(l4) >= TCPMinHeaderLen:
		field = 16
	case proto == ProtoUDP && len(l4) >= UDPHeaderLen && int(binary.BigEndian.Uint16(l4[4:])) == len(l4):
		field = 6
		if binary.BigEndian.Uint16(l4[6:]) == 0 && len(src) == 4 {
			return false // IPv4 UDP without a checksum
		}
	default:
		return false
	}
	if len(l4) > 0xffff {
		return false
	}
	pseudo := PseudoHeaderChecksum(proto, src, dst, uint16(len(l4)))
	if Checksum(l4, pseudo) == 0xffff {
		return false // complete already
	}
	if binary.BigEndian.Uint16(l4[field:]) != pseudo {
		return false // wrong, and not the partial form: leave it to the stack
	}
	binary.BigEndian.PutUint16(l4[field:], 0)
	sum := ^Checksum(l4, pseudo)
	if sum == 0 && proto == ProtoUDP {
		sum = 0xffff // RFC 768: a computed 0 is sent as all ones
	}
	binary.BigEndian.PutUint16(l4[field:], sum)
	return true
}
