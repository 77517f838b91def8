package encap

import (
	"bytes"
	"net/netip"
	"testing"
)

// udpDatagram is 1234 -> 4789, length 12, payload "abcd", checksum for
// 192.0.2.1 -> 198.51.100.2 (computed independently with Python):
//
//	0000  04 d2 12 b5 00 0c 37 51 61 62 63 64              ......7Qabcd
var udpDatagram = []byte{0x04, 0xd2, 0x12, 0xb5, 0x00, 0x0c, 0x37, 0x51, 'a', 'b', 'c', 'd'}

var (
	testSrc4 = netip.MustParseAddr("192.0.2.1")
	testDst4 = netip.MustParseAddr("198.51.100.2")
	testSrc6 = netip.MustParseAddr("2001:db8::1")
	testDst6 = netip.MustParseAddr("2001:db8::2")
)

func TestUDPIsValid(t *testing.T) {
	mod := func(f func(b []byte)) []byte { b := append([]byte(nil), udpDatagram...); f(b); return b }
	tests := []struct {
		name string
		b    []byte
		want bool
	}{
		{"nil", nil, false},
		{"7 bytes", udpDatagram[:7], false},
		{"whole", udpDatagram, true},
		{"trailing bytes", append(append([]byte(nil), udpDatagram...), 0, 0), true},
		{"length past end", udpDatagram[:11], false},
		{"length 7", mod(func(b []byte) { b[5] = 7 }), false},
		{"length 8", mod(func(b []byte) { b[5] = 8 }), true},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			if got := UDP(tt.b).IsValid(); got != tt.want {
				t.Errorf("IsValid() = %v, want %v", got, tt.want)
			}
		})
	}
}

func TestUDPAccessors(t *testing.T) {
	u := UDP(append(append([]byte(nil), udpDatagram...), 0xee)) // one byte past Length
	if got := u.SrcPort(); got != 1234 {
		t.Errorf("SrcPort() = %d, want 1234", got)
	}
	if got := u.DstPort(); got != PortVXLAN {
		t.Errorf("DstPort() = %d, want %d", got, PortVXLAN)
	}
	if got := u.Length(); got != 12 {
		t.Errorf("Length() = %d, want 12", got)
	}
	if got := u.Checksum(); got != 0x3751 {
		t.Errorf("Checksum() = %#04x, want 0x3751", got)
	}
	if got := u.Payload(); string(got) != "abcd" {
		t.Errorf("Payload() = %q, want \"abcd\"", got)
	}
	u.SetChecksum(0)
	if got := u.Checksum(); got != 0 {
		t.Errorf("Checksum() after SetChecksum(0) = %#04x, want 0", got)
	}
}

func TestUDPFieldsEncode(t *testing.T) {
	f := UDPFields{SrcPort: 1234, DstPort: PortVXLAN, Length: 12, Checksum: 0x3751}
	b := make([]byte, 12)
	copy(b[8:], "abcd")
	f.Encode(b)
	if !bytes.Equal(b, udpDatagram) {
		t.Errorf("Encode() = % x, want % x", b, udpDatagram)
	}
}

func TestUDPChecksum(t *testing.T) {
	a4, b4 := testSrc4.As4(), testDst4.As4()
	a6, b6 := testSrc6.As16(), testDst6.As16()
	tests := []struct {
		name     string
		dgram    []byte
		src, dst []byte
		want     uint16
	}{
		// Values computed independently (Python, RFC 768 pseudo-header).
		{"ipv4", []byte{0x04, 0xd2, 0x12, 0xb5, 0x00, 0x0c, 0, 0, 'a', 'b', 'c', 'd'}, a4[:], b4[:], 0x3751},
		{"ipv4 old checksum ignored", udpDatagram, a4[:], b4[:], 0x3751},
		{"ipv4 odd length", []byte{0x04, 0xd2, 0x12, 0xb5, 0x00, 0x0d, 0, 0, 'a', 'b', 'c', 'd', 'e'}, a4[:], b4[:], 0xd24e},
		{"ipv6", []byte{0x04, 0xd2, 0x12, 0xb5, 0x00, 0x0c, 0, 0, 'a', 'b', 'c', 'd'}, a6[:], b6[:], 0xc813},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			if got := UDPChecksum(tt.dgram, tt.src, tt.dst); got != tt.want {
				t.Errorf("UDPChecksum() = %#04x, want %#04x", got, tt.want)
			}
		})
	}
}

// TestUDPChecksumZeroIsFFFF finds a datagram whose checksum computes to 0
// and checks it is sent as 0xffff (RFC 768: zero means "no checksum").
func TestUDPChecksumZeroIsFFFF(t *testing.T) {
	a4, b4 := testSrc4.As4(), testDst4.As4()
	b := []byte{0x04, 0xd2, 0x12, 0xb5, 0x00, 0x0a, 0, 0, 0, 0}
	// Choose the payload word so that the total one's-complement sum is
	// 0xffff: payload = ~(sum of the rest).
	rest := ChecksumCombine(PseudoHeaderChecksum(ProtoUDP, a4[:], b4[:], 10), Checksum(b[:8], 0))
	w := ^rest
	b[8], b[9] = byte(w>>8), byte(w)
	if got := UDPChecksum(b, a4[:], b4[:]); got != 0xffff {
		t.Errorf("UDPChecksum() = %#04x, want 0xffff", got)
	}
}
