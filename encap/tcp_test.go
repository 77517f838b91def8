package encap

import (
	"bytes"
	"testing"
)

// tcpSYN is a SYN from port 40000 to 80 with MSS 1460, SACK-permitted,
// timestamps, NOP and window scale 7 (a Linux SYN's options):
//
//	0000  9c 40 00 50 00 00 03 e8 00 00 00 00 a0 02 fa f0  .@.P............
//	0010  00 00 00 00 02 04 05 b4 04 02 08 0a 00 00 00 01  ................
//	0020  00 00 00 00 01 03 03 07                          ........
var tcpSYN = []byte{
	0x9c, 0x40, 0x00, 0x50, 0x00, 0x00, 0x03, 0xe8, 0x00, 0x00, 0x00, 0x00,
	0xa0, 0x02, 0xfa, 0xf0, 0x00, 0x00, 0x00, 0x00,
	0x02, 0x04, 0x05, 0xb4, // MSS 1460
	0x04, 0x02, // SACK permitted
	0x08, 0x0a, 0x00, 0x00, 0x00, 0x01, 0x00, 0x00, 0x00, 0x00, // timestamps 1, 0
	0x01,             // NOP
	0x03, 0x03, 0x07, // window scale 7
}

func TestTCPIsValid(t *testing.T) {
	mod := func(f func(b []byte)) []byte { b := append([]byte(nil), tcpSYN...); f(b); return b }
	tests := []struct {
		name string
		b    []byte
		want bool
	}{
		{"nil", nil, false},
		{"19 bytes", tcpSYN[:19], false},
		{"whole", tcpSYN, true},
		{"options cut", tcpSYN[:39], false},
		{"data offset 4", mod(func(b []byte) { b[12] = 0x40 }), false},
		{"data offset 5 with payload", mod(func(b []byte) { b[12] = 0x50 }), true},
		{"data offset 15 past end", mod(func(b []byte) { b[12] = 0xf0 }), false},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			if got := TCP(tt.b).IsValid(); got != tt.want {
				t.Errorf("IsValid() = %v, want %v", got, tt.want)
			}
		})
	}
}

func TestTCPAccessors(t *testing.T) {
	b := append(append([]byte(nil), tcpSYN...), 'h', 'i')
	b[12] |= 0x0f // reserved bits do not leak into HeaderLen
	tcp := TCP(b)
	checks := []struct {
		name      string
		got, want any
	}{
		{"SrcPort", tcp.SrcPort(), uint16(40000)},
		{"DstPort", tcp.DstPort(), uint16(80)},
		{"Seq", tcp.Seq(), uint32(1000)},
		{"Ack", tcp.Ack(), uint32(0)},
		{"HeaderLen", tcp.HeaderLen(), 40},
		{"Flags", tcp.Flags(), TCPFlagSYN},
		{"Window", tcp.Window(), uint16(64240)},
		{"Checksum", tcp.Checksum(), uint16(0)},
		{"UrgentPointer", tcp.UrgentPointer(), uint16(0)},
		{"Options", string(tcp.Options()), string(tcpSYN[20:])},
		{"Payload", string(tcp.Payload()), "hi"},
	}
	for _, c := range checks {
		if c.got != c.want {
			t.Errorf("%s = %v, want %v", c.name, c.got, c.want)
		}
	}
	tcp.SetChecksum(0xbeef)
	if got := tcp.Checksum(); got != 0xbeef {
		t.Errorf("Checksum() after SetChecksum = %#x, want 0xbeef", got)
	}
}

type optSeen struct {
	kind   uint8
	data   string
	offset int
}

func collectOptions(it TCPOptionIter) ([]optSeen, bool) {
	var got []optSeen
	for o, ok := it.Next(); ok; o, ok = it.Next() {
		got = append(got, optSeen{o.Kind, string(o.Data), o.Offset})
	}
	return got, it.Malformed()
}

func TestTCPOptionIter(t *testing.T) {
	tests := []struct {
		name      string
		opts      []byte
		want      []optSeen
		malformed bool
	}{
		{"linux syn", tcpSYN[20:], []optSeen{
			{TCPOptMSS, "\x05\xb4", 0},
			{TCPOptSACKPermitted, "", 4},
			{TCPOptTimestamps, "\x00\x00\x00\x01\x00\x00\x00\x00", 6},
			{TCPOptNOP, "", 16},
			{TCPOptWindowScale, "\x07", 17},
		}, false},
		{"empty", nil, nil, false},
		{"end stops", []byte{0x01, 0x00, 0x02, 0x04, 0x05, 0xb4}, []optSeen{{TCPOptNOP, "", 0}}, false},
		{"nops", []byte{1, 1, 1, 1}, []optSeen{{1, "", 0}, {1, "", 1}, {1, "", 2}, {1, "", 3}}, false},
		{"mss at odd offset", []byte{0x01, 0x02, 0x04, 0x05, 0xb4, 0x00, 0x00, 0x00}, []optSeen{{1, "", 0}, {2, "\x05\xb4", 1}}, false},
		{"kind without length", []byte{0x01, 0x02}, []optSeen{{1, "", 0}}, true},
		{"length 0", []byte{0x02, 0x00, 0x05, 0xb4}, nil, true},
		{"length 1", []byte{0x02, 0x01, 0x05, 0xb4}, nil, true},
		{"length past end", []byte{0x02, 0x05, 0x05, 0xb4}, nil, true},
		{"unknown kind skipped by length", []byte{0xfe, 0x03, 0xaa, 0x02, 0x04, 0x05, 0xb4, 0x00}, []optSeen{{0xfe, "\xaa", 0}, {2, "\x05\xb4", 3}}, false},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			got, malformed := collectOptions(NewTCPOptionIter(tt.opts))
			if len(got) != len(tt.want) {
				t.Fatalf("options = %v, want %v", got, tt.want)
			}
			for i := range got {
				if got[i] != tt.want[i] {
					t.Errorf("option %d = %+v, want %+v", i, got[i], tt.want[i])
				}
			}
			if malformed != tt.malformed {
				t.Errorf("Malformed() = %v, want %v", malformed, tt.malformed)
			}
		})
	}
}

func TestTCPFieldsEncode(t *testing.T) {
	f := TCPFields{SrcPort: 40000, DstPort: 80, Seq: 1000, Flags: TCPFlagSYN, Window: 64240, Options: tcpSYN[20:]}
	if got := f.Len(); got != 40 {
		t.Errorf("Len() = %d, want 40", got)
	}
	b := bytes.Repeat([]byte{0xaa}, 40)
	f.Encode(b)
	if !bytes.Equal(b, tcpSYN) {
		t.Errorf("Encode() =\n% x\nwant\n% x", b, tcpSYN)
	}
	// Options are padded with End-of-Option-List to a multiple of 4.
	f = TCPFields{Flags: TCPFlagSYN | TCPFlagACK, Options: []byte{0x03, 0x03, 0x07}}
	b = bytes.Repeat([]byte{0xaa}, 24)
	f.Encode(b)
	if got, want := b[12:], []byte{0x60, 0x12, 0, 0, 0, 0, 0, 0, 0x03, 0x03, 0x07, 0x00}; !bytes.Equal(got, want) {
		t.Errorf("Encode() tail = % x, want % x", got, want)
	}
}

func TestTCPChecksum(t *testing.T) {
	a4, b4 := testSrc4.As4(), testDst4.As4()
	seg := append([]byte(nil), tcpSYN...)
	// Independently: the pseudo-header plus the segment, field zero.
	ph := []byte{192, 0, 2, 1, 198, 51, 100, 2, 0, ProtoTCP, 0, byte(len(seg))}
	want := ^refSum(append(ph, seg...), 0)
	if got := TCPChecksum(seg, a4[:], b4[:]); got != want {
		t.Errorf("TCPChecksum() = %#04x, want %#04x", got, want)
	}
	TCP(seg).SetChecksum(want)
	if got := TCPChecksum(seg, a4[:], b4[:]); got != want {
		t.Errorf("TCPChecksum() with the field set = %#04x, want %#04x (field ignored)", got, want)
	}
}
