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
	frames [][]byte
	gso    [][]byte
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
				n := tso.segment(i, buf)
				seg := buf[:n]
				s, ok := parseSegment(seg) // checks the TCP checksum
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
				if n := tso.segment(i, buf); n > tso.hdrLen+tso.mss {
					t.Fatalf("segment %d is %d bytes, more than headers %d + mss %d", i, n, tso.hdrLen, tso.mss)
				}
			}
		}
		rec := &gsoRecorder{}
		g := newGRO(rec)
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
