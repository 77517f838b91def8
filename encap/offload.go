package encap

import "encoding/binary"

// TCPChecksumField locates the TCP checksum of an Ethernet frame that
// carries one whole, unfragmented IPv4 or IPv6 TCP segment (lengths
// agreeing with the frame, no IPv6 extension headers): it returns the
// offset of the TCP header, the folded pseudo-header sum for it, and true.
// It allocates nothing.
func TCPChecksumField(frame []byte) (tcpOff int, pseudo uint16, ok bool) {
	eth := Ethernet(frame)
	if !eth.IsValid() {
		return 0, 0, false
	}
	off := eth.HeaderLen()
	switch eth.EtherType() {
	case EtherTypeIPv4:
		ip := IPv4(frame[off:])
		if !ip.IsValid() || ip.IsFragment() || ip.Protocol() != ProtoTCP || off+int(ip.TotalLen()) != len(frame) {
			return 0, 0, false
		}
		tcpOff = off + ip.HeaderLen()
		if len(frame)-tcpOff < TCPMinHeaderLen || len(frame)-tcpOff > 0xffff {
			return 0, 0, false
		}
		return tcpOff, PseudoHeaderChecksum(ProtoTCP, ip.SrcBytes(), ip.DstBytes(), uint16(len(frame)-tcpOff)), true
	case EtherTypeIPv6:
		ip := IPv6(frame[off:])
		if !ip.IsValid() || ip.NextHeader() != ProtoTCP || off+IPv6HeaderLen+int(ip.PayloadLen()) != len(frame) {
			return 0, 0, false
		}
		tcpOff = off + IPv6HeaderLen
		if len(frame)-tcpOff < TCPMinHeaderLen {
			return 0, 0, false
		}
		return tcpOff, PseudoHeaderChecksum(ProtoTCP, ip.SrcBytes(), ip.DstBytes(), uint16(len(frame)-tcpOff)), true
	}
	return 0, 0, false
}

// FinishTCPChecksum computes the TCP checksum of frame (see
// TCPChecksumField) over whatever its field holds, as a NIC's checksum
// offload would, and reports whether frame is such a segment.
func FinishTCPChecksum(frame []byte) bool {
	tcpOff, pseudo, ok := TCPChecksumField(frame)
	if !ok {
		return false
	}
	tcp := frame[tcpOff:]
	tcp[16], tcp[17] = 0, 0
	binary.BigEndian.PutUint16(tcp[16:], ^Checksum(tcp, pseudo))
	return true
}
