package encap

// Cross-checks against gopacket, an independent decoder and encoder.

import (
	"bytes"
	"encoding/binary"
	"net"
	"net/netip"
	"testing"

	"github.com/google/gopacket"
	"github.com/google/gopacket/layers"
)

var (
	gpSrcMAC = net.HardwareAddr{0x02, 0, 0, 0, 0, 0x01}
	gpDstMAC = net.HardwareAddr{0x02, 0, 0, 0, 0, 0x02}
)

// serialize encodes ls with lengths and checksums fixed.
func serialize(t testing.TB, ls ...gopacket.SerializableLayer) []byte {
	t.Helper()
	buf := gopacket.NewSerializeBuffer()
	if err := gopacket.SerializeLayers(buf, gopacket.SerializeOptions{FixLengths: true, ComputeChecksums: true}, ls...); err != nil {
		t.Fatalf("gopacket serialize: %v", err)
	}
	return append([]byte(nil), buf.Bytes()...)
}

// withOuterEthernet puts an Ethernet header in front of an IP packet.
func withOuterEthernet(pkt []byte, et uint16) []byte {
	f := EthernetFields{Dst: MAC{2, 0, 0, 0, 0, 0xb}, Src: MAC{2, 0, 0, 0, 0, 0xa}, EtherType: et}
	b := make([]byte, f.Len()+len(pkt))
	f.Encode(b)
	copy(b[f.Len():], pkt)
	return b
}

// TestGopacketDecodesEncapIP builds tunnel packets with EncapIP and checks
// that gopacket decodes every layer to the same values.
func TestGopacketDecodesEncapIP(t *testing.T) {
	for _, tun := range []Tunnel{{Src: testSrc4, Dst: testDst4, TTL: 33}, {Src: testSrc6, Dst: testDst6, TTL: 33}} {
		for _, n := range []int{60, 1514, 9014} {
			t.Run(tun.Src.String()+"/"+itoa(n), func(t *testing.T) {
				frame := testFrame(n, 5555)
				buf := make([]byte, 64+n)
				copy(buf[64:], frame)
				start, err := EncapIP(buf, 64, n, 0xabcdef, &tun, 0x4242)
				if err != nil {
					t.Fatalf("EncapIP() error = %v", err)
				}
				pkt := buf[start:]
				first := layers.LayerTypeIPv4
				if tun.Src.Is6() {
					first = layers.LayerTypeIPv6
				}
				p := gopacket.NewPacket(pkt, first, gopacket.Default)
				if el := p.ErrorLayer(); el != nil {
					t.Fatalf("gopacket decode error: %v", el.Error())
				}
				want := []gopacket.LayerType{first, layers.LayerTypeUDP, layers.LayerTypeVXLAN,
					layers.LayerTypeEthernet, layers.LayerTypeIPv4, layers.LayerTypeUDP, gopacket.LayerTypePayload}
				var got []gopacket.LayerType
				for _, l := range p.Layers() {
					got = append(got, l.LayerType())
				}
				if len(got) != len(want) {
					t.Fatalf("layers = %v, want %v", got, want)
				}
				for i := range got {
					if got[i] != want[i] {
						t.Fatalf("layers = %v, want %v", got, want)
					}
				}
				switch ip := p.Layers()[0].(type) {
				case *layers.IPv4:
					if ip.SrcIP.String() != tun.Src.String() || ip.DstIP.String() != tun.Dst.String() || ip.TTL != 33 ||
						ip.Id != 0x4242 || ip.Flags != 0 || ip.Protocol != layers.IPProtocolUDP || int(ip.Length) != len(pkt) {
						t.Errorf("outer IPv4 = %v->%v ttl %d id %#x flags %v proto %v len %d", ip.SrcIP, ip.DstIP, ip.TTL, ip.Id, ip.Flags, ip.Protocol, ip.Length)
					}
					// gopacket recomputes the header checksum on serialize.
					c := *ip
					re := serialize(t, &c, gopacket.Payload(ip.Payload))
					if got, want := binary.BigEndian.Uint16(pkt[10:]), binary.BigEndian.Uint16(re[10:]); got != want {
						t.Errorf("IPv4 header checksum = %#04x, gopacket computes %#04x", got, want)
					}
				case *layers.IPv6:
					if ip.SrcIP.String() != tun.Src.String() || ip.DstIP.String() != tun.Dst.String() || ip.HopLimit != 33 ||
						ip.NextHeader != layers.IPProtocolUDP || int(ip.Length) != len(pkt)-40 {
						t.Errorf("outer IPv6 = %v->%v hop %d nh %v len %d", ip.SrcIP, ip.DstIP, ip.HopLimit, ip.NextHeader, ip.Length)
					}
				}
				udp := p.Layer(layers.LayerTypeUDP).(*layers.UDP)
				if udp.DstPort != 4789 || udp.SrcPort < 49152 || int(udp.Length) != n+16 {
					t.Errorf("outer UDP = %d->%d len %d, want >=49152->4789 len %d", udp.SrcPort, udp.DstPort, udp.Length, n+16)
				}
				if tun.Src.Is6() {
					// Recompute the UDP checksum with gopacket.
					ip6 := p.Layers()[0].(*layers.IPv6)
					c := *udp
					if err := c.SetNetworkLayerForChecksum(ip6); err != nil {
						t.Fatal(err)
					}
					re := serialize(t, &c, gopacket.Payload(udp.Payload))
					if got, want := udp.Checksum, binary.BigEndian.Uint16(re[6:]); got != want {
						t.Errorf("UDP checksum over IPv6 = %#04x, gopacket computes %#04x", got, want)
					}
				} else if udp.Checksum != 0 {
					t.Errorf("UDP checksum over IPv4 = %#04x, want 0", udp.Checksum)
				}
				vx := p.Layer(layers.LayerTypeVXLAN).(*layers.VXLAN)
				if !vx.ValidIDFlag || vx.VNI != 0xabcdef || vx.GBPExtension || vx.GBPGroupPolicyID != 0 {
					t.Errorf("VXLAN = I %v VNI %#x G %v policy %d, want I true VNI 0xabcdef, no GBP", vx.ValidIDFlag, vx.VNI, vx.GBPExtension, vx.GBPGroupPolicyID)
				}
				if !bytes.Equal(vx.Payload, frame) {
					t.Errorf("VXLAN payload differs from the frame")
				}
				var inner *layers.Ethernet
				for _, l := range p.Layers() {
					if e, ok := l.(*layers.Ethernet); ok {
						inner = e
					}
				}
				if !bytes.Equal(inner.SrcMAC, gpSrcMAC) || !bytes.Equal(inner.DstMAC, gpDstMAC) || inner.EthernetType != layers.EthernetTypeIPv4 {
					t.Errorf("inner Ethernet = %v->%v %v", inner.SrcMAC, inner.DstMAC, inner.EthernetType)
				}
			})
		}
	}
}

// TestViewsDecodeGopacketFrames builds frames with gopacket and checks the
// views read the same fields.
func TestViewsDecodeGopacketFrames(t *testing.T) {
	payload := gopacket.Payload(bytes.Repeat([]byte{0x5a}, 33))
	eth := &layers.Ethernet{SrcMAC: gpSrcMAC, DstMAC: gpDstMAC, EthernetType: layers.EthernetTypeDot1Q}
	dot1q := &layers.Dot1Q{Priority: 6, VLANIdentifier: 1234, Type: layers.EthernetTypeIPv4}
	ip4 := &layers.IPv4{Version: 4, TOS: 0x2e, Id: 0x7777, Flags: layers.IPv4DontFragment, TTL: 17, Protocol: layers.IPProtocolUDP,
		SrcIP: net.IPv4(10, 1, 2, 3), DstIP: net.IPv4(10, 4, 5, 6),
		Options: []layers.IPv4Option{{OptionType: 0x94, OptionLength: 4, OptionData: []byte{0, 0}}}}
	udp := &layers.UDP{SrcPort: 1111, DstPort: 2222}
	if err := udp.SetNetworkLayerForChecksum(ip4); err != nil {
		t.Fatal(err)
	}
	b := serialize(t, eth, dot1q, ip4, udp, payload)

	e := Ethernet(b)
	if !e.IsValid() || e.VLAN() != 1234 || e.EtherType() != EtherTypeIPv4 || e.Src() != MAC(gpSrcMAC) || e.Dst() != MAC(gpDstMAC) {
		t.Fatalf("Ethernet view: valid %v vlan %d type %#x %v->%v", e.IsValid(), e.VLAN(), e.EtherType(), e.Src(), e.Dst())
	}
	if pcp := e[14] >> 5; pcp != 6 {
		t.Errorf("PCP = %d, want 6", pcp)
	}
	ip := IPv4(e.Payload())
	if !ip.IsValid() || !ip.ChecksumValid() {
		t.Fatalf("IPv4 view: valid %v checksum valid %v", ip.IsValid(), ip.ChecksumValid())
	}
	if ip.HeaderLen() != 24 || ip.TOS() != 0x2e || ip.ID() != 0x7777 || ip.Flags() != IPv4FlagDF || ip.TTL() != 17 ||
		ip.Src() != netip.MustParseAddr("10.1.2.3") || ip.Dst() != netip.MustParseAddr("10.4.5.6") {
		t.Errorf("IPv4 view: hl %d tos %#x id %#x flags %#x ttl %d %v->%v", ip.HeaderLen(), ip.TOS(), ip.ID(), ip.Flags(), ip.TTL(), ip.Src(), ip.Dst())
	}
	u := UDP(ip.Payload())
	if !u.IsValid() || u.SrcPort() != 1111 || u.DstPort() != 2222 || !bytes.Equal(u.Payload(), payload) {
		t.Errorf("UDP view: valid %v %d->%d payload %d bytes", u.IsValid(), u.SrcPort(), u.DstPort(), len(u.Payload()))
	}
	if got, want := UDPChecksum(u, ip.SrcBytes(), ip.DstBytes()), u.Checksum(); got != want {
		t.Errorf("UDPChecksum() = %#04x, gopacket wrote %#04x", got, want)
	}

	// IPv6 with a fragment header (gopacket cannot serialize one: we encode
	// it, gopacket decodes it, and both views must agree).
	ip6 := &layers.IPv6{Version: 6, TrafficClass: 0x12, FlowLabel: 0xabcde, NextHeader: layers.IPProtocolIPv6Fragment, HopLimit: 3,
		SrcIP: net.ParseIP("2001:db8::a"), DstIP: net.ParseIP("2001:db8::b")}
	fh := make([]byte, IPv6FragmentHeaderLen, IPv6FragmentHeaderLen+len(payload))
	(&IPv6FragmentFields{NextHeader: ProtoUDP, Offset: 185 * 8, More: true, ID: 0x01020304}).Encode(fh)
	b = serialize(t, &layers.Ethernet{SrcMAC: gpSrcMAC, DstMAC: gpDstMAC, EthernetType: layers.EthernetTypeIPv6}, ip6, gopacket.Payload(append(fh, payload...)))
	p := gopacket.NewPacket(b, layers.LayerTypeEthernet, gopacket.Default)
	gf, ok := p.Layer(layers.LayerTypeIPv6Fragment).(*layers.IPv6Fragment)
	if !ok {
		t.Fatalf("gopacket finds no fragment header in %v", p)
	}
	if gf.NextHeader != layers.IPProtocolUDP || gf.FragmentOffset != 185 || !gf.MoreFragments || gf.Identification != 0x01020304 {
		t.Errorf("gopacket decodes our fragment header as nh %v off %d more %v id %#x", gf.NextHeader, gf.FragmentOffset, gf.MoreFragments, gf.Identification)
	}
	v6 := IPv6(Ethernet(b).Payload())
	if !v6.IsValid() || v6.TrafficClass() != 0x12 || v6.FlowLabel() != 0xabcde || v6.HopLimit() != 3 || v6.NextHeader() != ProtoIPv6Frag ||
		v6.Src() != netip.MustParseAddr("2001:db8::a") || int(v6.PayloadLen()) != 8+len(payload) {
		t.Errorf("IPv6 view: valid %v tc %#x fl %#x hop %d nh %d src %v plen %d", v6.IsValid(), v6.TrafficClass(), v6.FlowLabel(), v6.HopLimit(), v6.NextHeader(), v6.Src(), v6.PayloadLen())
	}
	fv := IPv6Fragment(v6.Payload())
	if fv.NextHeader() != ProtoUDP || fv.FragmentOffset() != 185*8 || !fv.More() || fv.ID() != 0x01020304 {
		t.Errorf("fragment view: nh %d off %d more %v id %#x", fv.NextHeader(), fv.FragmentOffset(), fv.More(), fv.ID())
	}
}

// gpSYN builds an Ethernet(/802.1Q)/IP/TCP SYN with gopacket.
func gpSYN(t testing.TB, v6 bool, vlan uint16, flags uint8, opts []layers.TCPOption) []byte {
	t.Helper()
	tcp := &layers.TCP{SrcPort: 51000, DstPort: 22, Seq: 0xdeadbeef, Window: 64240, Options: opts,
		SYN: flags&TCPFlagSYN != 0, ACK: flags&TCPFlagACK != 0, Ack: 7}
	var ls []gopacket.SerializableLayer
	eth := &layers.Ethernet{SrcMAC: gpSrcMAC, DstMAC: gpDstMAC}
	ls = append(ls, eth)
	et := layers.EthernetTypeIPv4
	if v6 {
		et = layers.EthernetTypeIPv6
	}
	if vlan != 0 {
		eth.EthernetType = layers.EthernetTypeDot1Q
		ls = append(ls, &layers.Dot1Q{VLANIdentifier: vlan, Type: et})
	} else {
		eth.EthernetType = et
	}
	var nl gopacket.NetworkLayer
	if v6 {
		ip := &layers.IPv6{Version: 6, NextHeader: layers.IPProtocolTCP, HopLimit: 64, SrcIP: net.ParseIP("2001:db8::1"), DstIP: net.ParseIP("2001:db8::2")}
		ls, nl = append(ls, ip), ip
	} else {
		ip := &layers.IPv4{Version: 4, TTL: 64, Protocol: layers.IPProtocolTCP, SrcIP: net.IPv4(192, 0, 2, 1), DstIP: net.IPv4(192, 0, 2, 2)}
		ls, nl = append(ls, ip), ip
	}
	if err := tcp.SetNetworkLayerForChecksum(nl); err != nil {
		t.Fatal(err)
	}
	ls = append(ls, tcp, gopacket.Payload("syn data"))
	return serialize(t, ls...)
}

var (
	gpMSS = func(v uint16) layers.TCPOption {
		return layers.TCPOption{OptionType: layers.TCPOptionKindMSS, OptionLength: 4, OptionData: []byte{byte(v >> 8), byte(v)}}
	}
	gpNOP    = layers.TCPOption{OptionType: layers.TCPOptionKindNop, OptionLength: 1}
	gpWScale = layers.TCPOption{OptionType: layers.TCPOptionKindWindowScale, OptionLength: 3, OptionData: []byte{7}}
	gpSACKOK = layers.TCPOption{OptionType: layers.TCPOptionKindSACKPermitted, OptionLength: 2}
	gpTS     = layers.TCPOption{OptionType: layers.TCPOptionKindTimestamps, OptionLength: 10, OptionData: []byte{0, 1, 2, 3, 0, 0, 0, 0}}
)

// TestClampMSSGopacket builds SYNs with gopacket in many option layouts,
// clamps them, decodes them with gopacket and checks the MSS and that the
// TCP checksum equals the one gopacket computes from scratch.
func TestClampMSSGopacket(t *testing.T) {
	layouts := []struct {
		name string
		opts []layers.TCPOption
	}{
		{"mss only", []layers.TCPOption{gpMSS(1460)}},
		{"linux", []layers.TCPOption{gpMSS(1460), gpSACKOK, gpTS, gpNOP, gpWScale}},
		{"bsd", []layers.TCPOption{gpMSS(1460), gpNOP, gpWScale, gpSACKOK, gpTS}},
		{"mss after nop (odd)", []layers.TCPOption{gpNOP, gpMSS(8960), gpNOP, gpWScale}},
		{"mss after wscale (odd)", []layers.TCPOption{gpWScale, gpMSS(65495), gpSACKOK}},
		{"mss last", []layers.TCPOption{gpNOP, gpNOP, gpTS, gpSACKOK, gpWScale, gpMSS(9000)}},
		{"mss between timestamps and wscale", []layers.TCPOption{gpSACKOK, gpTS, gpMSS(1440), gpNOP, gpWScale}},
		{"mss smaller already", []layers.TCPOption{gpMSS(536), gpSACKOK}},
		{"no mss", []layers.TCPOption{gpSACKOK, gpNOP, gpWScale}},
	}
	const clamp = 1300
	for _, v6 := range []bool{false, true} {
		for _, vlan := range []uint16{0, 10} {
			for _, flags := range []uint8{TCPFlagSYN, TCPFlagSYN | TCPFlagACK, TCPFlagACK} {
				for _, l := range layouts {
					name := l.name + map[bool]string{false: "/ipv4", true: "/ipv6"}[v6] + "/vlan" + itoa(int(vlan)) + "/flags" + itoa(int(flags))
					t.Run(name, func(t *testing.T) {
						frame := gpSYN(t, v6, vlan, flags, l.opts)
						var before uint16
						for _, o := range l.opts {
							if o.OptionType == layers.TCPOptionKindMSS {
								before = binary.BigEndian.Uint16(o.OptionData)
							}
						}
						changed := ClampMSS(frame, clamp)
						wantChanged := flags&TCPFlagSYN != 0 && before > clamp
						if changed != wantChanged {
							t.Errorf("ClampMSS() = %v, want %v", changed, wantChanged)
						}
						p := gopacket.NewPacket(frame, layers.LayerTypeEthernet, gopacket.Default)
						if el := p.ErrorLayer(); el != nil {
							t.Fatalf("gopacket decode after clamp: %v", el.Error())
						}
						tcp := p.Layer(layers.LayerTypeTCP).(*layers.TCP)
						var after uint16
						for _, o := range tcp.Options {
							if o.OptionType == layers.TCPOptionKindMSS {
								after = binary.BigEndian.Uint16(o.OptionData)
							}
						}
						want := before
						if wantChanged {
							want = clamp
						}
						if after != want {
							t.Errorf("MSS after clamp = %d, want %d", after, want)
						}
						// Recompute the checksum with gopacket from the decoded
						// layers and compare with what ClampMSS left.
						c := *tcp
						if err := c.SetNetworkLayerForChecksum(p.NetworkLayer()); err != nil {
							t.Fatal(err)
						}
						re := serialize(t, &c, gopacket.Payload(tcp.Payload))
						if got, want := tcp.Checksum, binary.BigEndian.Uint16(re[16:]); got != want {
							t.Errorf("TCP checksum = %#04x, gopacket computes %#04x", got, want)
						}
						// Our option iterator agrees with gopacket's decoding.
						it := TCP(tcp.Contents).OptionIter()
						i := 0
						for o, ok := it.Next(); ok; o, ok = it.Next() {
							if i >= len(tcp.Options) || uint8(tcp.Options[i].OptionType) != o.Kind || !bytes.Equal(tcp.Options[i].OptionData, o.Data) {
								t.Fatalf("option %d: ours kind %d data % x, gopacket %v", i, o.Kind, o.Data, tcp.Options)
							}
							i++
						}
						if it.Malformed() {
							t.Errorf("option iterator reports malformed options gopacket built")
						}
					})
				}
			}
		}
	}
}

// TestTCPViewGopacket checks the TCP view against gopacket's decoding.
func TestTCPViewGopacket(t *testing.T) {
	frame := gpSYN(t, false, 0, TCPFlagSYN|TCPFlagACK, []layers.TCPOption{gpMSS(1460), gpSACKOK, gpTS, gpNOP, gpWScale})
	p := gopacket.NewPacket(frame, layers.LayerTypeEthernet, gopacket.Default)
	g := p.Layer(layers.LayerTypeTCP).(*layers.TCP)
	ip := IPv4(Ethernet(frame).Payload())
	tcp := TCP(ip.Payload())
	if !tcp.IsValid() {
		t.Fatal("IsValid() = false on a gopacket-built segment")
	}
	checks := []struct {
		name      string
		got, want any
	}{
		{"SrcPort", tcp.SrcPort(), uint16(g.SrcPort)},
		{"DstPort", tcp.DstPort(), uint16(g.DstPort)},
		{"Seq", tcp.Seq(), g.Seq},
		{"Ack", tcp.Ack(), g.Ack},
		{"HeaderLen", tcp.HeaderLen(), int(g.DataOffset) * 4},
		{"Flags", tcp.Flags(), TCPFlagSYN | TCPFlagACK},
		{"Window", tcp.Window(), g.Window},
		{"Checksum", tcp.Checksum(), g.Checksum},
		{"TCPChecksum", TCPChecksum(tcp, ip.SrcBytes(), ip.DstBytes()), g.Checksum},
		{"Payload", string(tcp.Payload()), string(g.Payload)},
	}
	for _, c := range checks {
		if c.got != c.want {
			t.Errorf("%s = %v, gopacket says %v", c.name, c.got, c.want)
		}
	}
}

func itoa(n int) string {
	if n == 0 {
		return "0"
	}
	var b [20]byte
	i := len(b)
	for n > 0 {
		i--
		b[i] = byte('0' + n%10)
		n /= 10
	}
	return string(b[i:])
}
