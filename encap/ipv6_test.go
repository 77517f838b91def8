package encap

import (
	"bytes"
	"testing"
)

// ipv6Packet is an IPv6 header, traffic class 0xb8, flow label 0x12345,
// payload length 12 (udpDatagram recomputed for IPv6), next header UDP, hop
// limit 64, 2001:db8::1 -> 2001:db8::2:
//
//	0000  6b 81 23 45 00 0c 11 40 20 01 0d b8 00 00 00 00  k.#E...@ .......
//	0010  00 00 00 00 00 00 00 01 20 01 0d b8 00 00 00 00  ........ .......
//	0020  00 00 00 00 00 00 00 02 04 d2 12 b5 00 0c c8 13  ................
//	0030  61 62 63 64                                      abcd
var ipv6Packet = []byte{
	0x6b, 0x81, 0x23, 0x45, 0x00, 0x0c, 0x11, 0x40,
	0x20, 0x01, 0x0d, 0xb8, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0x01,
	0x20, 0x01, 0x0d, 0xb8, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0x02,
	0x04, 0xd2, 0x12, 0xb5, 0x00, 0x0c, 0xc8, 0x13, 'a', 'b', 'c', 'd',
}

func TestIPv6IsValid(t *testing.T) {
	mod := func(f func(b []byte)) []byte { b := append([]byte(nil), ipv6Packet...); f(b); return b }
	tests := []struct {
		name string
		b    []byte
		want bool
	}{
		{"nil", nil, false},
		{"39 bytes", ipv6Packet[:39], false},
		{"whole", ipv6Packet, true},
		{"trailing bytes", append(append([]byte(nil), ipv6Packet...), 1, 2, 3), true},
		{"payload past end", ipv6Packet[:51], false},
		{"version 4", mod(func(b []byte) { b[0] = 0x4b }), false},
		{"payload length 0", mod(func(b []byte) { b[5] = 0 }), true},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			if got := IPv6(tt.b).IsValid(); got != tt.want {
				t.Errorf("IsValid() = %v, want %v", got, tt.want)
			}
		})
	}
}

func TestIPv6Accessors(t *testing.T) {
	ip := IPv6(append(append([]byte(nil), ipv6Packet...), 0xee))
	checks := []struct {
		name      string
		got, want any
	}{
		{"TrafficClass", ip.TrafficClass(), uint8(0xb8)},
		{"FlowLabel", ip.FlowLabel(), uint32(0x12345)},
		{"PayloadLen", ip.PayloadLen(), uint16(12)},
		{"NextHeader", ip.NextHeader(), ProtoUDP},
		{"HopLimit", ip.HopLimit(), uint8(64)},
		{"Src", ip.Src(), testSrc6},
		{"Dst", ip.Dst(), testDst6},
		{"SrcBytes", string(ip.SrcBytes()), string(testSrc6.AsSlice())},
		{"DstBytes", string(ip.DstBytes()), string(testDst6.AsSlice())},
		{"Payload", string(ip.Payload()), string(ipv6Packet[40:])},
	}
	for _, c := range checks {
		if c.got != c.want {
			t.Errorf("%s = %v, want %v", c.name, c.got, c.want)
		}
	}
	u := UDP(ip.Payload())
	if got := UDPChecksum(u, ip.SrcBytes(), ip.DstBytes()); got != u.Checksum() {
		t.Errorf("UDP checksum in fixture = %#04x, computed %#04x", u.Checksum(), got)
	}
	ip.SetPayloadLen(4)
	ip.SetNextHeader(ProtoNoNext)
	if got := len(ip.Payload()); got != 4 {
		t.Errorf("len(Payload()) after SetPayloadLen(4) = %d, want 4", got)
	}
	if got := ip.NextHeader(); got != ProtoNoNext {
		t.Errorf("NextHeader() = %d, want %d", got, ProtoNoNext)
	}
}

func TestIPv6FieldsEncode(t *testing.T) {
	f := IPv6Fields{TrafficClass: 0xb8, FlowLabel: 0x12345, PayloadLen: 12, NextHeader: ProtoUDP, HopLimit: 64, Src: testSrc6, Dst: testDst6}
	b := make([]byte, IPv6HeaderLen)
	f.Encode(b)
	if !bytes.Equal(b, ipv6Packet[:40]) {
		t.Errorf("Encode() =\n% x\nwant\n% x", b, ipv6Packet[:40])
	}
	// The flow label is masked to 20 bits.
	f.FlowLabel = 0xfff12345
	f.Encode(b)
	if !bytes.Equal(b, ipv6Packet[:40]) {
		t.Errorf("Encode() with a 32-bit flow label =\n% x\nwant\n% x", b, ipv6Packet[:40])
	}
}

// ipv6FragHeader is a fragment header: next header UDP, offset 1448, M set,
// identification 0xdeadbeef:
//
//	0000  11 00 05 a9 de ad be ef
var ipv6FragHeader = []byte{0x11, 0x00, 0x05, 0xa9, 0xde, 0xad, 0xbe, 0xef}

func TestIPv6Fragment(t *testing.T) {
	if IPv6Fragment(ipv6FragHeader[:7]).IsValid() {
		t.Error("IsValid() on 7 bytes = true, want false")
	}
	f := IPv6Fragment(ipv6FragHeader)
	if !f.IsValid() {
		t.Fatal("IsValid() = false, want true")
	}
	if got := f.NextHeader(); got != ProtoUDP {
		t.Errorf("NextHeader() = %d, want %d", got, ProtoUDP)
	}
	if got := f.FragmentOffset(); got != 1448 {
		t.Errorf("FragmentOffset() = %d, want 1448", got)
	}
	if !f.More() {
		t.Error("More() = false, want true")
	}
	if got := f.ID(); got != 0xdeadbeef {
		t.Errorf("ID() = %#x, want 0xdeadbeef", got)
	}
}

func TestIPv6FragmentFieldsEncode(t *testing.T) {
	tests := []struct {
		name string
		f    IPv6FragmentFields
		want []byte
	}{
		{"fixture", IPv6FragmentFields{NextHeader: ProtoUDP, Offset: 1448, More: true, ID: 0xdeadbeef}, ipv6FragHeader},
		{"last", IPv6FragmentFields{NextHeader: ProtoTCP, Offset: 8, ID: 1}, []byte{6, 0, 0, 8, 0, 0, 0, 1}},
		{"largest offset", IPv6FragmentFields{NextHeader: ProtoUDP, Offset: 0xfff8, More: true}, []byte{17, 0, 0xff, 0xf9, 0, 0, 0, 0}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			b := []byte{0xaa, 0xaa, 0xaa, 0xaa, 0xaa, 0xaa, 0xaa, 0xaa}
			tt.f.Encode(b)
			if !bytes.Equal(b, tt.want) {
				t.Errorf("Encode() = % x, want % x", b, tt.want)
			}
			v := IPv6Fragment(b)
			got := IPv6FragmentFields{NextHeader: v.NextHeader(), Offset: v.FragmentOffset(), More: v.More(), ID: v.ID()}
			if got != tt.f {
				t.Errorf("decoded %+v, want %+v", got, tt.f)
			}
		})
	}
}
