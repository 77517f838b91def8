package link

import (
	"bytes"
	"encoding/binary"

	"github.com/vxswitch/vxswitch/encap"
)

// gsoWriter writes a frame as it is, a frame whose TCP checksum (at
// csumStart+16) is left to the kernel, or a TCP super-frame behind its own
// virtio-net header (a TAP with offloads on).
type gsoWriter interface {
	writeFrame(frame []byte) error
	writePartial(frame []byte, csumStart int) error
	writeGSO(hdrAndFrame []byte) error
}

// groState coalesces consecutive in-order TCP segments of one flow, as
// they come out of the receive path, into one super-frame written to the
// TAP with a virtio-net GSO header (receive offload, as a NIC's GRO does):
// the kernel then runs its stack once per super-frame instead of once per
// segment. Only segments whose TCP checksum verifies are merged, and
// anything unusual (IP options, fragments, SYN/FIN/RST/URG, differing TCP
// options or IP fields) is written as it came. Owned by the receive
// goroutine.
//
// trusted (checksum offload between sites, see ChecksumOffload): every
// frame comes out of an authenticated tunnel, and a TCP checksum may have
// been left unfinished by the sending site (the pseudo-header sum in its
// field): such a segment is taken without verifying it, and written with
// its checksum left to the kernel, merged or not. Any other checksum is
// verified as without trust, and a wrong one is written as it came, for
// the kernel to count and drop.
type groState struct {
	w       gsoWriter
	trusted bool
	buf     []byte // virtio-net header, then the frame being built
	n       int    // frame bytes in buf after the header
	count   int    // segments merged

	ipOff, tcpOff, hdrLen, mss int
	v6                         bool
	nextSeq                    uint32
	closed                     bool // a short or PSH segment ended the run
}

func newGRO(w gsoWriter) *groState {
	return &groState{w: w, buf: make([]byte, virtioNetHdrLen+65535)}
}

// tcpSegment describes a frame that may be merged.
type tcpSegment struct {
	ipOff, tcpOff, hdrLen, payload int
	v6                             bool
	seq                            uint32
	flags                          uint8
}

const (
	tcpFlagFIN = 0x01
	tcpFlagSYN = 0x02
	tcpFlagRST = 0x04
	tcpFlagPSH = 0x08
	tcpFlagACK = 0x10
	tcpFlagURG = 0x20
)

// parseSegment reports whether frame is a plain TCP data segment with a
// valid checksum that GRO may merge; with trusted, an unfinished checksum
// (the pseudo-header sum) counts as valid.
func parseSegment(frame []byte, trusted bool) (tcpSegment, bool) {
	var s tcpSegment
	eth := encap.Ethernet(frame)
	if !eth.IsValid() {
		return s, false
	}
	s.ipOff = eth.HeaderLen()
	var pseudo uint16
	switch eth.EtherType() {
	case encap.EtherTypeIPv4:
		ip := encap.IPv4(frame[s.ipOff:])
		if !ip.IsValid() || ip.HeaderLen() != encap.IPv4MinHeaderLen || ip.IsFragment() || ip.Protocol() != encap.ProtoTCP ||
			s.ipOff+int(ip.TotalLen()) != len(frame) {
			return s, false
		}
		s.tcpOff = s.ipOff + encap.IPv4MinHeaderLen
		pseudo = encap.PseudoHeaderChecksum(encap.ProtoTCP, ip.SrcBytes(), ip.DstBytes(), uint16(len(frame)-s.tcpOff))
	case encap.EtherTypeIPv6:
		ip := encap.IPv6(frame[s.ipOff:])
		if !ip.IsValid() || ip.NextHeader() != encap.ProtoTCP || s.ipOff+encap.IPv6HeaderLen+int(ip.PayloadLen()) != len(frame) {
			return s, false
		}
		s.v6 = true
		s.tcpOff = s.ipOff + encap.IPv6HeaderLen
		pseudo = encap.PseudoHeaderChecksum(encap.ProtoTCP, ip.SrcBytes(), ip.DstBytes(), uint16(len(frame)-s.tcpOff))
	default:
		return s, false
	}
	if len(frame) < s.tcpOff+20 {
		return s, false
	}
	tcp := frame[s.tcpOff:]
	s.hdrLen = s.tcpOff + int(tcp[12]>>4)*4
	s.payload = len(frame) - s.hdrLen
	s.flags = tcp[13]
	if s.hdrLen < s.tcpOff+20 || s.payload <= 0 || s.flags&^(tcpFlagACK|tcpFlagPSH) != 0 || s.flags&tcpFlagACK == 0 {
		return s, false
	}
	if !(trusted && binary.BigEndian.Uint16(tcp[16:]) == pseudo) && encap.Checksum(tcp, pseudo) != 0xffff {
		return s, false // let the kernel count the bad checksum
	}
	s.seq = binary.BigEndian.Uint32(tcp[4:])
	return s, true
}

// add delivers frame, merging it into the super-frame being built if it
// continues it. frame is not kept.
func (g *groState) add(frame []byte) error {
	s, ok := parseSegment(frame, g.trusted)
	if ok && g.count > 0 && g.canAppend(frame, s) {
		copy(g.buf[virtioNetHdrLen+g.n:], frame[s.hdrLen:])
		g.n += s.payload
		g.count++
		g.nextSeq += uint32(s.payload)
		g.closed = s.payload < g.mss || s.flags&tcpFlagPSH != 0
		if s.flags&tcpFlagPSH != 0 {
			// PSH is carried on the super-frame's header.
			g.buf[virtioNetHdrLen+g.tcpOff+13] |= tcpFlagPSH
		}
		return nil
	}
	if err := g.flush(); err != nil {
		return err
	}
	if !ok {
		return g.single(frame)
	}
	g.n = copy(g.buf[virtioNetHdrLen:], frame)
	g.count = 1
	g.ipOff, g.tcpOff, g.hdrLen, g.mss, g.v6 = s.ipOff, s.tcpOff, s.hdrLen, s.payload, s.v6
	g.nextSeq = s.seq + uint32(s.payload)
	g.closed = s.flags&tcpFlagPSH != 0
	return nil
}

// canAppend reports whether segment s (in frame) continues the run: same
// headers but for the lengths, IDs, sequence number and checksums, the
// next sequence number, the same segment size, and room left.
func (g *groState) canAppend(frame []byte, s tcpSegment) bool {
	if g.closed || s.v6 != g.v6 || s.ipOff != g.ipOff || s.hdrLen != g.hdrLen || s.seq != g.nextSeq ||
		s.payload > g.mss || g.n+s.payload > len(g.buf)-virtioNetHdrLen || g.n+s.payload-g.ipOff > 65535 {
		return false
	}
	cur := g.buf[virtioNetHdrLen : virtioNetHdrLen+g.n]
	// Ethernet header (with any tag) identical.
	if !bytes.Equal(cur[:g.ipOff], frame[:g.ipOff]) {
		return false
	}
	ip, nip := cur[g.ipOff:g.tcpOff], frame[g.ipOff:s.tcpOff]
	if g.v6 {
		// version/class/flow, next header, hop limit, addresses.
		if !bytes.Equal(ip[:4], nip[:4]) || !bytes.Equal(ip[6:], nip[6:]) {
			return false
		}
	} else {
		// TOS, flags (DF), TTL, protocol, addresses; not length, ID, checksum.
		if ip[1] != nip[1] || ip[6]&0xe0 != nip[6]&0xe0 || ip[8] != nip[8] || ip[9] != nip[9] || !bytes.Equal(ip[12:20], nip[12:20]) {
			return false
		}
	}
	tcp, ntcp := cur[g.tcpOff:g.hdrLen], frame[s.tcpOff:s.hdrLen]
	// Ports, ack, data offset, window and options identical; flags ACK (PSH).
	return bytes.Equal(tcp[0:4], ntcp[0:4]) && bytes.Equal(tcp[8:13], ntcp[8:13]) &&
		bytes.Equal(tcp[14:16], ntcp[14:16]) && bytes.Equal(tcp[20:], ntcp[20:])
}

// flush writes what has been built: a single segment as it came, several
// as one super-frame with a GSO header whose TCP checksum is left to the
// kernel (checksum offload, the pseudo-header sum in the field).
func (g *groState) flush() error {
	if g.count == 0 {
		return nil
	}
	frame := g.buf[virtioNetHdrLen : virtioNetHdrLen+g.n]
	count := g.count
	g.count, g.n = 0, 0
	if count == 1 {
		return g.single(frame)
	}
	tcpLen := len(frame) - g.tcpOff
	var pseudo uint16
	gsoType := uint8(virtioGSOTCPv4)
	if g.v6 {
		ip := encap.IPv6(frame[g.ipOff:])
		ip.SetPayloadLen(uint16(tcpLen))
		pseudo = encap.PseudoHeaderChecksum(encap.ProtoTCP, ip.SrcBytes(), ip.DstBytes(), uint16(tcpLen))
		gsoType = virtioGSOTCPv6
	} else {
		ip := encap.IPv4(frame[g.ipOff:])
		ip.SetTotalLen(uint16(len(frame) - g.ipOff))
		ip.SetChecksum(ip.CalculateChecksum())
		pseudo = encap.PseudoHeaderChecksum(encap.ProtoTCP, ip.SrcBytes(), ip.DstBytes(), uint16(tcpLen))
	}
	binary.BigEndian.PutUint16(frame[g.tcpOff+16:], pseudo)
	h := g.buf[:virtioNetHdrLen]
	h[0], h[1] = virtioFlagNeedsCsum, gsoType
	binary.LittleEndian.PutUint16(h[2:], uint16(g.hdrLen))
	binary.LittleEndian.PutUint16(h[4:], uint16(g.mss))
	binary.LittleEndian.PutUint16(h[6:], uint16(g.tcpOff))
	binary.LittleEndian.PutUint16(h[8:], 16)
	return g.w.writeGSO(g.buf[:virtioNetHdrLen+len(frame)])
}

// single writes one frame that was not merged: as it is, or when trusted,
// a TCP segment whose checksum is unfinished with its checksum left to
// the kernel.
func (g *groState) single(frame []byte) error {
	if g.trusted {
		if tcpOff, pseudo, ok := encap.TCPChecksumField(frame); ok && binary.BigEndian.Uint16(frame[tcpOff+16:]) == pseudo {
			return g.w.writePartial(frame, tcpOff)
		}
	}
	return g.w.writeFrame(frame)
}
