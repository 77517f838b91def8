package link

import (
	"bytes"
	"encoding/binary"
	"net/netip"
	"testing"

	"github.com/google/gopacket"
	"github.com/google/gopacket/layers"

	"github.com/vxswitch/vxswitch/encap"
)

// superFrame builds a TCP super-frame as a TAP with TSO hands it over:
// Ethernet, IPv4 or IPv6, TCP with timestamps, payload bytes, and the
// virtio-net header that describes it (checksum left to offload).
func superFrame(v6 bool, payload, mss int) (frame []byte, h vnetHdr) {
	eth := encap.EthernetFields{Dst: macB, Src: macA, EtherType: encap.EtherTypeIPv4}
	ipLen := encap.IPv4MinHeaderLen
	if v6 {
		eth.EtherType, ipLen = encap.EtherTypeIPv6, encap.IPv6HeaderLen
	}
	const tcpLen = 32 // with a timestamp option
	frame = make([]byte, 14+ipLen+tcpLen+payload)
	eth.Encode(frame)
	if v6 {
		ip := encap.IPv6Fields{PayloadLen: uint16(tcpLen + payload), NextHeader: encap.ProtoTCP, HopLimit: 64,
			Src: netip.MustParseAddr("fd00::1"), Dst: netip.MustParseAddr("fd00::2")}
		ip.Encode(frame[14:])
	} else {
		ip := encap.IPv4Fields{TotalLen: uint16(ipLen + tcpLen + payload), ID: 100, Flags: encap.IPv4FlagDF, TTL: 64,
			Protocol: encap.ProtoTCP, Src: netip.MustParseAddr("10.11.129.1"), Dst: netip.MustParseAddr("10.11.129.2")}
		ip.Encode(frame[14:])
	}
	tcp := frame[14+ipLen:]
	binary.BigEndian.PutUint16(tcp[0:], 40000)
	binary.BigEndian.PutUint16(tcp[2:], 5201)
	binary.BigEndian.PutUint32(tcp[4:], 0xfffff000) // wraps within the frame
	binary.BigEndian.PutUint32(tcp[8:], 12345)
	tcp[12] = tcpLen / 4 << 4
	tcp[13] = tcpFlagACK | tcpFlagPSH
	binary.BigEndian.PutUint16(tcp[14:], 512)
	copy(tcp[20:], []byte{1, 1, 8, 10, 0, 0, 0, 1, 0, 0, 0, 2})
	for i := range payload {
		tcp[tcpLen+i] = byte(i * 7)
	}
	gso := uint8(virtioGSOTCPv4)
	if v6 {
		gso = virtioGSOTCPv6
	}
	return frame, vnetHdr{flags: virtioFlagNeedsCsum, gsoType: gso, gsoSize: mss, csumStart: 14 + ipLen, csumOffset: 16}
}

// gsoRecorder keeps what GRO writes.
type gsoRecorder struct {
	frames  [][]byte
	gso     [][]byte
	partial [][]byte // writePartial's frames
	starts  []int    // and their checksum starts
}

func (r *gsoRecorder) writePartial(f []byte, csumStart int) error {
	r.partial = append(r.partial, append([]byte(nil), f...))
	r.starts = append(r.starts, csumStart)
	return nil
}

func (r *gsoRecorder) writeFrame(f []byte) error {
	r.frames = append(r.frames, append([]byte(nil), f...))
	return nil
}
func (r *gsoRecorder) writeGSO(b []byte) error {
	r.gso = append(r.gso, append([]byte(nil), b...))
	return nil
}

// TestTSOThenGRO cuts super-frames into segments (software TSO), checks
// each segment with gopacket and its checksums, then merges them again
// (GRO) and checks the result carries the same headers and payload.
func TestTSOThenGRO(t *testing.T) {
	for _, v6 := range []bool{false, true} {
		for _, payload := range []int{1, 1448, 1449, 20000, 65000} {
			frame, h := superFrame(v6, payload, 1448)
			tso, err := parseTSO(frame, h)
			if err != nil {
				t.Fatalf("v6 %v payload %d: parseTSO: %v", v6, payload, err)
			}
			rec := &gsoRecorder{}
			g := newGRO(rec)
			var got []byte
			buf := make([]byte, MaxFrame)
			for i := 0; i < tso.segs; i++ {
				n := tso.segment(i, buf, false)
				seg := buf[:n]
				s, ok := parseSegment(seg, false) // checks the TCP checksum
				if !ok {
					t.Fatalf("v6 %v payload %d: segment %d does not parse or its checksum is wrong", v6, payload, i)
				}
				pkt := gopacket.NewPacket(seg, layers.LayerTypeEthernet, gopacket.Default)
				tl, _ := pkt.Layer(layers.LayerTypeTCP).(*layers.TCP)
				if tl == nil || pkt.ErrorLayer() != nil {
					t.Fatalf("segment %d: gopacket: %v", i, pkt.ErrorLayer())
				}
				if want := 0xfffff000 + uint32(i*1448); tl.Seq != want {
					t.Errorf("segment %d: seq %d, want %d", i, tl.Seq, want)
				}
				if last := i == tso.segs-1; tl.PSH != last {
					t.Errorf("segment %d: PSH %v, want %v", i, tl.PSH, last)
				}
				if !v6 {
					if ip4 := encap.IPv4(seg[14:]); !ip4.ChecksumValid() || ip4.ID() != uint16(100+i) {
						t.Errorf("segment %d: IPv4 checksum valid %v, id %d", i, ip4.ChecksumValid(), ip4.ID())
					}
				}
				got = append(got, seg[s.hdrLen:]...)
				if err := g.add(seg); err != nil {
					t.Fatal(err)
				}
			}
			if err := g.flush(); err != nil {
				t.Fatal(err)
			}
			if !bytes.Equal(got, frame[tso.hdrLen:]) {
				t.Fatalf("v6 %v payload %d: segments carry other bytes than the super-frame", v6, payload)
			}
			// GRO gives back one frame: the super-frame itself (payload that
			// fits one segment) or a GSO frame with the original payload.
			switch {
			case tso.segs == 1:
				if len(rec.frames) != 1 || len(rec.gso) != 0 {
					t.Fatalf("one segment: %d plain, %d GSO writes", len(rec.frames), len(rec.gso))
				}
			default:
				if len(rec.gso) != 1 || len(rec.frames) != 0 {
					t.Fatalf("v6 %v payload %d: %d GSO and %d plain writes, want 1 GSO", v6, payload, len(rec.gso), len(rec.frames))
				}
				gh := parseVnetHdr(rec.gso[0])
				merged := rec.gso[0][virtioNetHdrLen:]
				if gh.gsoSize != 1448 || gh.flags != virtioFlagNeedsCsum || gh.csumStart != tso.tcpOff {
					t.Errorf("GSO header %+v", gh)
				}
				if !bytes.Equal(merged[tso.hdrLen:], frame[tso.hdrLen:]) {
					t.Errorf("merged payload differs from the original")
				}
				if !bytes.Equal(merged[:tso.ipOff], frame[:tso.ipOff]) || !bytes.Equal(merged[tso.tcpOff:tso.tcpOff+16], frame[tso.tcpOff:tso.tcpOff+16]) {
					t.Errorf("merged headers differ from the original")
				}
			}
		}
	}
}

// TestPartialChecksums: segments cut with their TCP checksum left partial
// carry the pseudo-header sum, and finishing one gives exactly the
// segment cut with a complete checksum. Trusted GRO merges such segments
// without verifying them, and writes a segment it cannot merge (one
// alone, or after a gap) with its checksum left to the kernel, while a
// frame that is not TCP goes as it is.
func TestPartialChecksums(t *testing.T) {
	for _, v6 := range []bool{false, true} {
		frame, h := superFrame(v6, 3*1448+100, 1448)
		tso, err := parseTSO(frame, h)
		if err != nil {
			t.Fatal(err)
		}
		rec := &gsoRecorder{}
		g := newGRO(rec)
		g.trusted = true
		full, part := make([]byte, MaxFrame), make([]byte, MaxFrame)
		for i := 0; i < tso.segs; i++ {
			n := tso.segment(i, full, false)
			if m := tso.segment(i, part, true); m != n {
				t.Fatalf("segment %d: %d bytes partial, %d complete", i, m, n)
			}
			tcpOff, pseudo, ok := encap.TCPChecksumField(part[:n])
			if !ok || binary.BigEndian.Uint16(part[tcpOff+16:]) != pseudo {
				t.Fatalf("v6 %v segment %d: field %#04x, want the pseudo-header sum %#04x", v6, i, binary.BigEndian.Uint16(part[tcpOff+16:]), pseudo)
			}
			if err := g.add(part[:n]); err != nil {
				t.Fatal(err)
			}
			if !encap.FinishTCPChecksum(part[:n]) || !bytes.Equal(part[:n], full[:n]) {
				t.Fatalf("v6 %v segment %d: finished partial segment differs from the complete one", v6, i)
			}
		}
		// A segment that does not continue the run (a gap) is written alone.
		n := tso.segment(0, part, true)
		if err := g.add(part[:n]); err != nil {
			t.Fatal(err)
		}
		udp := udpFrame(macB, macA, 200)
		if err := g.add(udp); err != nil {
			t.Fatal(err)
		}
		if err := g.flush(); err != nil {
			t.Fatal(err)
		}
		if len(rec.gso) != 1 || len(rec.partial) != 1 || len(rec.frames) != 1 || !bytes.Equal(rec.frames[0], udp) {
			t.Fatalf("v6 %v: %d GSO, %d partial, %d plain writes; want 1 each, the plain one the UDP frame", v6, len(rec.gso), len(rec.partial), len(rec.frames))
		}
		if merged := rec.gso[0][virtioNetHdrLen:]; !bytes.Equal(merged[tso.hdrLen:], frame[tso.hdrLen:]) {
			t.Errorf("v6 %v: merged payload differs from the super-frame's", v6)
		}
		alone := rec.partial[0]
		tcpOff, pseudo, _ := encap.TCPChecksumField(alone)
		if rec.starts[0] != tcpOff || binary.BigEndian.Uint16(alone[tcpOff+16:]) != pseudo {
			t.Errorf("v6 %v: lone segment written with checksum start %d (want %d), field %#04x (want %#04x)", v6, rec.starts[0], tcpOff, binary.BigEndian.Uint16(alone[tcpOff+16:]), pseudo)
		}
		// Trust covers only what the sending site left unfinished: complete
		// segments are still verified, and a damaged one (a wrong checksum,
		// not the pseudo-header sum) is neither merged nor vouched for.
		rec = &gsoRecorder{}
		g = newGRO(rec)
		g.trusted = true
		for i := 0; i < 2; i++ {
			n := tso.segment(i, full, false)
			seg := bytes.Clone(full[:n])
			if i == 1 {
				seg[len(seg)-1] ^= 0xff
			}
			if err := g.add(seg); err != nil {
				t.Fatal(err)
			}
		}
		if err := g.flush(); err != nil {
			t.Fatal(err)
		}
		if len(rec.frames) != 2 || len(rec.partial) != 0 || len(rec.gso) != 0 {
			t.Errorf("v6 %v: complete segments, the second damaged: %d plain, %d partial, %d GSO writes; want 2 plain", v6, len(rec.frames), len(rec.partial), len(rec.gso))
		}
	}
}

// FuzzOffload feeds arbitrary virtio-net headers and frames to the
// transmit path's offload handling and arbitrary frames to GRO: nothing
// panics, every segment fits a buffer, and everything GRO writes as a
// super-frame parses as one.
func FuzzOffload(f *testing.F) {
	fr, h := superFrame(false, 5000, 1448)
	hdr := make([]byte, virtioNetHdrLen)
	hdr[0], hdr[1] = h.flags, h.gsoType
	binary.LittleEndian.PutUint16(hdr[4:], uint16(h.gsoSize))
	binary.LittleEndian.PutUint16(hdr[6:], uint16(h.csumStart))
	binary.LittleEndian.PutUint16(hdr[8:], uint16(h.csumOffset))
	f.Add(hdr, fr)                           // a valid IPv4 super-frame
	f.Add(make([]byte, virtioNetHdrLen), fr) // no GSO: forwarded as is
	f.Add(hdr, fr[:60])                      // truncated
	f.Fuzz(func(t *testing.T, hdr, frame []byte) {
		if len(hdr) < virtioNetHdrLen || len(frame) > 65535 {
			return
		}
		h := parseVnetHdr(hdr)
		if h.gsoType == virtioGSONone {
			if h.flags&virtioFlagNeedsCsum != 0 {
				_ = completeChecksum(frame, h)
			}
		} else if tso, err := parseTSO(frame, h); err == nil {
			buf := make([]byte, MaxFrame)
			for i := 0; i < tso.segs && i < 100; i++ {
				if n := tso.segment(i, buf, i%2 == 0); n > tso.hdrLen+tso.mss {
					t.Fatalf("segment %d is %d bytes, more than headers %d + mss %d", i, n, tso.hdrLen, tso.mss)
				}
			}
		}
		rec := &gsoRecorder{}
		g := newGRO(rec)
		g.trusted = len(frame)%2 == 1
		_ = g.add(frame)
		_ = g.add(frame)
		_ = g.flush()
		for _, b := range rec.gso {
			gh := parseVnetHdr(b)
			if _, err := parseTSO(b[virtioNetHdrLen:], gh); err != nil {
				t.Fatalf("GRO wrote a super-frame that does not parse: %v", err)
			}
		}
	})
}
