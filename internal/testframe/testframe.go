// Package testframe builds the Ethernet frames tests and benchmarks send
// through the switch. It allocates each frame it returns; nothing here is
// for the data path.
package testframe

import (
	"fmt"
	"net/netip"
	"testing"

	"github.com/google/gopacket"

	"github.com/vxswitch/vxswitch/encap"
)

// UDP returns an Ethernet frame of size bytes (at least 42) from src to dst
// carrying IPv4/UDP (10.11.129.1:1000 to 10.11.129.2:2000) with a
// counting payload.
func UDP(dst, src encap.MAC, size int) []byte {
	if size < 42 {
		panic(fmt.Sprintf("testframe: frame size %d below 42", size))
	}
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

// Serialize encodes layers with gopacket, lengths and checksums computed
// (a reference encoding nobody here wrote), failing tb on error.
func Serialize(tb testing.TB, ls ...gopacket.SerializableLayer) []byte {
	tb.Helper()
	buf := gopacket.NewSerializeBuffer()
	if err := gopacket.SerializeLayers(buf, gopacket.SerializeOptions{FixLengths: true, ComputeChecksums: true}, ls...); err != nil {
		tb.Fatal(err)
	}
	return buf.Bytes()
}
