package link

import (
	"net/netip"

	"github.com/vxswitch/vxswitch/encap"
)

var (
	macA = encap.MAC{0x02, 0, 0, 0, 0, 0xa}
	macB = encap.MAC{0x02, 0, 0, 0, 0, 0xb}
)

// udpFrame is an Ethernet frame of size bytes: IPv4/UDP with a counting payload.
func udpFrame(dst, src encap.MAC, size int) []byte {
	f := make([]byte, size)
	eth := encap.EthernetFields{Dst: dst, Src: src, EtherType: encap.EtherTypeIPv4}
	eth.Encode(f)
	ip := encap.IPv4Fields{TotalLen: uint16(size - 14), ID: 7, TTL: 64, Protocol: encap.ProtoUDP,
		Src: netip.MustParseAddr("10.11.129.1"), Dst: netip.MustParseAddr("10.11.129.2")}
	ip.Encode(f[14:])
	u := encap.UDPFields{SrcPort: 1000, DstPort: 2000, Length: uint16(size - 34)}
	u.Encode(f[34:])
	for i := 42; i < size; i++ {
		f[i] = byte(i)
	}
	return f
}
