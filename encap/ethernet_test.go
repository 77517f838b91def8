package encap

import (
	"bytes"
	"testing"
)

// untaggedFrame is an Ethernet II header carrying IPv4:
//
//	0000  02 00 00 00 00 02 02 00 00 00 00 01 08 00        dst src type
var untaggedFrame = []byte{
	0x02, 0x00, 0x00, 0x00, 0x00, 0x02, // dst 02:00:00:00:00:02
	0x02, 0x00, 0x00, 0x00, 0x00, 0x01, // src 02:00:00:00:00:01
	0x08, 0x00, // IPv4
}

// taggedFrame has one 802.1Q tag, PCP 5, VLAN 100, carrying IPv6:
//
//	0000  ff ff ff ff ff ff 02 00 00 00 00 01 81 00 a0 64  ........
//	0010  86 dd                                            type
var taggedFrame = []byte{
	0xff, 0xff, 0xff, 0xff, 0xff, 0xff,
	0x02, 0x00, 0x00, 0x00, 0x00, 0x01,
	0x81, 0x00, 0xa0, 0x64, // TPID, PCP 5 DEI 0 VID 100
	0x86, 0xdd,
}

func TestEthernetIsValid(t *testing.T) {
	tests := []struct {
		name string
		b    []byte
		want bool
	}{
		{"nil", nil, false},
		{"13 bytes", untaggedFrame[:13], false},
		{"untagged header", untaggedFrame, true},
		{"tagged cut in tag", taggedFrame[:16], false},
		{"tagged cut before inner type", taggedFrame[:17], false},
		{"tagged header", taggedFrame, true},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			if got := Ethernet(tt.b).IsValid(); got != tt.want {
				t.Errorf("IsValid() = %v, want %v", got, tt.want)
			}
		})
	}
}

func TestEthernetAccessors(t *testing.T) {
	tests := []struct {
		name      string
		b         []byte
		dst, src  MAC
		tagged    bool
		vlan      uint16
		etherType uint16
		hdrLen    int
	}{
		{"untagged", untaggedFrame, MAC{2, 0, 0, 0, 0, 2}, MAC{2, 0, 0, 0, 0, 1}, false, 0, EtherTypeIPv4, 14},
		{"tagged", taggedFrame, BroadcastMAC, MAC{2, 0, 0, 0, 0, 1}, true, 100, EtherTypeIPv6, 18},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			b := append(append([]byte(nil), tt.b...), 0xde, 0xad)
			e := Ethernet(b)
			if !e.IsValid() {
				t.Fatal("IsValid() = false, want true")
			}
			if got := e.Dst(); got != tt.dst {
				t.Errorf("Dst() = %v, want %v", got, tt.dst)
			}
			if got := e.Src(); got != tt.src {
				t.Errorf("Src() = %v, want %v", got, tt.src)
			}
			if got := e.Tagged(); got != tt.tagged {
				t.Errorf("Tagged() = %v, want %v", got, tt.tagged)
			}
			if got := e.VLAN(); got != tt.vlan {
				t.Errorf("VLAN() = %d, want %d", got, tt.vlan)
			}
			if got := e.EtherType(); got != tt.etherType {
				t.Errorf("EtherType() = %#04x, want %#04x", got, tt.etherType)
			}
			if got := e.HeaderLen(); got != tt.hdrLen {
				t.Errorf("HeaderLen() = %d, want %d", got, tt.hdrLen)
			}
			if got := e.Payload(); !bytes.Equal(got, []byte{0xde, 0xad}) {
				t.Errorf("Payload() = % x, want de ad", got)
			}
		})
	}
}

func TestEthernetSetters(t *testing.T) {
	b := append([]byte(nil), untaggedFrame...)
	e := Ethernet(b)
	e.SetDst(MAC{1, 2, 3, 4, 5, 6})
	e.SetSrc(MAC{7, 8, 9, 10, 11, 12})
	if got, want := e.Dst(), (MAC{1, 2, 3, 4, 5, 6}); got != want {
		t.Errorf("Dst() = %v, want %v", got, want)
	}
	if got, want := e.Src(), (MAC{7, 8, 9, 10, 11, 12}); got != want {
		t.Errorf("Src() = %v, want %v", got, want)
	}
	if got := e.EtherType(); got != EtherTypeIPv4 {
		t.Errorf("EtherType() = %#04x after setting MACs, want 0x0800", got)
	}
}

func TestEthernetFieldsEncode(t *testing.T) {
	tests := []struct {
		name string
		f    EthernetFields
		want []byte
	}{
		{"untagged", EthernetFields{Dst: MAC{2, 0, 0, 0, 0, 2}, Src: MAC{2, 0, 0, 0, 0, 1}, EtherType: EtherTypeIPv4}, untaggedFrame},
		{"tagged", EthernetFields{Dst: BroadcastMAC, Src: MAC{2, 0, 0, 0, 0, 1}, VLAN: 100, PCP: 5, EtherType: EtherTypeIPv6}, taggedFrame},
		{"vlan and pcp masked", EthernetFields{Dst: BroadcastMAC, Src: MAC{2, 0, 0, 0, 0, 1}, VLAN: 0xf064, PCP: 0xfd, EtherType: EtherTypeIPv6}, taggedFrame},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			if got := tt.f.Len(); got != len(tt.want) {
				t.Errorf("Len() = %d, want %d", got, len(tt.want))
			}
			b := make([]byte, tt.f.Len())
			tt.f.Encode(b)
			if !bytes.Equal(b, tt.want) {
				t.Errorf("Encode() = % x, want % x", b, tt.want)
			}
		})
	}
}

func TestMAC(t *testing.T) {
	tests := []struct {
		name                       string
		m                          MAC
		multicast, broadcast, zero bool
		s                          string
	}{
		{"zero", MAC{}, false, false, true, "00:00:00:00:00:00"},
		{"unicast", MAC{0x02, 0x42, 0xac, 0x11, 0x00, 0x02}, false, false, false, "02:42:ac:11:00:02"},
		{"multicast", MAC{0x01, 0x00, 0x5e, 0x00, 0x00, 0x01}, true, false, false, "01:00:5e:00:00:01"},
		{"broadcast", BroadcastMAC, true, true, false, "ff:ff:ff:ff:ff:ff"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			if got := tt.m.IsMulticast(); got != tt.multicast {
				t.Errorf("IsMulticast() = %v, want %v", got, tt.multicast)
			}
			if got := tt.m.IsBroadcast(); got != tt.broadcast {
				t.Errorf("IsBroadcast() = %v, want %v", got, tt.broadcast)
			}
			if got := tt.m.IsZero(); got != tt.zero {
				t.Errorf("IsZero() = %v, want %v", got, tt.zero)
			}
			if got := tt.m.String(); got != tt.s {
				t.Errorf("String() = %q, want %q", got, tt.s)
			}
			back, err := ParseMAC(tt.s)
			if err != nil || back != tt.m {
				t.Errorf("ParseMAC(%q) = %v, %v, want %v, nil", tt.s, back, err, tt.m)
			}
		})
	}
}

func TestParseMAC(t *testing.T) {
	tests := []struct {
		in      string
		want    MAC
		wantErr bool
	}{
		{"02:42:AC:11:00:02", MAC{0x02, 0x42, 0xac, 0x11, 0x00, 0x02}, false},
		{"02-42-ac-11-00-02", MAC{0x02, 0x42, 0xac, 0x11, 0x00, 0x02}, false},
		{"", MAC{}, true},
		{"02:42:ac:11:00:0", MAC{}, true},
		{"02:42:ac:11:00:023", MAC{}, true},
		{"02:42-ac:11:00:02", MAC{}, true},
		{"02.42.ac.11.00.02", MAC{}, true},
		{"0g:42:ac:11:00:02", MAC{}, true},
		{"0242ac110002xxxxx", MAC{}, true},
	}
	for _, tt := range tests {
		t.Run(tt.in, func(t *testing.T) {
			got, err := ParseMAC(tt.in)
			if (err != nil) != tt.wantErr {
				t.Fatalf("ParseMAC(%q) error = %v, want error %v", tt.in, err, tt.wantErr)
			}
			if got != tt.want && !tt.wantErr {
				t.Errorf("ParseMAC(%q) = %v, want %v", tt.in, got, tt.want)
			}
		})
	}
}

func TestVNI(t *testing.T) {
	tests := []struct {
		v    VNI
		want bool
	}{{0, true}, {1, true}, {MaxVNI, true}, {MaxVNI + 1, false}, {1 << 31, false}}
	for _, tt := range tests {
		if got := tt.v.Valid(); got != tt.want {
			t.Errorf("VNI(%d).Valid() = %v, want %v", tt.v, got, tt.want)
		}
	}
}
