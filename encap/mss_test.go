package encap

import (
	"bytes"
	"encoding/binary"
	"testing"
)

// synSpec describes a TCP segment in an Ethernet frame for ClampMSS tests.
type synSpec struct {
	ipv6     bool
	vlan     uint16
	flags    uint8
	opts     []byte
	proto    uint8  // 0: TCP
	ipv4Opts int    // bytes of IPv4 options (multiple of 4)
	v4Frag   uint16 // IPv4 flags/offset word
	v6Ext    []byte // IPv6 extension headers before TCP; the first byte of each is patched
	v6ExtNH  []uint8
}

// synFrame builds the frame with a correct TCP checksum.
func synFrame(s synSpec) []byte {
	flags := s.flags
	if flags == 0 {
		flags = TCPFlagSYN
	}
	proto := s.proto
	if proto == 0 {
		proto = ProtoTCP
	}
	tf := TCPFields{SrcPort: 40000, DstPort: 443, Seq: 0x01020304, Flags: flags, Window: 65535, Options: s.opts}
	payload := []byte("data")
	eth := EthernetFields{Dst: MAC{2, 0, 0, 0, 0, 2}, Src: MAC{2, 0, 0, 0, 0, 1}, VLAN: s.vlan, EtherType: EtherTypeIPv4}
	if s.ipv6 {
		eth.EtherType = EtherTypeIPv6
	}
	segLen := tf.Len() + len(payload)
	var ipLen int
	if s.ipv6 {
		ipLen = IPv6HeaderLen + len(s.v6Ext)
	} else {
		ipLen = IPv4MinHeaderLen + s.ipv4Opts
	}
	b := make([]byte, eth.Len()+ipLen+segLen)
	eth.Encode(b)
	ipb := b[eth.Len():]
	seg := ipb[ipLen:]
	tf.Encode(seg)
	copy(seg[tf.Len():], payload)
	if s.ipv6 {
		nh := proto
		if len(s.v6Ext) > 0 {
			nh = s.v6ExtNH[0]
		}
		f := IPv6Fields{PayloadLen: uint16(len(s.v6Ext) + segLen), NextHeader: nh, HopLimit: 64, Src: testSrc6, Dst: testDst6}
		f.Encode(ipb)
		copy(ipb[IPv6HeaderLen:], s.v6Ext)
		TCP(seg).SetChecksum(TCPChecksum(seg, IPv6(ipb).SrcBytes(), IPv6(ipb).DstBytes()))
	} else {
		f := IPv4Fields{TotalLen: uint16(ipLen + segLen), TTL: 64, Protocol: proto, Src: testSrc4, Dst: testDst4}
		f.Encode(ipb)
		ipb[0] = 0x40 | byte(ipLen/4)
		binary.BigEndian.PutUint16(ipb[6:], s.v4Frag)
		for i := IPv4MinHeaderLen; i < ipLen; i++ {
			ipb[i] = 1 // NOP options
		}
		IPv4(ipb).SetChecksum(IPv4(ipb).CalculateChecksum())
		TCP(seg).SetChecksum(TCPChecksum(seg, IPv4(ipb).SrcBytes(), IPv4(ipb).DstBytes()))
	}
	return b
}

// tcpOf finds the TCP segment and pseudo-header addresses of a frame built
// by synFrame.
func tcpOf(t *testing.T, frame []byte, s synSpec) (seg, src, dst []byte) {
	t.Helper()
	p := Ethernet(frame).Payload()
	if s.ipv6 {
		ip := IPv6(p)
		return ip.Payload()[len(s.v6Ext):], ip.SrcBytes(), ip.DstBytes()
	}
	ip := IPv4(p)
	return ip.Payload(), ip.SrcBytes(), ip.DstBytes()
}

// mssValues returns the values of all MSS options of a segment.
func mssValues(seg []byte) []uint16 {
	var v []uint16
	it := TCP(seg).OptionIter()
	for o, ok := it.Next(); ok; o, ok = it.Next() {
		if o.Kind == TCPOptMSS && len(o.Data) == 2 {
			v = append(v, binary.BigEndian.Uint16(o.Data))
		}
	}
	return v
}

var (
	optMSS1460    = []byte{0x02, 0x04, 0x05, 0xb4}
	optLinux      = []byte{0x02, 0x04, 0x05, 0xb4, 0x04, 0x02, 0x08, 0x0a, 0, 0, 0, 1, 0, 0, 0, 0, 0x01, 0x03, 0x03, 0x07}
	optNOPThenMSS = []byte{0x01, 0x02, 0x04, 0x23, 0x8c, 0x01, 0x01, 0x00} // MSS 9100 at odd offset 1
	optMSSLast    = []byte{0x01, 0x01, 0x04, 0x02, 0x01, 0x03, 0x03, 0x07, 0x01, 0x02, 0x04, 0xff, 0xd7}
	optTwoMSS     = []byte{0x02, 0x04, 0x05, 0xb4, 0x01, 0x02, 0x04, 0x04, 0x00, 0x00, 0x00, 0x00}
	optMSSBadLen  = []byte{0x02, 0x05, 0x05, 0xb4, 0x00, 0x00, 0x00, 0x00}
	optBadThenMSS = []byte{0xfe, 0x00, 0x02, 0x04, 0x05, 0xb4, 0x00, 0x00}
	optNoMSS      = []byte{0x04, 0x02, 0x01, 0x03, 0x03, 0x07}
	optEndThenMSS = []byte{0x00, 0x00, 0x00, 0x00, 0x02, 0x04, 0x05, 0xb4}
	// IPv6 hop-by-hop (8 bytes, PadN) then a first fragment header.
	v6HopFrag     = []byte{ProtoIPv6Frag, 0, 0x01, 0x04, 0, 0, 0, 0, ProtoTCP, 0, 0x00, 0x01, 0, 0, 0, 7}
	v6HopFragNext = []byte{ProtoIPv6Frag, 0, 0x01, 0x04, 0, 0, 0, 0, ProtoTCP, 0, 0x05, 0xa9, 0, 0, 0, 7}
)

func TestClampMSS(t *testing.T) {
	tests := []struct {
		name    string
		s       synSpec
		mss     uint16
		changed bool
		want    []uint16 // MSS values after
	}{
		{"ipv4 syn", synSpec{opts: optMSS1460}, 1360, true, []uint16{1360}},
		{"ipv4 syn linux options", synSpec{opts: optLinux}, 1360, true, []uint16{1360}},
		{"ipv4 syn-ack", synSpec{flags: TCPFlagSYN | TCPFlagACK, opts: optLinux}, 1000, true, []uint16{1000}},
		{"ipv4 already smaller", synSpec{opts: optMSS1460}, 1500, false, []uint16{1460}},
		{"ipv4 equal", synSpec{opts: optMSS1460}, 1460, false, []uint16{1460}},
		{"ack without syn", synSpec{flags: TCPFlagACK, opts: optMSS1460}, 1360, false, []uint16{1460}},
		{"rst", synSpec{flags: TCPFlagRST, opts: optMSS1460}, 1360, false, []uint16{1460}},
		{"mss 0 is a no-op", synSpec{opts: optMSS1460}, 0, false, []uint16{1460}},
		{"vlan tagged", synSpec{vlan: 42, opts: optLinux}, 1360, true, []uint16{1360}},
		{"ipv4 options", synSpec{ipv4Opts: 8, opts: optLinux}, 1360, true, []uint16{1360}},
		{"odd offset after NOP", synSpec{opts: optNOPThenMSS}, 1400, true, []uint16{1400}},
		{"odd offset last", synSpec{opts: optMSSLast}, 1234, true, []uint16{1234}},
		{"two MSS options both clamped", synSpec{opts: optTwoMSS}, 1000, true, []uint16{1000, 1000}},
		{"one of two MSS options", synSpec{opts: optTwoMSS}, 1400, true, []uint16{1400, 1024}},
		{"MSS with bad length", synSpec{opts: optMSSBadLen}, 1000, false, nil},
		{"MSS after malformed option", synSpec{opts: optBadThenMSS}, 1000, false, nil},
		{"MSS after End", synSpec{opts: optEndThenMSS}, 1000, false, nil},
		{"no MSS option", synSpec{opts: optNoMSS}, 1000, false, nil},
		{"no options", synSpec{}, 1000, false, nil},
		{"ipv4 first fragment", synSpec{v4Frag: 0x2000, opts: optMSS1460}, 1360, true, []uint16{1360}},
		{"ipv4 non-first fragment", synSpec{v4Frag: 0x2001, opts: optMSS1460}, 1360, false, []uint16{1460}},
		{"ipv4 udp", synSpec{proto: ProtoUDP, opts: optMSS1460}, 1360, false, []uint16{1460}},
		{"ipv6 syn", synSpec{ipv6: true, opts: optLinux}, 1340, true, []uint16{1340}},
		{"ipv6 tagged odd offset", synSpec{ipv6: true, vlan: 4094, opts: optNOPThenMSS}, 1340, true, []uint16{1340}},
		{"ipv6 hop-by-hop and first fragment", synSpec{ipv6: true, opts: optLinux, v6Ext: v6HopFrag, v6ExtNH: []uint8{0}}, 1340, true, []uint16{1340}},
		{"ipv6 non-first fragment", synSpec{ipv6: true, opts: optLinux, v6Ext: v6HopFragNext, v6ExtNH: []uint8{0}}, 1340, false, []uint16{1460}},
		{"ipv6 udp", synSpec{ipv6: true, proto: ProtoUDP, opts: optLinux}, 1340, false, []uint16{1460}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			frame := synFrame(tt.s)
			orig := append([]byte(nil), frame...)
			got := ClampMSS(frame, tt.mss)
			if got != tt.changed {
				t.Errorf("ClampMSS() = %v, want %v", got, tt.changed)
			}
			if !got && !bytes.Equal(frame, orig) {
				t.Fatalf("ClampMSS() returned false but changed the frame")
			}
			seg, src, dst := tcpOf(t, frame, tt.s)
			if tt.want != nil || tt.s.proto == 0 {
				mv := mssValues(seg)
				if len(mv) != len(tt.want) {
					t.Fatalf("MSS options = %v, want %v", mv, tt.want)
				}
				for i := range mv {
					if mv[i] != tt.want[i] {
						t.Errorf("MSS option %d = %d, want %d", i, mv[i], tt.want[i])
					}
				}
			}
			proto := tt.s.proto
			if proto == 0 {
				proto = ProtoTCP
			}
			// The checksum must verify: full recomputation equals the field.
			if want, got := TCPChecksum(seg, src, dst), TCP(seg).Checksum(); got != want {
				t.Errorf("TCP checksum after clamp = %#04x, recomputed %#04x", got, want)
			}
			// Only the MSS value bytes and the checksum may differ.
			diff := 0
			for i := range frame {
				if frame[i] != orig[i] {
					diff++
				}
			}
			if max := 4 * len(tt.want); diff > max {
				t.Errorf("%d bytes changed, want at most %d", diff, max)
			}
		})
	}
}

func TestClampMSSGarbage(t *testing.T) {
	good := synFrame(synSpec{opts: optLinux})
	tagged := synFrame(synSpec{vlan: 7, ipv6: true, opts: optLinux})
	mod := func(b []byte, f func(b []byte)) []byte { b = append([]byte(nil), b...); f(b); return b }
	tests := []struct {
		name  string
		frame []byte
	}{
		{"nil", nil},
		{"13 bytes", good[:13]},
		{"ethernet only", good[:14]},
		{"ip cut", good[:30]},
		{"tcp cut", good[:14+20+19]},
		{"options cut", good[:14+20+30]},
		{"double tag", mod(tagged, func(b []byte) { b[16], b[17] = 0x81, 0x00 })},
		{"arp", mod(good, func(b []byte) { b[12], b[13] = 0x08, 0x06 })},
		{"ipv4 total length too big", mod(good, func(b []byte) { b[16] = 0xff })},
		{"ipv4 ihl too big", mod(good, func(b []byte) { b[14] = 0x4f })},
		{"tcp data offset too big", mod(good, func(b []byte) { b[14+20+12] = 0xf2 })},
		{"tcp data offset too small", mod(good, func(b []byte) { b[14+20+12] = 0x40 })},
		{"ipv6 payload too big", mod(tagged, func(b []byte) { b[18+4] = 0xff })},
		{"ipv6 unknown ext header", mod(tagged, func(b []byte) { b[18+6] = 99 })},
		{"ipv6 hop-by-hop runs past end", mod(tagged, func(b []byte) { b[18+6] = 0; b[18+40+1] = 0xff })},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			orig := append([]byte(nil), tt.frame...)
			if ClampMSS(tt.frame, 536) {
				t.Errorf("ClampMSS() = true, want false")
			}
			if !bytes.Equal(tt.frame, orig) {
				t.Errorf("ClampMSS() changed a frame it should leave alone")
			}
		})
	}
}

// TestClampMSSLinkPadding: bytes after the IP packet (Ethernet padding of
// a short frame) are not part of the segment and stay as they are.
func TestClampMSSLinkPadding(t *testing.T) {
	frame := append(synFrame(synSpec{opts: optMSS1460}), 0xee, 0xee, 0xee)
	if !ClampMSS(frame, 1000) {
		t.Fatal("ClampMSS() = false, want true")
	}
	seg := IPv4(Ethernet(frame).Payload()).Payload()
	if got, want := TCP(seg).Checksum(), TCPChecksum(seg, testSrc4.AsSlice(), testDst4.AsSlice()); got != want {
		t.Errorf("checksum %#04x, recomputed %#04x", got, want)
	}
	if got := frame[len(frame)-3:]; !bytes.Equal(got, []byte{0xee, 0xee, 0xee}) {
		t.Errorf("padding = % x, want ee ee ee", got)
	}
}

// TestClampMSSExtensionHeaderLoop checks that a chain of more extension
// headers than ClampMSS walks is left alone rather than walked forever.
func TestClampMSSExtensionHeaderLoop(t *testing.T) {
	var ext []byte
	for range maxIPv6ExtHeaders {
		ext = append(ext, protoIPv6DstOpts, 0, 1, 4, 0, 0, 0, 0)
	}
	ext[len(ext)-8] = ProtoTCP // the last one points at TCP: one too many
	frame := synFrame(synSpec{ipv6: true, opts: optLinux, v6Ext: ext, v6ExtNH: []uint8{protoIPv6DstOpts}})
	if ClampMSS(frame, 1000) {
		t.Errorf("ClampMSS() = true past %d extension headers, want false", maxIPv6ExtHeaders)
	}
	frame = synFrame(synSpec{ipv6: true, opts: optLinux, v6Ext: ext[8:], v6ExtNH: []uint8{protoIPv6DstOpts}})
	if !ClampMSS(frame, 1000) {
		t.Errorf("ClampMSS() = false with %d extension headers, want true", maxIPv6ExtHeaders-1)
	}
}

func TestMSSForMTU(t *testing.T) {
	tests := []struct {
		mtu  int
		ipv6 bool
		want uint16
	}{
		{1500, false, 1460},
		{1500, true, 1440},
		{1400, false, 1360},
		{9000, false, 8960},
		{1280, true, 1220},
		{40, false, 0},
		{60, true, 0},
		{41, false, 1},
		{-5, false, 0},
		{1 << 20, false, 0xffff},
	}
	for _, tt := range tests {
		if got := MSSForMTU(tt.mtu, tt.ipv6); got != tt.want {
			t.Errorf("MSSForMTU(%d, %v) = %d, want %d", tt.mtu, tt.ipv6, got, tt.want)
		}
	}
}

func TestClampMSSNoAllocs(t *testing.T) {
	for _, s := range []synSpec{{opts: optLinux}, {ipv6: true, vlan: 3, opts: optNOPThenMSS, v6Ext: v6HopFrag, v6ExtNH: []uint8{0}}} {
		orig := synFrame(s)
		frame := append([]byte(nil), orig...)
		if n := testing.AllocsPerRun(100, func() {
			copy(frame, orig) // clamp for real every run
			if !ClampMSS(frame, 1000) {
				t.Fatal("ClampMSS() = false, want true")
			}
		}); n != 0 {
			t.Errorf("ClampMSS allocs = %v, want 0", n)
		}
	}
}
