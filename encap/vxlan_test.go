package encap

import (
	"bytes"
	"errors"
	"net/netip"
	"testing"
)

// vxlanPacket is a VXLAN header (I flag, VNI 123) and a minimal inner
// Ethernet header (ARP EtherType, no payload):
//
//	0000  08 00 00 00 00 00 7b 00 ff ff ff ff ff ff 02 00  ......{.........
//	0010  00 00 00 01 08 06                                ......
var vxlanPacket = []byte{
	0x08, 0x00, 0x00, 0x00, 0x00, 0x00, 0x7b, 0x00,
	0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0x02, 0x00, 0x00, 0x00, 0x00, 0x01, 0x08, 0x06,
}

// testFrame returns an Ethernet/IPv4/UDP frame of n bytes (n >= 42) from
// 10.0.0.1:sport to 10.0.0.2:9999 with a patterned payload.
func testFrame(n int, sport uint16) []byte {
	b := make([]byte, n)
	eth := EthernetFields{Dst: MAC{2, 0, 0, 0, 0, 2}, Src: MAC{2, 0, 0, 0, 0, 1}, EtherType: EtherTypeIPv4}
	eth.Encode(b)
	ip := IPv4Fields{TotalLen: uint16(n - 14), ID: 7, TTL: 64, Protocol: ProtoUDP,
		Src: netip.MustParseAddr("10.0.0.1"), Dst: netip.MustParseAddr("10.0.0.2")}
	ip.Encode(b[14:])
	for i := 42; i < n; i++ {
		b[i] = byte(i * 7)
	}
	u := UDPFields{SrcPort: sport, DstPort: 9999, Length: uint16(n - 34)}
	u.Encode(b[34:])
	UDP(b[34:]).SetChecksum(UDPChecksum(b[34:], b[26:30], b[30:34]))
	return b
}

func TestVXLANView(t *testing.T) {
	v := VXLAN(vxlanPacket)
	if !v.IsValid() {
		t.Fatal("IsValid() = false, want true")
	}
	if VXLAN(vxlanPacket[:7]).IsValid() {
		t.Error("IsValid() on 7 bytes = true, want false")
	}
	if !v.HasVNI() {
		t.Error("HasVNI() = false, want true")
	}
	if got := v.VNI(); got != 123 {
		t.Errorf("VNI() = %d, want 123", got)
	}
	if got := v.Payload(); !bytes.Equal(got, vxlanPacket[8:]) {
		t.Errorf("Payload() = % x, want % x", got, vxlanPacket[8:])
	}
}

func TestEncodeVXLAN(t *testing.T) {
	tests := []struct {
		name string
		vni  VNI
		want []byte
	}{
		{"vni 123", 123, vxlanPacket[:8]},
		{"vni 0", 0, []byte{8, 0, 0, 0, 0, 0, 0, 0}},
		{"max vni", MaxVNI, []byte{8, 0, 0, 0, 0xff, 0xff, 0xff, 0}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			b := []byte{0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff}
			EncodeVXLAN(b, tt.vni)
			if !bytes.Equal(b, tt.want) {
				t.Errorf("EncodeVXLAN(%d) = % x, want % x (reserved bits zero)", tt.vni, b, tt.want)
			}
		})
	}
}

func TestDecapVXLAN(t *testing.T) {
	mod := func(f func(b []byte)) []byte { b := append([]byte(nil), vxlanPacket...); f(b); return b }
	tests := []struct {
		name    string
		b       []byte
		vni     VNI
		frame   []byte
		wantErr error
	}{
		{"plain", vxlanPacket, 123, vxlanPacket[8:], nil},
		{"reserved bits ignored", mod(func(b []byte) { b[0], b[1], b[2], b[3], b[7] = 0xff, 0xff, 0xff, 0xff, 0xff }), 123, vxlanPacket[8:], nil},
		{"max vni", mod(func(b []byte) { b[4], b[5], b[6] = 0xff, 0xff, 0xff }), MaxVNI, vxlanPacket[8:], nil},
		{"no I flag", mod(func(b []byte) { b[0] = 0xf7 }), 0, nil, ErrNoVNI},
		{"header only", vxlanPacket[:8], 0, nil, ErrTruncated},
		{"inner frame short", vxlanPacket[:21], 0, nil, ErrTruncated},
		{"empty", nil, 0, nil, ErrTruncated},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			vni, frame, err := DecapVXLAN(tt.b)
			if !errors.Is(err, tt.wantErr) {
				t.Fatalf("DecapVXLAN() error = %v, want %v", err, tt.wantErr)
			}
			if vni != tt.vni || !bytes.Equal(frame, tt.frame) {
				t.Errorf("DecapVXLAN() = %d, % x, want %d, % x", vni, frame, tt.vni, tt.frame)
			}
		})
	}
}

func TestEncapVXLAN(t *testing.T) {
	frame := testFrame(60, 1000)
	buf := make([]byte, 16+len(frame))
	copy(buf[16:], frame)
	start, err := EncapVXLAN(buf, 16, 0x123456)
	if err != nil {
		t.Fatalf("EncapVXLAN() error = %v", err)
	}
	if start != 8 {
		t.Errorf("EncapVXLAN() start = %d, want 8", start)
	}
	vni, got, err := DecapVXLAN(buf[start:])
	if err != nil || vni != 0x123456 || !bytes.Equal(got, frame) {
		t.Errorf("DecapVXLAN(EncapVXLAN()) = %#x, %d bytes, %v, want 0x123456, the frame, nil", vni, len(got), err)
	}
	if _, err := EncapVXLAN(buf, 7, 1); !errors.Is(err, ErrNoHeadroom) {
		t.Errorf("EncapVXLAN(off 7) error = %v, want %v", err, ErrNoHeadroom)
	}
	if _, err := EncapVXLAN(buf, len(buf)+1, 1); !errors.Is(err, ErrTruncated) {
		t.Errorf("EncapVXLAN(off past end) error = %v, want %v", err, ErrTruncated)
	}
}

func TestEncapDecapIP(t *testing.T) {
	tests := []struct {
		name     string
		tun      Tunnel
		frameLen int
		overhead int
		ttl      uint8
	}{
		{"ipv4 min frame", Tunnel{Src: testSrc4, Dst: testDst4}, 60, 36, 64},
		{"ipv4 1514", Tunnel{Src: testSrc4, Dst: testDst4, TTL: 9}, 1514, 36, 9},
		{"ipv4 jumbo", Tunnel{Src: testSrc4, Dst: testDst4}, 9014, 36, 64},
		{"ipv6 min frame", Tunnel{Src: testSrc6, Dst: testDst6}, 60, 56, 64},
		{"ipv6 1514", Tunnel{Src: testSrc6, Dst: testDst6, TTL: 255}, 1514, 56, 255},
		{"ipv6 odd length", Tunnel{Src: testSrc6, Dst: testDst6}, 61, 56, 64},
		{"ipv4-mapped ipv6", Tunnel{Src: netip.MustParseAddr("::ffff:192.0.2.1"), Dst: netip.MustParseAddr("::ffff:192.0.2.2")}, 100, 56, 64},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			if got := tt.tun.Overhead(); got != tt.overhead {
				t.Errorf("Overhead() = %d, want %d", got, tt.overhead)
			}
			const headroom = 64
			frame := testFrame(tt.frameLen, 4242)
			buf := make([]byte, headroom+len(frame)+10) // tailroom must be ignored
			copy(buf[headroom:], frame)
			start, err := EncapIP(buf, headroom, len(frame), 77, &tt.tun, 0xabcd)
			if err != nil {
				t.Fatalf("EncapIP() error = %v", err)
			}
			if want := headroom - tt.overhead; start != want {
				t.Errorf("EncapIP() start = %d, want %d", start, want)
			}
			pkt := buf[start : headroom+len(frame)]
			var udp UDP
			if tt.tun.Src.Is4() {
				ip := IPv4(pkt)
				if !ip.IsValid() || !ip.ChecksumValid() {
					t.Fatalf("outer IPv4 IsValid %v ChecksumValid %v, want both true", ip.IsValid(), ip.ChecksumValid())
				}
				if ip.ID() != 0xabcd || ip.TTL() != tt.ttl || ip.Flags() != 0 || int(ip.TotalLen()) != len(pkt) {
					t.Errorf("outer IPv4 id %#x ttl %d flags %#x len %d, want 0xabcd %d 0 %d", ip.ID(), ip.TTL(), ip.Flags(), ip.TotalLen(), tt.ttl, len(pkt))
				}
				udp = UDP(ip.Payload())
				if udp.Checksum() != 0 {
					t.Errorf("UDP checksum over IPv4 = %#04x, want 0", udp.Checksum())
				}
			} else {
				ip := IPv6(pkt)
				if !ip.IsValid() || ip.HopLimit() != tt.ttl || int(ip.PayloadLen()) != len(pkt)-40 {
					t.Fatalf("outer IPv6 valid %v hop limit %d payload %d, want true %d %d", ip.IsValid(), ip.HopLimit(), ip.PayloadLen(), tt.ttl, len(pkt)-40)
				}
				udp = UDP(ip.Payload())
				if got := UDPChecksum(udp, ip.SrcBytes(), ip.DstBytes()); got != udp.Checksum() || got == 0 {
					t.Errorf("UDP checksum over IPv6 = %#04x, want %#04x (non-zero)", udp.Checksum(), got)
				}
			}
			if sp := udp.SrcPort(); sp < 49152 || sp != SourcePort(FlowHash(frame)) {
				t.Errorf("UDP source port = %d, want SourcePort(FlowHash(frame)) = %d", sp, SourcePort(FlowHash(frame)))
			}

			var d Decap
			if err := DecapIP(pkt, &d); err != nil {
				t.Fatalf("DecapIP() error = %v", err)
			}
			if d.Src != tt.tun.Src || d.Dst != tt.tun.Dst || d.VNI != 77 || d.SrcPort != udp.SrcPort() {
				t.Errorf("DecapIP() = %v sport %d, want %v->%v vni 77 sport %d", &d, d.SrcPort, tt.tun.Src, tt.tun.Dst, udp.SrcPort())
			}
			if !bytes.Equal(d.Frame, frame) {
				t.Errorf("DecapIP() frame differs from the encapsulated frame (%d vs %d bytes)", len(d.Frame), len(frame))
			}
		})
	}
}

func TestEncapIPErrors(t *testing.T) {
	tests := []struct {
		name          string
		buf           []byte
		off, frameLen int
		tun           Tunnel
		want          error
	}{
		{"no headroom v4", make([]byte, 100), 35, 60, Tunnel{Src: testSrc4, Dst: testDst4}, ErrNoHeadroom},
		{"no headroom v6", make([]byte, 200), 55, 60, Tunnel{Src: testSrc6, Dst: testDst6}, ErrNoHeadroom},
		{"frame past end", make([]byte, 100), 36, 65, Tunnel{Src: testSrc4, Dst: testDst4}, ErrTruncated},
		{"negative length", make([]byte, 100), 36, -1, Tunnel{Src: testSrc4, Dst: testDst4}, ErrTruncated},
		{"negative offset", make([]byte, 100), -1, 10, Tunnel{Src: testSrc4, Dst: testDst4}, ErrTruncated},
		{"mixed families", make([]byte, 200), 64, 60, Tunnel{Src: testSrc4, Dst: testDst6}, ErrTunnelAddrs},
		{"zero tunnel", make([]byte, 200), 64, 60, Tunnel{}, ErrTunnelAddrs},
		{"v4 too big", make([]byte, 70000), 36, 65500, Tunnel{Src: testSrc4, Dst: testDst4}, ErrFrameTooBig},
		{"v6 too big", make([]byte, 70000), 56, 65530, Tunnel{Src: testSrc6, Dst: testDst6}, ErrFrameTooBig},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			if _, err := EncapIP(tt.buf, tt.off, tt.frameLen, 1, &tt.tun, 0); !errors.Is(err, tt.want) {
				t.Errorf("EncapIP() error = %v, want %v", err, tt.want)
			}
		})
	}
}

// encapped returns a tunnel-inner IPv4 packet carrying a 60-byte frame.
func encapped(t testing.TB, tun Tunnel) []byte {
	t.Helper()
	frame := testFrame(60, 1)
	buf := make([]byte, 64+len(frame))
	copy(buf[64:], frame)
	start, err := EncapIP(buf, 64, len(frame), 5, &tun, 1)
	if err != nil {
		t.Fatalf("EncapIP() error = %v", err)
	}
	return buf[start:]
}

func TestDecapIPErrors(t *testing.T) {
	v4 := func(f func(b []byte)) []byte { b := encapped(t, Tunnel{Src: testSrc4, Dst: testDst4}); f(b); return b }
	v6 := func(f func(b []byte)) []byte { b := encapped(t, Tunnel{Src: testSrc6, Dst: testDst6}); f(b); return b }
	tests := []struct {
		name string
		pkt  []byte
		want error
	}{
		{"empty", nil, ErrTruncated},
		{"version 5", []byte{0x50, 0, 0, 0}, ErrMalformed},
		{"v4 short", v4(func([]byte) {})[:19], ErrMalformed},
		{"v4 total length past end", v4(func(b []byte) { b[2] = 0xff }), ErrMalformed},
		{"v4 fragment MF", v4(func(b []byte) { b[6] = 0x20 }), ErrFragment},
		{"v4 fragment offset", v4(func(b []byte) { b[7] = 1 }), ErrFragment},
		{"v4 not UDP", v4(func(b []byte) { b[9] = ProtoTCP }), ErrNotVXLAN},
		{"v4 wrong port", v4(func(b []byte) { b[22] = 0 }), ErrNotVXLAN},
		{"v4 UDP length 7", v4(func(b []byte) { b[24], b[25] = 0, 7 }), ErrTruncated},
		{"v4 UDP length past IP", v4(func(b []byte) { b[24], b[25] = 0xff, 0xff }), ErrTruncated},
		{"v4 no I flag", v4(func(b []byte) { b[28] = 0 }), ErrNoVNI},
		{"v4 inner frame short", v4(func(b []byte) { b[2], b[3], b[24], b[25] = 0, 20+8+8+13, 0, 8+8+13 }), ErrTruncated},
		{"v6 short", v6(func([]byte) {})[:39], ErrMalformed},
		{"v6 payload past end", v6(func(b []byte) { b[4] = 0xff }), ErrMalformed},
		{"v6 fragment header", v6(func(b []byte) { b[6] = ProtoIPv6Frag }), ErrFragment},
		{"v6 not UDP", v6(func(b []byte) { b[6] = ProtoICMPv6 }), ErrNotVXLAN},
		{"v6 wrong port", v6(func(b []byte) { b[43] = 0 }), ErrNotVXLAN},
		{"v6 no I flag", v6(func(b []byte) { b[48] = 0x80 }), ErrNoVNI},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			d := Decap{VNI: 99}
			if err := DecapIP(tt.pkt, &d); !errors.Is(err, tt.want) {
				t.Errorf("DecapIP() error = %v, want %v", err, tt.want)
			}
		})
	}
}

func TestFlowHash(t *testing.T) {
	base := testFrame(100, 1000)
	mod := func(f func(b []byte)) []byte { b := append([]byte(nil), base...); f(b); return b }
	same := []struct {
		name string
		b    []byte
	}{
		{"payload differs", mod(func(b []byte) { b[60] ^= 0xff })},
		{"ip id and ttl differ", mod(func(b []byte) { b[19] = 9; b[22] = 1 })},
	}
	for _, tt := range same {
		t.Run(tt.name, func(t *testing.T) {
			if got, want := FlowHash(tt.b), FlowHash(base); got != want {
				t.Errorf("FlowHash() = %#x, want %#x (same flow)", got, want)
			}
		})
	}
	// A fragment's "port" bytes are payload: they must not split the flow.
	fragA := mod(func(b []byte) { b[20] = 0x20 })                // MF
	fragB := mod(func(b []byte) { b[20] = 0x20; b[35] ^= 0xff }) // MF, other sport
	if FlowHash(fragA) != FlowHash(fragB) {
		t.Errorf("fragments of one datagram with different port bytes hash differently")
	}
	differ := []struct {
		name string
		b    []byte
	}{
		{"source port", testFrame(100, 1001)},
		{"source MAC", mod(func(b []byte) { b[11] = 9 })},
		{"dst ip", mod(func(b []byte) { b[33] = 9 })},
		{"protocol", mod(func(b []byte) { b[23] = ProtoTCP })},
	}
	for _, tt := range differ {
		t.Run(tt.name, func(t *testing.T) {
			if FlowHash(tt.b) == FlowHash(base) {
				t.Errorf("FlowHash() equal for a different %s", tt.name)
			}
		})
	}
	// Garbage never panics and still hashes.
	for _, b := range [][]byte{nil, {1}, base[:13], base[:14], base[:33], mod(func(b []byte) { b[12], b[13] = 0x86, 0xdd })} {
		_ = FlowHash(b)
	}
}

func TestSourcePort(t *testing.T) {
	for _, h := range []uint32{0, 1, 0xffff, 0x10000, 0xffffffff, 0xdeadbeef} {
		if p := SourcePort(h); p < 49152 {
			t.Errorf("SourcePort(%#x) = %d, want >= 49152", h, p)
		}
	}
	// Spread: 1000 flows should use many distinct ports.
	seen := map[uint16]bool{}
	for i := range 1000 {
		seen[SourcePort(FlowHash(testFrame(60, uint16(i))))] = true
	}
	if len(seen) < 900 {
		t.Errorf("1000 flows map to %d source ports, want at least 900", len(seen))
	}
}

func TestEncapDecapNoAllocs(t *testing.T) {
	frame := testFrame(1514, 1234)
	buf := make([]byte, 64+len(frame))
	for _, tun := range []Tunnel{{Src: testSrc4, Dst: testDst4}, {Src: testSrc6, Dst: testDst6}} {
		copy(buf[64:], frame)
		var start int
		if n := testing.AllocsPerRun(100, func() {
			start, _ = EncapIP(buf, 64, len(frame), 9, &tun, 1)
		}); n != 0 {
			t.Errorf("EncapIP(%v) allocs = %v, want 0", tun.Src, n)
		}
		var d Decap
		pkt := buf[start:]
		if n := testing.AllocsPerRun(100, func() {
			if err := DecapIP(pkt, &d); err != nil {
				t.Fatal(err)
			}
		}); n != 0 {
			t.Errorf("DecapIP(%v) allocs = %v, want 0", tun.Src, n)
		}
		bad := append([]byte(nil), pkt...)
		bad[0] = 0x70
		if n := testing.AllocsPerRun(100, func() { _ = DecapIP(bad, &d) }); n != 0 {
			t.Errorf("DecapIP(malformed) allocs = %v, want 0", n)
		}
	}
	if n := testing.AllocsPerRun(100, func() { _, _ = EncapVXLAN(buf, 64, 9) }); n != 0 {
		t.Errorf("EncapVXLAN allocs = %v, want 0", n)
	}
	copy(buf[64:], frame)
	start, _ := EncapVXLAN(buf, 64, 9)
	if n := testing.AllocsPerRun(100, func() {
		if _, _, err := DecapVXLAN(buf[start:]); err != nil {
			t.Fatal(err)
		}
	}); n != 0 {
		t.Errorf("DecapVXLAN allocs = %v, want 0", n)
	}
	if n := testing.AllocsPerRun(100, func() { _ = FlowHash(frame) }); n != 0 {
		t.Errorf("FlowHash allocs = %v, want 0", n)
	}
}

func TestFlowHashIPv6(t *testing.T) {
	base := synFrame(synSpec{ipv6: true, opts: optLinux})
	mod := func(f func(b []byte)) []byte { b := append([]byte(nil), base...); f(b); return b }
	const ip, l4 = 14, 14 + 40
	if got, want := FlowHash(mod(func(b []byte) { b[l4+4] ^= 1; b[ip+7] = 1 })), FlowHash(base); got != want {
		t.Errorf("FlowHash() = %#x, want %#x (seq and hop limit are not flow identity)", got, want)
	}
	for _, tt := range []struct {
		name string
		b    []byte
	}{
		{"source port", mod(func(b []byte) { b[l4+1] ^= 1 })},
		{"destination port", mod(func(b []byte) { b[l4+3] ^= 1 })},
		{"source address", mod(func(b []byte) { b[ip+23] ^= 1 })},
		{"destination address, high half", mod(func(b []byte) { b[ip+24] ^= 1 })},
		{"destination address, low half", mod(func(b []byte) { b[ip+39] ^= 1 })},
		{"next header", mod(func(b []byte) { b[ip+6] = ProtoUDP })},
	} {
		t.Run(tt.name, func(t *testing.T) {
			if FlowHash(tt.b) == FlowHash(base) {
				t.Errorf("FlowHash() equal for a different %s", tt.name)
			}
		})
	}
}
