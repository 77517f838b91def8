package encap

import (
	"bytes"
	"math/rand/v2"
	"net/netip"
	"testing"
)

// ipv4Header is the IPv4 header of the Wikipedia "IPv4 header checksum"
// example, a UDP datagram from 192.168.0.1 to 192.168.0.199, DF set:
//
//	0000  45 00 00 73 00 00 40 00 40 11 b8 61 c0 a8 00 01  E..s..@.@..a....
//	0010  c0 a8 00 c7                                      ....
var ipv4Header = []byte{
	0x45, 0x00, 0x00, 0x73, 0x00, 0x00, 0x40, 0x00, 0x40, 0x11, 0xb8, 0x61,
	0xc0, 0xa8, 0x00, 0x01, 0xc0, 0xa8, 0x00, 0xc7,
}

// ipv4Packet returns ipv4Header followed by a payload that fills the total
// length of 0x73 bytes, and extra bytes of link padding.
func ipv4Packet(extra int) []byte {
	b := make([]byte, 0x73+extra)
	copy(b, ipv4Header)
	for i := IPv4MinHeaderLen; i < len(b); i++ {
		b[i] = byte(i)
	}
	return b
}

func TestIPv4IsValid(t *testing.T) {
	mod := func(f func(b []byte)) []byte { b := ipv4Packet(0); f(b); return b }
	tests := []struct {
		name string
		b    []byte
		want bool
	}{
		{"nil", nil, false},
		{"19 bytes", ipv4Packet(0)[:19], false},
		{"whole", ipv4Packet(0), true},
		{"link padding", ipv4Packet(10), true},
		{"total length past end", ipv4Packet(0)[:0x72], false},
		{"version 6", mod(func(b []byte) { b[0] = 0x65 }), false},
		{"ihl 4", mod(func(b []byte) { b[0] = 0x44 }), false},
		{"ihl 15 fits", mod(func(b []byte) { b[0] = 0x4f }), true},
		{"total length below header", mod(func(b []byte) { b[2], b[3] = 0, 19 }), false},
		{"total length below ihl", mod(func(b []byte) { b[0], b[2], b[3] = 0x46, 0, 20 }), false},
		{"total length equals header", mod(func(b []byte) { b[2], b[3] = 0, 20 }), true},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			if got := IPv4(tt.b).IsValid(); got != tt.want {
				t.Errorf("IsValid() = %v, want %v", got, tt.want)
			}
		})
	}
}

func TestIPv4Accessors(t *testing.T) {
	ip := IPv4(ipv4Packet(6))
	if !ip.IsValid() {
		t.Fatal("IsValid() = false, want true")
	}
	checks := []struct {
		name      string
		got, want any
	}{
		{"HeaderLen", ip.HeaderLen(), 20},
		{"TOS", ip.TOS(), uint8(0)},
		{"TotalLen", ip.TotalLen(), uint16(0x73)},
		{"ID", ip.ID(), uint16(0)},
		{"Flags", ip.Flags(), IPv4FlagDF},
		{"FragmentOffset", ip.FragmentOffset(), 0},
		{"More", ip.More(), false},
		{"IsFragment", ip.IsFragment(), false},
		{"TTL", ip.TTL(), uint8(64)},
		{"Protocol", ip.Protocol(), ProtoUDP},
		{"Checksum", ip.Checksum(), uint16(0xb861)},
		{"CalculateChecksum", ip.CalculateChecksum(), uint16(0xb861)},
		{"ChecksumValid", ip.ChecksumValid(), true},
		{"Src", ip.Src(), netip.MustParseAddr("192.168.0.1")},
		{"Dst", ip.Dst(), netip.MustParseAddr("192.168.0.199")},
		{"SrcBytes", string(ip.SrcBytes()), "\xc0\xa8\x00\x01"},
		{"DstBytes", string(ip.DstBytes()), "\xc0\xa8\x00\xc7"},
		{"Options", len(ip.Options()), 0},
		{"Payload length (padding excluded)", len(ip.Payload()), 0x73 - 20},
		{"Payload first byte", ip.Payload()[0], byte(20)},
	}
	for _, c := range checks {
		if c.got != c.want {
			t.Errorf("%s = %v, want %v", c.name, c.got, c.want)
		}
	}
}

func TestIPv4Options(t *testing.T) {
	b := make([]byte, 28)
	b[0] = 0x46 // IHL 6: 4 bytes of options
	b[3] = 28
	copy(b[20:], []byte{0x94, 0x04, 0x00, 0x00}) // router alert
	ip := IPv4(b)
	if !ip.IsValid() {
		t.Fatal("IsValid() = false, want true")
	}
	if got := ip.Options(); !bytes.Equal(got, []byte{0x94, 0x04, 0, 0}) {
		t.Errorf("Options() = % x, want 94 04 00 00", got)
	}
	if got := len(ip.Payload()); got != 4 {
		t.Errorf("len(Payload()) = %d, want 4", got)
	}
	ip.SetChecksum(ip.CalculateChecksum())
	if !ip.ChecksumValid() {
		t.Error("ChecksumValid() = false after SetChecksum(CalculateChecksum()) with options")
	}
}

func TestIPv4FlagsOffset(t *testing.T) {
	tests := []struct {
		name       string
		flags      uint16
		offset     int
		word       uint16
		more, frag bool
	}{
		{"none", 0, 0, 0x0000, false, false},
		{"df", IPv4FlagDF, 0, 0x4000, false, false},
		{"first fragment", IPv4FlagMF, 0, 0x2000, true, true},
		{"middle fragment", IPv4FlagMF, 1480, 0x2000 | 185, true, true},
		{"last fragment", 0, 2960, 370, false, true},
		{"largest offset", 0, 0x1fff * 8, 0x1fff, false, true},
		{"offset bits in flags are ignored", IPv4FlagDF | 0x1fff, 8, 0x4001, false, true},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			b := ipv4Packet(0)
			ip := IPv4(b)
			ip.SetFlagsOffset(tt.flags, tt.offset)
			if got := uint16(b[6])<<8 | uint16(b[7]); got != tt.word {
				t.Errorf("flags/offset word = %#04x, want %#04x", got, tt.word)
			}
			if got, want := ip.FragmentOffset(), int(tt.word&0x1fff)*8; got != want {
				t.Errorf("FragmentOffset() = %d, want %d", got, want)
			}
			if got := ip.More(); got != tt.more {
				t.Errorf("More() = %v, want %v", got, tt.more)
			}
			if got := ip.IsFragment(); got != tt.frag {
				t.Errorf("IsFragment() = %v, want %v", got, tt.frag)
			}
		})
	}
}

func TestIPv4Setters(t *testing.T) {
	ip := IPv4(ipv4Packet(0))
	ip.SetTotalLen(40)
	ip.SetID(0xbeef)
	if got := ip.TotalLen(); got != 40 {
		t.Errorf("TotalLen() = %d, want 40", got)
	}
	if got := ip.ID(); got != 0xbeef {
		t.Errorf("ID() = %#x, want 0xbeef", got)
	}
	if ip.ChecksumValid() {
		t.Error("ChecksumValid() = true after changing fields without updating the checksum")
	}
	ip.SetChecksum(ip.CalculateChecksum())
	if !ip.ChecksumValid() {
		t.Error("ChecksumValid() = false after SetChecksum(CalculateChecksum())")
	}
}

func TestIPv4FieldsEncode(t *testing.T) {
	f := IPv4Fields{
		TotalLen: 0x73, Flags: IPv4FlagDF, TTL: 64, Protocol: ProtoUDP,
		Src: netip.MustParseAddr("192.168.0.1"), Dst: netip.MustParseAddr("192.168.0.199"),
	}
	b := make([]byte, IPv4MinHeaderLen)
	for i := range b {
		b[i] = 0xaa // Encode must overwrite everything, checksum included
	}
	f.Encode(b)
	if !bytes.Equal(b, ipv4Header) {
		t.Errorf("Encode() =\n% x\nwant\n% x", b, ipv4Header)
	}

	f = IPv4Fields{TOS: 0xb8, TotalLen: 1500, ID: 0x1234, Flags: IPv4FlagMF, Offset: 2960, TTL: 1,
		Protocol: ProtoESP, Src: netip.MustParseAddr("10.0.0.1"), Dst: netip.MustParseAddr("10.0.0.2")}
	b = make([]byte, 1500)
	f.Encode(b)
	ip := IPv4(b)
	if !ip.IsValid() || !ip.ChecksumValid() {
		t.Fatalf("encoded header invalid: IsValid %v ChecksumValid %v", ip.IsValid(), ip.ChecksumValid())
	}
	got := IPv4Fields{TOS: ip.TOS(), TotalLen: ip.TotalLen(), ID: ip.ID(), Flags: ip.Flags(), Offset: ip.FragmentOffset(),
		TTL: ip.TTL(), Protocol: ip.Protocol(), Src: ip.Src(), Dst: ip.Dst()}
	if got != f {
		t.Errorf("decoded %+v, want %+v", got, f)
	}
}

// TestIPv4CalculateChecksumRandom compares the unrolled 20-byte path and
// the options path with the generic sum on random headers.
func TestIPv4CalculateChecksumRandom(t *testing.T) {
	r := rand.New(rand.NewPCG(7, 8))
	for _, hl := range []int{20, 24, 60} {
		for range 2000 {
			b := make([]byte, hl)
			for i := range b {
				b[i] = byte(r.Uint32())
			}
			b[0] = 0x40 | byte(hl/4)
			z := append([]byte(nil), b...)
			z[10], z[11] = 0, 0
			if got, want := IPv4(b).CalculateChecksum(), ^refSum(z, 0); got != want {
				t.Fatalf("hl %d, header % x: CalculateChecksum() = %#04x, want %#04x", hl, b, got, want)
			}
		}
	}
}
