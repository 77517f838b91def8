package encap

import (
	"bytes"
	"encoding/binary"
	"net"
	"testing"

	"github.com/google/gopacket"
	"github.com/google/gopacket/layers"
)

// partialFrames returns TCP and UDP frames over IPv4 and IPv6 whose
// checksums gopacket computed, with the offset of each checksum field.
func partialFrames(t testing.TB) (frames [][]byte, fields []int) {
	payload := gopacket.Payload(bytes.Repeat([]byte("vxswitch"), 50))
	eth4 := &layers.Ethernet{SrcMAC: gpSrcMAC, DstMAC: gpDstMAC, EthernetType: layers.EthernetTypeIPv4}
	eth6 := &layers.Ethernet{SrcMAC: gpSrcMAC, DstMAC: gpDstMAC, EthernetType: layers.EthernetTypeIPv6}
	ip4 := func(p layers.IPProtocol) *layers.IPv4 {
		return &layers.IPv4{Version: 4, TTL: 64, Protocol: p, SrcIP: net.IPv4(10, 11, 129, 1), DstIP: net.IPv4(10, 11, 129, 2)}
	}
	ip6 := func(p layers.IPProtocol) *layers.IPv6 {
		return &layers.IPv6{Version: 6, HopLimit: 64, NextHeader: p, SrcIP: net.ParseIP("fd00::1"), DstIP: net.ParseIP("fd00::2")}
	}
	for _, v6 := range []bool{false, true} {
		tcp := &layers.TCP{SrcPort: 40000, DstPort: 5201, Seq: 7, SYN: true, Window: 64240}
		udp := &layers.UDP{SrcPort: 40000, DstPort: 53}
		if v6 {
			n := ip6(layers.IPProtocolTCP)
			tcp.SetNetworkLayerForChecksum(n)
			frames = append(frames, serialize(t, eth6, n, tcp, payload))
			m := ip6(layers.IPProtocolUDP)
			udp.SetNetworkLayerForChecksum(m)
			frames = append(frames, serialize(t, eth6, m, udp, payload))
			fields = append(fields, 14+40+16, 14+40+6)
		} else {
			n := ip4(layers.IPProtocolTCP)
			tcp.SetNetworkLayerForChecksum(n)
			frames = append(frames, serialize(t, eth4, n, tcp, payload))
			m := ip4(layers.IPProtocolUDP)
			udp.SetNetworkLayerForChecksum(m)
			frames = append(frames, serialize(t, eth4, m, udp, payload))
			fields = append(fields, 14+20+16, 14+20+6)
		}
	}
	return frames, fields
}

// TestFinishPartialChecksum: a frame whose checksum field holds only the
// pseudo-header sum (as Linux leaves it for offload) gets the checksum
// gopacket computes; complete and otherwise wrong checksums are untouched.
func TestFinishPartialChecksum(t *testing.T) {
	frames, fields := partialFrames(t)
	for i, want := range frames {
		f := fields[i]
		// What Linux leaves: ~csum_tcpudp_magic(..., 0), the folded
		// pseudo-header sum, computed here from the frame's own headers.
		partial := bytes.Clone(want)
		ipOff := 14
		var src, dst []byte
		var proto uint8
		if binary.BigEndian.Uint16(want[12:]) == 0x0800 {
			src, dst, proto = want[ipOff+12:ipOff+16], want[ipOff+16:ipOff+20], want[ipOff+9]
		} else {
			src, dst, proto = want[ipOff+8:ipOff+24], want[ipOff+24:ipOff+40], want[ipOff+6]
		}
		l4start := f - 16
		if proto == ProtoUDP {
			l4start = f - 6
		}
		binary.BigEndian.PutUint16(partial[f:], PseudoHeaderChecksum(proto, src, dst, uint16(len(want)-l4start)))
		if !FinishPartialChecksum(partial) {
			t.Fatalf("frame %d: not finished", i)
		}
		if !bytes.Equal(partial, want) {
			t.Errorf("frame %d: checksum %04x, gopacket's %04x", i, binary.BigEndian.Uint16(partial[f:]), binary.BigEndian.Uint16(want[f:]))
		}
		if FinishPartialChecksum(bytes.Clone(want)) {
			t.Errorf("frame %d: a complete checksum was changed", i)
		}
		bad := bytes.Clone(want)
		bad[f] ^= 0x5a
		if FinishPartialChecksum(bad) {
			t.Errorf("frame %d: a wrong (not partial) checksum was \"finished\"", i)
		}
	}
	if n := testing.AllocsPerRun(100, func() { FinishPartialChecksum(frames[0]) }); n != 0 {
		t.Errorf("%v allocations", n)
	}
}

func FuzzFinishPartialChecksum(f *testing.F) {
	frames, _ := partialFrames(f)
	for _, fr := range frames {
		f.Add(fr)
	}
	f.Fuzz(func(t *testing.T, b []byte) {
		orig := bytes.Clone(b)
		if !FinishPartialChecksum(b) {
			if !bytes.Equal(b, orig) {
				t.Fatal("changed a frame it did not finish")
			}
			return
		}
		if FinishPartialChecksum(b) {
			t.Fatal("finished twice")
		}
	})
}
