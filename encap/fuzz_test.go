package encap

import (
	"bytes"
	"encoding/binary"
	"errors"
	"testing"
)

// Fuzzers for every parser in the package. Each checks that garbage never
// panics (an out-of-bounds read is a panic in Go) and that what the package
// builds round-trips. Crashers found by `go test -fuzz` land in
// testdata/fuzz/<FuzzName>/ and are kept there as regression inputs.

// FuzzEthernet: the Ethernet view on arbitrary bytes, and FlowHash.
func FuzzEthernet(f *testing.F) {
	f.Add(untaggedFrame)                                          // untagged header, no payload
	f.Add(taggedFrame)                                            // 802.1Q, PCP 5, VLAN 100
	f.Add(taggedFrame[:16])                                       // tag cut short
	f.Add(testFrame(60, 1))                                       // minimal IPv4/UDP frame
	f.Add(synFrame(synSpec{ipv6: true, vlan: 9, opts: optLinux})) // tagged IPv6 TCP
	f.Add([]byte{})                                               // empty
	f.Fuzz(func(t *testing.T, b []byte) {
		_ = FlowHash(b)
		e := Ethernet(b)
		if !e.IsValid() {
			if len(b) >= EthernetHeaderLen+VLANTagLen {
				t.Fatalf("IsValid() = false on %d bytes", len(b))
			}
			return
		}
		hl := e.HeaderLen()
		if hl > len(b) || len(e.Payload()) != len(b)-hl {
			t.Fatalf("HeaderLen %d, payload %d, frame %d", hl, len(e.Payload()), len(b))
		}
		// Re-encode what we read: the header must come out the same,
		// except a VLAN 0 tag (a priority tag), which Fields cannot express.
		fl := EthernetFields{Dst: e.Dst(), Src: e.Src(), VLAN: e.VLAN(), EtherType: e.EtherType()}
		if e.Tagged() {
			fl.PCP = b[14] >> 5
		}
		if e.Tagged() && (e.VLAN() == 0 || b[14]&0x10 != 0) {
			return // priority tag or DEI set: not representable
		}
		out := make([]byte, fl.Len())
		fl.Encode(out)
		if !bytes.Equal(out, b[:hl]) {
			t.Fatalf("re-encoded header % x, want % x", out, b[:hl])
		}
	})
}

// FuzzHeaders: the IPv4, IPv6, IPv6 fragment, UDP, TCP and VXLAN views and
// the TCP option iterator on arbitrary bytes.
func FuzzHeaders(f *testing.F) {
	f.Add(ipv4Packet(0))         // Wikipedia IPv4 header
	f.Add(ipv6Packet)            // IPv6/UDP fixture
	f.Add(ipv6FragHeader)        // fragment header
	f.Add(udpDatagram)           // UDP fixture
	f.Add(tcpSYN)                // TCP SYN with Linux options
	f.Add(vxlanPacket)           // VXLAN + minimal inner Ethernet
	f.Add([]byte{0x4f, 0, 0, 0}) // IHL 15 on 4 bytes
	f.Fuzz(func(t *testing.T, b []byte) {
		if ip := IPv4(b); ip.IsValid() {
			if ip.HeaderLen() < IPv4MinHeaderLen || len(ip.Payload()) != int(ip.TotalLen())-ip.HeaderLen() {
				t.Fatalf("IPv4: header %d total %d payload %d", ip.HeaderLen(), ip.TotalLen(), len(ip.Payload()))
			}
			_, _, _, _, _ = ip.Options(), ip.Src(), ip.Dst(), ip.FragmentOffset(), ip.More()
			_ = ip.ChecksumValid()
		}
		if ip := IPv6(b); ip.IsValid() {
			if len(ip.Payload()) != int(ip.PayloadLen()) {
				t.Fatalf("IPv6: payload %d, field %d", len(ip.Payload()), ip.PayloadLen())
			}
			_, _, _, _ = ip.Src(), ip.Dst(), ip.TrafficClass(), ip.FlowLabel()
			_ = ipv6TCP(ip)
		}
		if fh := IPv6Fragment(b); fh.IsValid() {
			g := IPv6FragmentFields{NextHeader: fh.NextHeader(), Offset: fh.FragmentOffset(), More: fh.More(), ID: fh.ID()}
			out := make([]byte, IPv6FragmentHeaderLen)
			g.Encode(out)
			back := IPv6Fragment(out)
			if back.NextHeader() != g.NextHeader || back.FragmentOffset() != g.Offset || back.More() != g.More || back.ID() != g.ID {
				t.Fatalf("fragment header round trip: %+v", g)
			}
		}
		if u := UDP(b); u.IsValid() {
			if len(u.Payload()) != int(u.Length())-UDPHeaderLen {
				t.Fatalf("UDP: payload %d, length %d", len(u.Payload()), u.Length())
			}
			_ = UDPChecksum(u[:u.Length()], []byte{1, 2, 3, 4}, []byte{5, 6, 7, 8})
		}
		if tc := TCP(b); tc.IsValid() {
			_ = TCPChecksum(tc, []byte{1, 2, 3, 4}, []byte{5, 6, 7, 8})
			opts := tc.Options()
			it := tc.OptionIter()
			next := 0
			for o, ok := it.Next(); ok; o, ok = it.Next() {
				if o.Offset != next || o.Offset >= len(opts) || opts[o.Offset] != o.Kind {
					t.Fatalf("option at %d (kind %d), expected offset %d", o.Offset, o.Kind, next)
				}
				if o.Kind == TCPOptNOP {
					next++
					continue
				}
				if len(o.Data) != int(opts[o.Offset+1])-2 {
					t.Fatalf("option kind %d: data %d bytes, length byte %d", o.Kind, len(o.Data), opts[o.Offset+1])
				}
				next = o.Offset + 2 + len(o.Data)
			}
		}
		if vni, frame, err := DecapVXLAN(b); err == nil {
			if !vni.Valid() || len(frame) != len(b)-VXLANHeaderLen {
				t.Fatalf("DecapVXLAN: vni %d, frame %d of %d", vni, len(frame), len(b))
			}
		}
	})
}

// FuzzDecapIP: DecapIP on arbitrary bytes, and EncapIP-then-DecapIP round
// trips for an arbitrary frame, VNI, tunnel family and IPv4 ID.
func FuzzDecapIP(f *testing.F) {
	// Packets EncapIP builds, IPv4 and IPv6 tunnels.
	v4 := encapped(f, Tunnel{Src: testSrc4, Dst: testDst4})
	v6 := encapped(f, Tunnel{Src: testSrc6, Dst: testDst6})
	f.Add(v4, uint32(5), false, uint16(1))
	f.Add(v6, uint32(MaxVNI), true, uint16(0))
	// The same, a byte short: total length past the end.
	f.Add(v4[:len(v4)-1], uint32(1), false, uint16(2))
	// An IPv4 fragment (MF set).
	frag := append([]byte(nil), v4...)
	frag[6] = 0x20
	f.Add(frag, uint32(0), false, uint16(3))
	// A minimal frame to round-trip, and nothing.
	f.Add(testFrame(42, 7), uint32(1<<24), true, uint16(0xffff))
	f.Add([]byte{}, uint32(0), false, uint16(0))

	f.Fuzz(func(t *testing.T, b []byte, vni uint32, six bool, id uint16) {
		var d Decap
		err := DecapIP(b, &d)
		if err == nil {
			if len(d.Frame) < EthernetHeaderLen || !d.VNI.Valid() || !d.Src.IsValid() || !d.Dst.IsValid() {
				t.Fatalf("DecapIP() accepted %v", &d)
			}
			// The frame is a part of the packet.
			if !bytes.Contains(b, d.Frame) {
				t.Fatalf("frame is not inside the packet")
			}
		} else if !(errors.Is(err, ErrTruncated) || errors.Is(err, ErrMalformed) || errors.Is(err, ErrNotVXLAN) ||
			errors.Is(err, ErrNoVNI) || errors.Is(err, ErrFragment)) {
			t.Fatalf("DecapIP() error %v is none of the sentinels", err)
		}

		// Round trip: b as a frame.
		if len(b) < EthernetHeaderLen || len(b) > 0xffff-InnerIPv6Overhead {
			return
		}
		tun := Tunnel{Src: testSrc4, Dst: testDst4}
		if six {
			tun = Tunnel{Src: testSrc6, Dst: testDst6}
		}
		v := VNI(vni) & MaxVNI
		buf := make([]byte, 64+len(b))
		copy(buf[64:], b)
		start, err := EncapIP(buf, 64, len(b), v, &tun, id)
		if err != nil {
			t.Fatalf("EncapIP() error = %v", err)
		}
		var back Decap
		if err := DecapIP(buf[start:], &back); err != nil {
			t.Fatalf("DecapIP(EncapIP()) error = %v", err)
		}
		if back.VNI != v || back.Src != tun.Src || back.Dst != tun.Dst || !bytes.Equal(back.Frame, b) {
			t.Fatalf("round trip: got %v, want vni %d %v->%v and the %d-byte frame", &back, v, tun.Src, tun.Dst, len(b))
		}
		if back.SrcPort != SourcePort(FlowHash(b)) {
			t.Fatalf("source port %d, want %d", back.SrcPort, SourcePort(FlowHash(b)))
		}
		// VXLAN alone round-trips too.
		start, err = EncapVXLAN(buf, 64, v)
		if err != nil {
			t.Fatal(err)
		}
		gv, gf, err := DecapVXLAN(buf[start:])
		if err != nil || gv != v || !bytes.Equal(gf, b) {
			t.Fatalf("DecapVXLAN(EncapVXLAN()) = %d, %d bytes, %v", gv, len(gf), err)
		}
	})
}

// segmentOf finds the TCP segment ClampMSS would work on, or nil.
func segmentOf(frame []byte) []byte {
	e := Ethernet(frame)
	if !e.IsValid() {
		return nil
	}
	switch e.EtherType() {
	case EtherTypeIPv4:
		ip := IPv4(e.Payload())
		if ip.IsValid() && ip.Protocol() == ProtoTCP && ip.FragmentOffset() == 0 {
			return ip.Payload()
		}
	case EtherTypeIPv6:
		return ipv6TCP(IPv6(e.Payload()))
	}
	return nil
}

// FuzzClampMSS: ClampMSS on arbitrary frames never panics, changes only
// MSS option values (never upward) and the checksum, keeps the segment's
// one's-complement sum (so a valid checksum stays valid), and is idempotent.
func FuzzClampMSS(f *testing.F) {
	f.Add(synFrame(synSpec{opts: optLinux}), uint16(1360))                                                    // IPv4 Linux SYN
	f.Add(synFrame(synSpec{ipv6: true, vlan: 5, opts: optNOPThenMSS}), uint16(1220))                          // IPv6, tagged, odd offset
	f.Add(synFrame(synSpec{ipv6: true, opts: optLinux, v6Ext: v6HopFrag, v6ExtNH: []uint8{0}}), uint16(1000)) // ext headers
	f.Add(synFrame(synSpec{opts: optTwoMSS}), uint16(1))                                                      // two MSS options
	f.Add(synFrame(synSpec{opts: optBadThenMSS}), uint16(100))                                                // malformed option first
	f.Add(synFrame(synSpec{v4Frag: 0x2001, opts: optLinux}), uint16(100))                                     // non-first fragment
	f.Add(append(synFrame(synSpec{opts: optMSS1460}), 0, 0, 0), uint16(62))                                   // link padding after the IP packet
	f.Add(testFrame(60, 3), uint16(100))                                                                      // UDP
	f.Add([]byte{}, uint16(0))                                                                                // nothing
	f.Fuzz(func(t *testing.T, in []byte, mss uint16) {
		// Work on a copy: the fuzzer records the input slice, and an
		// in-place change would corrupt the saved crasher.
		frame := append([]byte(nil), in...)
		orig := in
		seg := segmentOf(frame)
		var sumBefore uint16
		if seg != nil {
			sumBefore = Checksum(seg, 0)
		}
		changed := ClampMSS(frame, mss)
		if !changed {
			if !bytes.Equal(frame, orig) {
				t.Fatal("ClampMSS() = false but the frame changed")
			}
			return
		}
		if seg == nil || !TCP(seg).IsValid() || TCP(seg).Flags()&TCPFlagSYN == 0 {
			t.Fatal("ClampMSS() changed a frame that is not a TCP SYN")
		}
		if sumAfter := Checksum(seg, 0); sumAfter != sumBefore && !(sumAfter|sumBefore == 0xffff && sumAfter&sumBefore == 0) {
			t.Fatalf("segment sum %#04x before, %#04x after: checksum broken", sumBefore, sumAfter)
		}
		// Only MSS values (at most down to mss) and the checksum differ.
		base := cap(frame) - cap(seg) // seg's offset in frame (IP padding may follow it)
		allowed := map[int]bool{base + 16: true, base + 17: true}
		it := TCP(seg).OptionIter()
		for o, ok := it.Next(); ok; o, ok = it.Next() {
			if o.Kind == TCPOptMSS && len(o.Data) == 2 {
				at := base + TCPMinHeaderLen + o.Offset + 2
				allowed[at], allowed[at+1] = true, true
				nv := binary.BigEndian.Uint16(o.Data)
				ov := binary.BigEndian.Uint16(orig[at:])
				if nv > ov || (ov > mss && nv != mss) || (ov <= mss && nv != ov) {
					t.Fatalf("MSS %d -> %d with clamp %d", ov, nv, mss)
				}
			}
		}
		for i := range frame {
			if frame[i] != orig[i] && !allowed[i] {
				t.Fatalf("byte %d changed (%#02x -> %#02x), not an MSS value or the checksum", i, orig[i], frame[i])
			}
		}
		if ClampMSS(frame, mss) {
			t.Fatal("ClampMSS() not idempotent")
		}
	})
}

// FuzzTCPOf: TCPOf never panics; what it finds is the segment ClampMSS
// would look at (segmentOf), valid, inside the frame, and the same flow
// keys the same frame twice.
func FuzzTCPOf(f *testing.F) {
	f.Add(synFrame(synSpec{opts: optLinux}))                                                    // IPv4 SYN
	f.Add(synFrame(synSpec{ipv6: true, vlan: 5, opts: optNOPThenMSS}))                          // IPv6, tagged
	f.Add(synFrame(synSpec{ipv6: true, opts: optLinux, v6Ext: v6HopFrag, v6ExtNH: []uint8{0}})) // ext headers
	f.Add(synFrame(synSpec{v4Frag: 0x2001, opts: optLinux}))                                    // non-first fragment
	f.Add(testFrame(60, 3))                                                                     // UDP
	f.Add([]byte{})                                                                             // nothing
	f.Fuzz(func(t *testing.T, frame []byte) {
		seg, key, ok := TCPOf(frame)
		if !ok {
			if seg != nil || key != 0 {
				t.Fatal("TCPOf() = false with a segment or key")
			}
			return
		}
		if !seg.IsValid() || len(seg) > len(frame) {
			t.Fatalf("TCPOf() returned an invalid segment of %d bytes from %d", len(seg), len(frame))
		}
		if want := segmentOf(frame); want == nil || &want[0] != &seg[0] {
			t.Fatal("TCPOf() found another segment than segmentOf")
		}
		if _, key2, _ := TCPOf(frame); key2 != key {
			t.Fatal("the same frame keyed twice differently")
		}
	})
}
