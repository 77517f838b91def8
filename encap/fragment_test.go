package encap

import (
	"bytes"
	"encoding/hex"
	"errors"
	"net/netip"
	"sync"
	"testing"

	"github.com/google/gopacket"
	"github.com/google/gopacket/ip4defrag"
	"github.com/google/gopacket/layers"
)

var (
	fragSrc4 = netip.MustParseAddr("192.0.2.1")
	fragDst4 = netip.MustParseAddr("198.51.100.2")
	fragSrc6 = netip.MustParseAddr("2001:db8::1")
	fragDst6 = netip.MustParseAddr("2001:db8::2")
)

// fragPattern returns the payload byte at offset i of a test datagram with
// identification id: any fragment of it can be checked on its own.
func fragPattern(id uint32, i int) byte { return byte(int(id)*31 + i*7 + i>>8) }

// fragMakeIPv4 returns an IPv4 datagram (20-byte header, protocol UDP) with
// payloadLen bytes of fragPattern payload.
func fragMakeIPv4(payloadLen int, id uint16) []byte {
	pkt := make([]byte, IPv4MinHeaderLen+payloadLen)
	f := IPv4Fields{TotalLen: uint16(len(pkt)), ID: id, TTL: 64, Protocol: ProtoUDP, Src: fragSrc4, Dst: fragDst4}
	f.Encode(pkt)
	for i := 0; i < payloadLen; i++ {
		pkt[IPv4MinHeaderLen+i] = fragPattern(uint32(id), i)
	}
	return pkt
}

// fragMakeIPv6 returns an IPv6 packet (no extension headers, next header
// UDP) with payloadLen bytes of fragPattern payload keyed by id.
func fragMakeIPv6(payloadLen int, id uint32) []byte {
	pkt := make([]byte, IPv6HeaderLen+payloadLen)
	f := IPv6Fields{PayloadLen: uint16(payloadLen), NextHeader: ProtoUDP, HopLimit: 64, Src: fragSrc6, Dst: fragDst6}
	f.Encode(pkt)
	for i := 0; i < payloadLen; i++ {
		pkt[IPv6HeaderLen+i] = fragPattern(id, i)
	}
	return pkt
}

// fragIPv4WithOptions returns fragMakeIPv4's datagram with opts (a
// multiple of 4 bytes) in its header.
func fragIPv4WithOptions(opts []byte, payloadLen int, id uint16) []byte {
	p := fragMakeIPv4(payloadLen, id)
	pkt := append(append(append([]byte(nil), p[:IPv4MinHeaderLen]...), opts...), p[IPv4MinHeaderLen:]...)
	pkt[0] = IPv4Version<<4 | byte((IPv4MinHeaderLen+len(opts))/4)
	IPv4(pkt).SetTotalLen(uint16(len(pkt)))
	IPv4(pkt).SetChecksum(IPv4(pkt).CalculateChecksum())
	return pkt
}

func fragBufs(n, size int) ([][]byte, []int) {
	out := make([][]byte, n)
	for i := range out {
		out[i] = make([]byte, size)
	}
	return out, make([]int, n)
}

func mustHex(t testing.TB, s string) []byte {
	t.Helper()
	b, err := hex.DecodeString(s)
	if err != nil {
		t.Fatal(err)
	}
	return b
}

// checkIPv4Fragments checks the invariants of fragments of orig: each fits
// mtu, has a valid header and checksum, the identification id, contiguous
// offsets in 8-byte units, MF on all but the last, and together they carry
// orig's payload.
func checkIPv4Fragments(t *testing.T, orig []byte, mtu int, id uint16, out [][]byte, sizes []int, n int) {
	t.Helper()
	o := IPv4(orig)
	var payload []byte
	for i := 0; i < n; i++ {
		f := IPv4(out[i][:sizes[i]])
		if !f.IsValid() || int(f.TotalLen()) != sizes[i] {
			t.Fatalf("fragment %d: invalid header or total length %d, want %d", i, f.TotalLen(), sizes[i])
		}
		if sizes[i] > mtu {
			t.Errorf("fragment %d: got %d bytes, want <= mtu %d", i, sizes[i], mtu)
		}
		if !f.ChecksumValid() {
			t.Errorf("fragment %d: header checksum does not verify", i)
		}
		if f.ID() != id {
			t.Errorf("fragment %d: got ID %#x, want %#x", i, f.ID(), id)
		}
		if got, want := f.FragmentOffset(), o.FragmentOffset()+len(payload); got != want {
			t.Errorf("fragment %d: got offset %d, want %d", i, got, want)
		}
		last := i == n-1
		if got, want := f.More(), !last || o.More(); got != want {
			t.Errorf("fragment %d: got MF %v, want %v", i, got, want)
		}
		if !last && len(f.Payload())%8 != 0 {
			t.Errorf("fragment %d: payload %d bytes, not a multiple of 8", i, len(f.Payload()))
		}
		if f.Protocol() != o.Protocol() || f.Src() != o.Src() || f.Dst() != o.Dst() || f.TTL() != o.TTL() || f.TOS() != o.TOS() {
			t.Errorf("fragment %d: header fields differ from the original", i)
		}
		payload = append(payload, f.Payload()...)
	}
	if !bytes.Equal(payload, o.Payload()) {
		t.Errorf("fragments carry %d payload bytes that differ from the original's %d", len(payload), len(o.Payload()))
	}
}

// TestFragmentIPv4Fixture pins the bytes of a datagram with options split
// in two. The datagram (64 bytes, IHL 10):
//
//	4a 00 00 40 ab cd 00 00 40 11 40 82 c0 00 02 01   ver/IHL, len 64, ID abcd, TTL 64, UDP
//	c6 33 64 02 82 0b 00 01 02 03 04 05 06 07 08 07   option 0x82 (security, copied) len 11; 0x07 (record route, not copied)
//	07 04 00 00 00 00 00 00 00 07 12 34 00 18 00 00   ... RR len 7, EOL, EOL | UDP 7 -> 0x1234 len 24
//	00 01 02 03 04 05 06 07 08 09 0a 0b 0c 0d 0e 0f   16 bytes of data
//
// At MTU 56 the first fragment keeps both options (40-byte header, 16
// payload bytes, MF); the second carries only the copied option padded to
// 12 bytes (IHL 8), offset 2 (16 bytes), the last 8 payload bytes.
func TestFragmentIPv4Fixture(t *testing.T) {
	pkt := mustHex(t, "4a000040abcd000040114082c0000201c6336402"+
		"820b0001020304050607080707040000000000000007123400180000"+
		"000102030405060708090a0b0c0d0e0f")
	want := []string{
		// 00000000  4a 00 00 38 12 34 20 00  40 11 ba 23 c0 00 02 01
		// 00000010  c6 33 64 02 82 0b 00 01  02 03 04 05 06 07 08 07
		// 00000020  07 04 00 00 00 00 00 00  00 07 12 34 00 18 00 00
		// 00000030  00 01 02 03 04 05 06 07
		"4a000038123420004011ba23c0000201c6336402820b000102030405060708070704000000000000" +
			"0007123400180000" + "0001020304050607",
		// 00000000  48 00 00 28 12 34 00 02  40 11 e3 3c c0 00 02 01
		// 00000010  c6 33 64 02 82 0b 00 01  02 03 04 05 06 07 08 00
		// 00000020  08 09 0a 0b 0c 0d 0e 0f
		"480000281234000240" + "11e33cc0000201c6336402820b00010203040506070800" + "08090a0b0c0d0e0f",
	}
	if !IPv4(pkt).ChecksumValid() {
		t.Fatal("fixture checksum does not verify")
	}
	out, sizes := fragBufs(4, 64)
	n, err := FragmentIPv4(pkt, 56, 0x1234, out, sizes)
	if err != nil {
		t.Fatalf("FragmentIPv4: %v", err)
	}
	if n != len(want) {
		t.Fatalf("got %d fragments, want %d", n, len(want))
	}
	for i := range want {
		if got := hex.EncodeToString(out[i][:sizes[i]]); got != want[i] {
			t.Errorf("fragment %d:\ngot  %s\nwant %s", i, got, want[i])
		}
	}

	// Reassembled in either order, the datagram comes back byte for byte,
	// its ID now 0x1234.
	wantDgram := append([]byte(nil), pkt...)
	IPv4(wantDgram).SetID(0x1234)
	IPv4(wantDgram).SetChecksum(IPv4(wantDgram).CalculateChecksum())
	for _, order := range [][]int{{0, 1}, {1, 0}} {
		r := NewReassembler(ReassemblyConfig{MinFirstFragment: -1})
		var got []byte
		for _, i := range order {
			d, err := r.Add(out[i][:sizes[i]])
			if err != nil {
				t.Fatalf("order %v: Add(%d): %v", order, i, err)
			}
			got = d
		}
		if !bytes.Equal(got, wantDgram) {
			t.Errorf("order %v: reassembled\ngot  %x\nwant %x", order, got, wantDgram)
		}
	}
}

func TestFragmentIPv4Sizes(t *testing.T) {
	tests := []struct {
		name       string
		payloadLen int
		mtu        int
		wantSizes  []int
	}{
		{"fits exactly", 1480, 1500, []int{1500}},
		{"one byte over", 1481, 1500, []int{1500, 21}},
		{"jumbo inner packet at 1500", 9050 - 20, 1500, []int{1500, 1500, 1500, 1500, 1500, 1500, 170}},
		{"mtu not a multiple of 8 plus header", 100, 50, []int{44, 44, 44, 44, 24}},
		{"minimum IPv4 MTU", 200, 68, []int{68, 68, 68, 68, 28}},
		{"tiny mtu", 24, 28, []int{28, 28, 28}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			pkt := fragMakeIPv4(tt.payloadLen, 7)
			cnt, err := FragmentCount(pkt, tt.mtu)
			if err != nil || cnt != len(tt.wantSizes) {
				t.Fatalf("FragmentCount: got %d, %v, want %d", cnt, err, len(tt.wantSizes))
			}
			out, sizes := fragBufs(cnt, tt.mtu)
			n, err := FragmentIPv4(pkt, tt.mtu, 0xbeef, out, sizes)
			if err != nil {
				t.Fatalf("FragmentIPv4: %v", err)
			}
			if got := sizes[:n]; !equalInts(got, tt.wantSizes) {
				t.Fatalf("got sizes %v, want %v", got, tt.wantSizes)
			}
			if n == 1 {
				if !bytes.Equal(out[0][:sizes[0]], pkt) {
					t.Errorf("a packet that fits: got %x, want an unchanged copy", out[0][:sizes[0]])
				}
				return
			}
			checkIPv4Fragments(t, pkt, tt.mtu, 0xbeef, out, sizes, n)
		})
	}
}

func equalInts(a, b []int) bool {
	if len(a) != len(b) {
		return false
	}
	for i := range a {
		if a[i] != b[i] {
			return false
		}
	}
	return true
}

func TestFragmentIPv4Errors(t *testing.T) {
	df := fragMakeIPv4(2000, 1)
	IPv4(df).SetFlagsOffset(IPv4FlagDF, 0)
	badOpt := fragIPv4WithOptions([]byte{0x88, 0x09, 0xff, 0xff}, 100, 1) // option length 9 > 4 bytes left
	tests := []struct {
		name    string
		pkt     []byte
		mtu     int
		nbufs   int
		bufSize int
		want    error
	}{
		{"DF set", df, 1500, 4, 1500, ErrDontFragment},
		{"mtu below header plus 8", fragMakeIPv4(100, 1), 27, 16, 64, ErrMTUTooSmall},
		{"too few buffers", fragMakeIPv4(3000, 1), 1500, 2, 1500, ErrFragmentBuffers},
		{"buffer too short", fragMakeIPv4(3000, 1), 1500, 3, 1400, ErrFragmentBuffers},
		{"no buffer for a copy", fragMakeIPv4(30, 1), 1500, 0, 0, ErrFragmentBuffers},
		{"truncated", fragMakeIPv4(3000, 1)[:100], 1500, 4, 1500, ErrMalformed},
		{"empty", nil, 1500, 4, 1500, ErrMalformed},
		{"option length past header", badOpt, 24, 4, 64, ErrMalformed},
		{"IPv6 packet", fragMakeIPv6(3000, 1), 1500, 4, 1500, ErrMalformed},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			out, sizes := fragBufs(tt.nbufs, tt.bufSize)
			n, err := FragmentIPv4(tt.pkt, tt.mtu, 1, out, sizes)
			if !errors.Is(err, tt.want) || n != 0 {
				t.Errorf("got %d, %v, want 0, %v", n, err, tt.want)
			}
		})
	}
	t.Run("DF set but fits", func(t *testing.T) {
		pkt := fragMakeIPv4(100, 1)
		IPv4(pkt).SetFlagsOffset(IPv4FlagDF, 0)
		out, sizes := fragBufs(1, 1500)
		if n, err := FragmentIPv4(pkt, 1500, 1, out, sizes); n != 1 || err != nil {
			t.Errorf("got %d, %v, want 1, nil", n, err)
		}
	})
}

// TestFragmentIPv4Refragment fragments a fragment again (RFC 791 allows a
// router to): offsets continue and the last piece keeps MF.
func TestFragmentIPv4Refragment(t *testing.T) {
	pkt := fragMakeIPv4(4000, 99)
	out, sizes := fragBufs(4, 1500)
	n, err := FragmentIPv4(pkt, 1500, 99, out, sizes)
	if err != nil || n != 3 {
		t.Fatalf("FragmentIPv4: got %d, %v, want 3, nil", n, err)
	}
	var all [][]byte
	for i := 0; i < n; i++ {
		f := out[i][:sizes[i]]
		out2, sizes2 := fragBufs(4, 576)
		m, err := FragmentIPv4(f, 576, 99, out2, sizes2)
		if err != nil {
			t.Fatalf("refragment %d: %v", i, err)
		}
		checkIPv4Fragments(t, f, 576, 99, out2, sizes2, m)
		for j := 0; j < m; j++ {
			all = append(all, out2[j][:sizes2[j]])
		}
	}
	r := NewReassembler(ReassemblyConfig{})
	var got []byte
	for i := len(all) - 1; i >= 0; i-- {
		d, err := r.Add(all[i])
		if err != nil {
			t.Fatalf("Add: %v", err)
		}
		if d != nil && i != 0 {
			t.Fatalf("datagram completed early at piece %d", i)
		}
		got = d
	}
	if !bytes.Equal(got, pkt) {
		t.Errorf("reassembled %d bytes differ from the original %d", len(got), len(pkt))
	}
}

// TestFragmentIPv4Gopacket checks our fragments with an independent decoder
// and defragmenter: gopacket's layers.IPv4 and ip4defrag.
func TestFragmentIPv4Gopacket(t *testing.T) {
	for _, payloadLen := range []int{1490, 3000, 9050 - 20} {
		pkt := fragMakeIPv4(payloadLen, 0x4242)
		out, sizes := fragBufs(8, 1500)
		n, err := FragmentIPv4(pkt, 1500, 0x4242, out, sizes)
		if err != nil {
			t.Fatalf("FragmentIPv4: %v", err)
		}
		d := ip4defrag.NewIPv4Defragmenter()
		var whole *layers.IPv4
		for i := 0; i < n; i++ {
			var ip layers.IPv4
			if err := ip.DecodeFromBytes(out[i][:sizes[i]], gopacket.NilDecodeFeedback); err != nil {
				t.Fatalf("gopacket decode of fragment %d: %v", i, err)
			}
			if got, want := int(ip.FragOffset)*8, i*1480; got != want {
				t.Errorf("fragment %d: gopacket offset got %d, want %d", i, got, want)
			}
			if got, want := ip.Flags&layers.IPv4MoreFragments != 0, i < n-1; got != want {
				t.Errorf("fragment %d: gopacket MF got %v, want %v", i, got, want)
			}
			if ip.Id != 0x4242 || int(ip.Length) != sizes[i] {
				t.Errorf("fragment %d: gopacket got id %#x len %d, want 0x4242, %d", i, ip.Id, ip.Length, sizes[i])
			}
			res, err := d.DefragIPv4(&ip)
			if err != nil {
				t.Fatalf("ip4defrag fragment %d: %v", i, err)
			}
			if res != nil {
				whole = res
			}
		}
		if whole == nil {
			t.Fatalf("payload %d: ip4defrag did not complete the datagram", payloadLen)
		}
		if !bytes.Equal(whole.Payload, IPv4(pkt).Payload()) {
			t.Errorf("payload %d: ip4defrag payload differs from the original", payloadLen)
		}
	}
}

// TestFragmentIPv6Fixture pins the bytes of an IPv6 packet split in two:
// 40-byte header, 32 payload bytes (UDP 8 + 24 data), MTU 64. Each fragment
// is the fixed header (next header 44), the fragment header and 16 bytes of
// payload.
func TestFragmentIPv6Fixture(t *testing.T) {
	pkt := mustHex(t, "6000000000201140"+
		"20010db8000000000000000000000001"+"20010db8000000000000000000000002"+
		"0007123400200000"+"000102030405060708090a0b0c0d0e0f1011121314151617")
	want := []string{
		// 60 00 00 00 00 18 2c 40  <src 2001:db8::1> <dst 2001:db8::2>   payload len 24, next header 44
		// 11 00 00 01 ca fe f0 0d                    UDP, offset 0, M, ID cafef00d
		// 00 07 12 34 00 20 00 00  00 01 02 03 04 05 06 07
		"6000000000182c40" + "20010db8000000000000000000000001" + "20010db8000000000000000000000002" +
			"11000001cafef00d" + "00071234002000000001020304050607",
		// 60 00 00 00 00 18 2c 40  <src> <dst>       payload len 24
		// 11 00 00 10 ca fe f0 0d                    offset 16 (2 units), no M
		// 08 09 0a 0b 0c 0d 0e 0f  10 11 12 13 14 15 16 17
		"6000000000182c40" + "20010db8000000000000000000000001" + "20010db8000000000000000000000002" +
			"11000010cafef00d" + "08090a0b0c0d0e0f1011121314151617",
	}
	out, sizes := fragBufs(4, 64)
	n, err := FragmentIPv6(pkt, 64, 0xcafef00d, out, sizes)
	if err != nil || n != len(want) {
		t.Fatalf("FragmentIPv6: got %d, %v, want %d, nil", n, err, len(want))
	}
	for i := range want {
		if got := hex.EncodeToString(out[i][:sizes[i]]); got != want[i] {
			t.Errorf("fragment %d:\ngot  %s\nwant %s", i, got, want[i])
		}
	}
	r := NewReassembler(ReassemblyConfig{MinFirstFragment: -1})
	if d, err := r.Add(out[1][:sizes[1]]); d != nil || err != nil {
		t.Fatalf("Add(second): got %x, %v, want nil, nil", d, err)
	}
	got, err := r.Add(out[0][:sizes[0]])
	if err != nil || !bytes.Equal(got, pkt) {
		t.Errorf("reassembled: got %x, %v, want %x", got, err, pkt)
	}
}

// fragIPv6WithExt returns an IPv6 packet whose header chain is the given
// extension header types (each 8 bytes) followed by UDP and payloadLen bytes.
func fragIPv6WithExt(payloadLen int, id uint32, exts ...uint8) []byte {
	body := fragMakeIPv6(payloadLen, id)[IPv6HeaderLen:]
	pkt := fragMakeIPv6(0, id)
	nh := ProtoUDP
	var chain []byte
	for i := len(exts) - 1; i >= 0; i-- {
		h := []byte{nh, 0, 1, 4, 0, 0, 0, 0} // PadN option
		if exts[i] == 43 {
			h = []byte{nh, 0, 0, 0, 0, 0, 0, 0} // type 0, no segments left
		}
		chain = append(h, chain...)
		nh = exts[i]
	}
	pkt = append(append(pkt, chain...), body...)
	IPv6(pkt).SetNextHeader(nh)
	IPv6(pkt).SetPayloadLen(uint16(len(pkt) - IPv6HeaderLen))
	return pkt
}

func TestFragmentIPv6(t *testing.T) {
	tests := []struct {
		name       string
		pkt        []byte
		mtu        int
		wantN      int
		wantUnfrag int // bytes before the fragment header
		wantErr    error
	}{
		{"no extension headers, 1280", fragMakeIPv6(3000, 1), 1280, 3, 40, nil},
		{"jumbo inner packet at 1500", fragMakeIPv6(9070, 2), 1500, 7, 40, nil},
		{"fits", fragMakeIPv6(1000, 3), 1280, 1, 0, nil},
		{"hop-by-hop stays in front", fragIPv6WithExt(3000, 4, 0), 1280, 3, 48, nil},
		{"hop-by-hop and routing", fragIPv6WithExt(3000, 5, 0, 43), 1280, 3, 56, nil},
		{"destination options after routing are fragmentable", fragIPv6WithExt(3000, 6, 43, 60), 1280, 3, 48, nil},
		{"already a fragment", fragIPv6WithExt(3000, 7, 44), 1280, 0, 0, ErrNotFragmentable},
		{"truncated extension header", fragIPv6WithExt(3000, 8, 0)[:44], 1280, 0, 0, ErrMalformed},
		{"mtu too small", fragMakeIPv6(3000, 9), 55, 0, 0, ErrMTUTooSmall},
		{"IPv4 packet", fragMakeIPv4(3000, 9), 1280, 0, 0, ErrMalformed},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			out, sizes := fragBufs(8, tt.mtu)
			n, err := FragmentIPv6(tt.pkt, tt.mtu, 0x11223344, out, sizes)
			if !errors.Is(err, tt.wantErr) || n != tt.wantN {
				t.Fatalf("got %d, %v, want %d, %v", n, err, tt.wantN, tt.wantErr)
			}
			if err != nil || n == 1 {
				return
			}
			// gopacket decodes each fragment's header chain.
			var payload []byte
			for i := 0; i < n; i++ {
				f := out[i][:sizes[i]]
				if sizes[i] > tt.mtu {
					t.Errorf("fragment %d: %d bytes, want <= %d", i, sizes[i], tt.mtu)
				}
				p := gopacket.NewPacket(f, layers.LayerTypeIPv6, gopacket.Default)
				fl, _ := p.Layer(layers.LayerTypeIPv6Fragment).(*layers.IPv6Fragment)
				if fl == nil {
					t.Fatalf("fragment %d: gopacket finds no fragment header: %v", i, p)
				}
				if fl.Identification != 0x11223344 || fl.MoreFragments != (i < n-1) || int(fl.FragmentOffset)*8 != len(payload) {
					t.Errorf("fragment %d: gopacket got id %#x M %v offset %d, want 0x11223344 %v %d",
						i, fl.Identification, fl.MoreFragments, int(fl.FragmentOffset)*8, i < n-1, len(payload))
				}
				nhOff := 6
				if tt.wantUnfrag > IPv6HeaderLen {
					nhOff = tt.wantUnfrag - 8
				}
				u := append([]byte(nil), f[:tt.wantUnfrag]...)
				copy(u[4:6], tt.pkt[4:6]) // payload length
				u[nhOff] = tt.pkt[nhOff]
				if !bytes.Equal(u, tt.pkt[:tt.wantUnfrag]) || f[nhOff] != ProtoIPv6Frag {
					t.Errorf("fragment %d: unfragmentable part changed, or not pointing at the fragment header", i)
				}
				if got := int(IPv6(f).PayloadLen()) + IPv6HeaderLen; got != sizes[i] {
					t.Errorf("fragment %d: payload length says %d bytes, got %d", i, got, sizes[i])
				}
				payload = append(payload, f[tt.wantUnfrag+IPv6FragmentHeaderLen:]...)
			}
			if !bytes.Equal(payload, tt.pkt[tt.wantUnfrag:]) {
				t.Errorf("fragments carry a payload different from the original's")
			}
			// Our reassembler undoes it, in reverse order.
			r := NewReassembler(ReassemblyConfig{})
			var got []byte
			for i := n - 1; i >= 0; i-- {
				d, err := r.Add(out[i][:sizes[i]])
				if err != nil {
					t.Fatalf("Add(%d): %v", i, err)
				}
				got = d
			}
			if !bytes.Equal(got, tt.pkt) {
				t.Errorf("reassembled packet differs from the original:\ngot  %x\nwant %x", got[:64], tt.pkt[:64])
			}
		})
	}
}

func TestFragmentAllocs(t *testing.T) {
	p4 := fragMakeIPv4(9050-20, 1)
	p6 := fragMakeIPv6(9050-40, 1)
	out, sizes := fragBufs(8, 1500)
	if a := testing.AllocsPerRun(100, func() {
		if _, err := FragmentIPv4(p4, 1500, 1, out, sizes); err != nil {
			t.Fatal(err)
		}
	}); a != 0 {
		t.Errorf("FragmentIPv4: got %v allocs, want 0", a)
	}
	if a := testing.AllocsPerRun(100, func() {
		if _, err := FragmentIPv6(p6, 1500, 1, out, sizes); err != nil {
			t.Fatal(err)
		}
	}); a != 0 {
		t.Errorf("FragmentIPv6: got %v allocs, want 0", a)
	}
	df := fragMakeIPv4(2000, 1)
	IPv4(df).SetFlagsOffset(IPv4FlagDF, 0)
	if a := testing.AllocsPerRun(100, func() { FragmentIPv4(df, 1500, 1, out, sizes) }); a != 0 {
		t.Errorf("FragmentIPv4 refusing DF: got %v allocs, want 0", a)
	}
	var g IDGenerator
	if a := testing.AllocsPerRun(100, func() { g.Next(fragDst6) }); a != 0 {
		t.Errorf("IDGenerator.Next: got %v allocs, want 0", a)
	}
}

func TestIDGenerator(t *testing.T) {
	t.Run("zero value counts per destination", func(t *testing.T) {
		var g IDGenerator
		a0, b0 := g.Next(fragDst4), g.Next(fragDst6)
		for i := uint32(1); i < 100; i++ {
			if got := g.Next(fragDst4); got != a0+i {
				t.Fatalf("dst4 call %d: got %#x, want %#x", i, got, a0+i)
			}
		}
		if got := g.Next(fragDst6); got != b0+1 {
			t.Errorf("dst6: got %#x, want %#x", got, b0+1)
		}
	})
	t.Run("generators start at random points", func(t *testing.T) {
		seen := map[uint32]bool{}
		for i := 0; i < 8; i++ {
			seen[NewIDGenerator().Next(fragDst4)] = true
		}
		if len(seen) < 7 {
			t.Errorf("8 generators gave only %d distinct first IDs", len(seen))
		}
	})
	t.Run("concurrent callers never share an ID", func(t *testing.T) {
		g := NewIDGenerator()
		const workers, per = 4, 5000
		ids := make([][]uint32, workers)
		var wg sync.WaitGroup
		for w := 0; w < workers; w++ {
			wg.Add(1)
			go func() {
				defer wg.Done()
				for i := 0; i < per; i++ {
					ids[w] = append(ids[w], g.Next(fragDst4))
				}
			}()
		}
		wg.Wait()
		seen := map[uint16]bool{}
		for _, l := range ids {
			for _, id := range l {
				if seen[uint16(id)] {
					t.Fatalf("16-bit ID %#x handed out twice within %d calls", uint16(id), workers*per)
				}
				seen[uint16(id)] = true
			}
		}
	})
}
