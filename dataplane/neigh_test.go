package dataplane

import (
	"net"
	"net/netip"
	"testing"

	"github.com/google/gopacket"
	"github.com/google/gopacket/layers"

	"github.com/vxswitch/vxswitch/crypto"
	"github.com/vxswitch/vxswitch/encap"
	"github.com/vxswitch/vxswitch/internal/testframe"
)

// TestARPSuppression: an ARP request from the TAP for an address the
// control plane bound to a remote MAC is answered on the TAP, not sent to
// the peer; the sender's own address is snooped for the control plane; a
// request for an unknown address, and a gratuitous ARP, go out as before.
// gopacket decodes the answer.
func TestARPSuppression(t *testing.T) {
	p := newPair(t, ModePlain, crypto.SuiteAES128GCM16, 0)
	remoteMAC := encap.MAC{0x02, 0, 0, 0, 0, 0x77}
	remoteIP := netip.MustParseAddr("10.11.129.77")
	p.a.AddRemoteNeighbour(testVNI, remoteIP, remoteMAC)
	arp := func(target string, gratuitous bool) []byte {
		spa := net.IP{10, 11, 129, 1}
		if gratuitous {
			spa = net.ParseIP(target).To4()
		}
		return testframe.Serialize(t, &layers.Ethernet{SrcMAC: net.HardwareAddr(macA[:]), DstMAC: layers.EthernetBroadcast, EthernetType: layers.EthernetTypeARP},
			&layers.ARP{AddrType: layers.LinkTypeEthernet, Protocol: layers.EthernetTypeIPv4, HwAddressSize: 6, ProtAddressSize: 4,
				Operation: layers.ARPRequest, SourceHwAddress: macA[:], SourceProtAddress: spa,
				DstHwAddress: make([]byte, 6), DstProtAddress: net.ParseIP(target).To4()})
	}
	sentBefore := p.ua.Sent()
	p.send(arp("10.11.129.77", false))
	if p.ua.Sent() != sentBefore {
		t.Error("a suppressed ARP request went to the peer")
	}
	if n := p.a.segments[testVNI].ctr[cARPSuppressed].Load(); n != 1 {
		t.Fatalf("arp_suppressed %d, want 1", n)
	}
	pkt := gopacket.NewPacket(p.ta.Last(), layers.LayerTypeEthernet, gopacket.Default)
	a, ok := pkt.Layer(layers.LayerTypeARP).(*layers.ARP)
	eth, _ := pkt.Layer(layers.LayerTypeEthernet).(*layers.Ethernet)
	if !ok || eth == nil {
		t.Fatalf("the answer is not ARP: %v", pkt)
	}
	if a.Operation != layers.ARPReply || net.HardwareAddr(a.SourceHwAddress).String() != net.HardwareAddr(remoteMAC[:]).String() ||
		!net.IP(a.SourceProtAddress).Equal(remoteIP.AsSlice()) || !net.IP(a.DstProtAddress).Equal(net.IP{10, 11, 129, 1}) ||
		eth.DstMAC.String() != net.HardwareAddr(macA[:]).String() {
		t.Errorf("answer %+v (Ethernet %v -> %v)", a, eth.SrcMAC, eth.DstMAC)
	}
	if ip := p.a.neigh.localIP(testVNI, macA); ip != netip.MustParseAddr("10.11.129.1") {
		t.Errorf("snooped %v for the sender", ip)
	}
	p.send(arp("10.11.129.99", false), arp("10.11.129.77", true))
	if got := p.ua.Sent() - sentBefore; got != 2 {
		t.Errorf("%d frames to the peer for an unknown target and a gratuitous ARP, want 2", got)
	}
}

// TestNDSuppression: a neighbour solicitation for a bound IPv6 address is
// answered with a neighbour advertisement that gopacket decodes, with a
// valid ICMPv6 checksum.
func TestNDSuppression(t *testing.T) {
	p := newPair(t, ModePlain, crypto.SuiteAES128GCM16, 0)
	remoteMAC := encap.MAC{0x02, 0, 0, 0, 0, 0x66}
	target := netip.MustParseAddr("2001:db8:129::66")
	p.a.AddRemoteNeighbour(testVNI, target, remoteMAC)
	src := net.ParseIP("2001:db8:129::1")
	ip6 := &layers.IPv6{Version: 6, NextHeader: layers.IPProtocolICMPv6, HopLimit: 255, SrcIP: src, DstIP: net.ParseIP("ff02::1:ff00:66")}
	icmp := &layers.ICMPv6{TypeCode: layers.CreateICMPv6TypeCode(layers.ICMPv6TypeNeighborSolicitation, 0)}
	icmp.SetNetworkLayerForChecksum(ip6)
	ns := &layers.ICMPv6NeighborSolicitation{TargetAddress: target.AsSlice(),
		Options: layers.ICMPv6Options{{Type: layers.ICMPv6OptSourceAddress, Data: macA[:]}}}
	frame := testframe.Serialize(t, &layers.Ethernet{SrcMAC: net.HardwareAddr(macA[:]), DstMAC: net.HardwareAddr{0x33, 0x33, 0xff, 0, 0, 0x66}, EthernetType: layers.EthernetTypeIPv6},
		ip6, icmp, ns)
	sentBefore := p.ua.Sent()
	p.send(frame)
	if p.ua.Sent() != sentBefore {
		t.Error("a suppressed solicitation went to the peer")
	}
	pkt := gopacket.NewPacket(p.ta.Last(), layers.LayerTypeEthernet, gopacket.Default)
	na, ok := pkt.Layer(layers.LayerTypeICMPv6NeighborAdvertisement).(*layers.ICMPv6NeighborAdvertisement)
	if !ok {
		t.Fatalf("no neighbour advertisement: %v", pkt)
	}
	if !na.TargetAddress.Equal(target.AsSlice()) || !na.Solicited() || !na.Override() || len(na.Options) != 1 ||
		net.HardwareAddr(na.Options[0].Data).String() != net.HardwareAddr(remoteMAC[:]).String() {
		t.Errorf("advertisement %+v", na)
	}
	// Verify the checksum as the receiving host would.
	got := pkt.Layer(layers.LayerTypeICMPv6).(*layers.ICMPv6)
	rip := pkt.Layer(layers.LayerTypeIPv6).(*layers.IPv6)
	check := &layers.ICMPv6{TypeCode: got.TypeCode}
	check.SetNetworkLayerForChecksum(rip)
	re := testframe.Serialize(t, check, gopacket.Payload(got.Payload))
	if re[2] != got.LayerContents()[2] || re[3] != got.LayerContents()[3] {
		t.Errorf("ICMPv6 checksum %x%x, want %x%x", got.LayerContents()[2], got.LayerContents()[3], re[2], re[3])
	}
	if !rip.SrcIP.Equal(target.AsSlice()) || !rip.DstIP.Equal(src) || rip.HopLimit != 255 {
		t.Errorf("IPv6 %v -> %v hop limit %d", rip.SrcIP, rip.DstIP, rip.HopLimit)
	}
}

// TestControlPlaneCapacity: a control plane's entries have a capacity of
// their own: 150,000 remote MACs in one segment are all installed and
// found, and local learning keeps its own bound beside them.
func TestControlPlaneCapacity(t *testing.T) {
	p := newPair(t, ModePlain, crypto.SuiteAES128GCM16, 0)
	const n = 150000
	mac := func(i int) encap.MAC {
		return encap.MAC{0x02, 0xcc, byte(i >> 24), byte(i >> 16), byte(i >> 8), byte(i)}
	}
	for i := 0; i < n; i++ {
		if err := p.a.AddRemoteMAC(testVNI, mac(i), "b"); err != nil {
			t.Fatalf("remote MAC %d: %v", i, err)
		}
	}
	for _, i := range []int{0, 1, n / 2, n - 1} {
		if port, ok := p.a.fdb.Lookup(testVNI, mac(i)); !ok || port == 0 {
			t.Errorf("remote MAC %d not found (port %d)", i, port)
		}
	}
	// Learning on the TAP still works next to them.
	p.send(testFrame(macB, macA, 100))
	if port, ok := p.a.fdb.Lookup(testVNI, macA); !ok || port != 0 {
		t.Errorf("local MAC not learnt beside %d control-plane entries", n)
	}
}
