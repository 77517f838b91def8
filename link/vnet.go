package link

import (
	"encoding/binary"
	"errors"

	"github.com/vxswitch/vxswitch/encap"
)

// virtio-net header (linux/virtio_net.h), in front of every frame of a TAP
// opened with IFF_VNET_HDR, in host (little-endian) byte order:
//
//	flags u8 | gso_type u8 | hdr_len u16 | gso_size u16 | csum_start u16 | csum_offset u16
const (
	virtioNetHdrLen = 10

	virtioFlagNeedsCsum = 1
	virtioGSONone       = 0
	virtioGSOTCPv4      = 1
	virtioGSOTCPv6      = 4
	virtioGSOECN        = 0x80
)

// vnetHdr is a decoded virtio-net header.
type vnetHdr struct {
	flags, gsoType        uint8
	gsoSize               int
	csumStart, csumOffset int
}

func parseVnetHdr(b []byte) vnetHdr {
	return vnetHdr{
		flags: b[0], gsoType: b[1],
		gsoSize:    int(binary.LittleEndian.Uint16(b[4:])),
		csumStart:  int(binary.LittleEndian.Uint16(b[6:])),
		csumOffset: int(binary.LittleEndian.Uint16(b[8:])),
	}
}

var errOffload = errors.New("malformed offload frame")

// completeChecksum finishes a checksum the kernel left to "hardware": the
// field at csumStart+csumOffset holds the pseudo-header sum; the one's
// complement of the sum from csumStart to the end goes there.
func completeChecksum(frame []byte, h vnetHdr) error {
	if h.csumStart+h.csumOffset+2 > len(frame) {
		return errOffload
	}
	c := ^encap.Checksum(frame[h.csumStart:], 0)
	if c == 0 && h.csumOffset == 6 {
		c = 0xffff // UDP: zero means "no checksum" (RFC 768), and IPv6 refuses it
	}
	binary.BigEndian.PutUint16(frame[h.csumStart+h.csumOffset:], c)
	return nil
}

// tsoFrame describes a TCP super-frame to segment.
type tsoFrame struct {
	frame   []byte
	ipOff   int // start of the IP header
	tcpOff  int // start of the TCP header
	hdrLen  int // Ethernet + IP + TCP headers
	mss     int
	v6      bool
	id      uint16 // IPv4 identification of the first segment
	seq     uint32
	flags   uint8 // TCP flags of the super-frame
	segs    int
	payload int
}

// parseTSO checks a GSO super-frame from the TAP and prepares its
// segmentation into frames whose TCP payload is at most h.gsoSize.
func parseTSO(frame []byte, h vnetHdr) (tsoFrame, error) {
	t := tsoFrame{frame: frame, tcpOff: h.csumStart, mss: h.gsoSize}
	eth := encap.Ethernet(frame)
	if !eth.IsValid() || t.mss <= 0 || t.tcpOff+20 > len(frame) {
		return t, errOffload
	}
	t.ipOff = eth.HeaderLen()
	t.hdrLen = t.tcpOff + int(frame[t.tcpOff+12]>>4)*4
	if t.hdrLen > len(frame) || t.hdrLen < t.tcpOff+20 || t.hdrLen+t.mss > MaxFrame {
		return t, errOffload
	}
	switch h.gsoType &^ virtioGSOECN {
	case virtioGSOTCPv4:
		ip := encap.IPv4(frame[t.ipOff:])
		if len(ip) < encap.IPv4MinHeaderLen || ip.HeaderLen() != t.tcpOff-t.ipOff {
			return t, errOffload
		}
		t.id = ip.ID()
	case virtioGSOTCPv6:
		if t.tcpOff-t.ipOff != encap.IPv6HeaderLen || len(frame) < t.tcpOff {
			return t, errOffload // extension headers: not produced by the kernel's TSO
		}
		t.v6 = true
	default:
		return t, errOffload
	}
	t.seq = binary.BigEndian.Uint32(frame[t.tcpOff+4:])
	t.flags = frame[t.tcpOff+13]
	t.payload = len(frame) - t.hdrLen
	t.segs = (t.payload + t.mss - 1) / t.mss
	if t.segs == 0 {
		t.segs = 1
	}
	return t, nil
}

// segment writes segment i of t into dst (which must hold hdrLen+mss
// bytes) as a whole frame with complete IP and TCP checksums, and returns
// its length. With partial, the TCP checksum is left as checksum offload
// takes it: the pseudo-header sum in its field (encap.FinishTCPChecksum
// finishes it).
func (t *tsoFrame) segment(i int, dst []byte, partial bool) int {
	const (
		tcpFIN = 0x01
		tcpPSH = 0x08
		tcpCWR = 0x80
	)
	lo := t.hdrLen + i*t.mss
	hi := min(lo+t.mss, len(t.frame))
	n := copy(dst, t.frame[:t.hdrLen])
	n += copy(dst[n:], t.frame[lo:hi])
	seg := dst[:n]
	tcp := seg[t.tcpOff:]
	binary.BigEndian.PutUint32(tcp[4:], t.seq+uint32(i*t.mss))
	flags := t.flags
	if i != t.segs-1 {
		flags &^= tcpFIN | tcpPSH
	}
	if i != 0 {
		flags &^= tcpCWR
	}
	tcp[13] = flags
	tcpLen := n - t.tcpOff
	var pseudo uint16
	if t.v6 {
		ip := encap.IPv6(seg[t.ipOff:])
		ip.SetPayloadLen(uint16(n - t.ipOff - encap.IPv6HeaderLen))
		pseudo = encap.PseudoHeaderChecksum(encap.ProtoTCP, ip.SrcBytes(), ip.DstBytes(), uint16(tcpLen))
	} else {
		ip := encap.IPv4(seg[t.ipOff:])
		ip.SetTotalLen(uint16(n - t.ipOff))
		ip.SetID(t.id + uint16(i))
		ip.SetChecksum(ip.CalculateChecksum())
		pseudo = encap.PseudoHeaderChecksum(encap.ProtoTCP, ip.SrcBytes(), ip.DstBytes(), uint16(tcpLen))
	}
	if partial {
		binary.BigEndian.PutUint16(tcp[16:], pseudo)
		return n
	}
	tcp[16], tcp[17] = 0, 0
	binary.BigEndian.PutUint16(tcp[16:], ^encap.Checksum(tcp, pseudo))
	return n
}
