package encap

import "encoding/binary"

// TCP header constants.
const (
	TCPMinHeaderLen = 20
	TCPMaxHeaderLen = 60
)

// TCP flag bits, as returned by TCP.Flags.
const (
	TCPFlagFIN uint8 = 0x01
	TCPFlagSYN uint8 = 0x02
	TCPFlagRST uint8 = 0x04
	TCPFlagPSH uint8 = 0x08
	TCPFlagACK uint8 = 0x10
	TCPFlagURG uint8 = 0x20
	TCPFlagECE uint8 = 0x40
	TCPFlagCWR uint8 = 0x80
)

// TCP option kinds (RFC 9293 §3.2, RFC 7323, RFC 2018).
const (
	TCPOptEnd           uint8 = 0
	TCPOptNOP           uint8 = 1
	TCPOptMSS           uint8 = 2
	TCPOptWindowScale   uint8 = 3
	TCPOptSACKPermitted uint8 = 4
	TCPOptSACK          uint8 = 5
	TCPOptTimestamps    uint8 = 8

	// TCPOptMSSLen is the length of a well-formed MSS option.
	TCPOptMSSLen = 4
)

const (
	tcpSrcPort  = 0
	tcpDstPort  = 2
	tcpSeq      = 4
	tcpAck      = 8
	tcpDataOff  = 12
	tcpFlags    = 13
	tcpWindow   = 14
	tcpChecksum = 16
	tcpUrgent   = 18
)

// TCP is a view over a TCP header and what follows (RFC 9293 §3.1):
//
//	 0                   1                   2                   3
//	 0 1 2 3 4 5 6 7 8 9 0 1 2 3 4 5 6 7 8 9 0 1 2 3 4 5 6 7 8 9 0 1
//	+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+
//	|          Source Port          |       Destination Port        |
//	+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+
//	|                        Sequence Number                        |
//	+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+
//	|                    Acknowledgment Number                      |
//	+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+
//	|  Data |       |C|E|U|A|P|R|S|F|                               |
//	| Offset| Rsrvd |W|C|R|C|S|S|Y|I|            Window             |
//	|       |       |R|E|G|K|H|T|N|N|                               |
//	+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+
//	|           Checksum            |         Urgent Pointer        |
//	+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+
//	|                           [Options]                           |
//	+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+
type TCP []byte

// IsValid reports whether b holds a whole TCP header: at least 20 bytes, a
// data offset of at least 5 words, and the options that offset announces.
func (b TCP) IsValid() bool {
	if len(b) < TCPMinHeaderLen {
		return false
	}
	hl := b.HeaderLen()
	return hl >= TCPMinHeaderLen && hl <= len(b)
}

// SrcPort returns the source port.
func (b TCP) SrcPort() uint16 { return binary.BigEndian.Uint16(b[tcpSrcPort:]) }

// DstPort returns the destination port.
func (b TCP) DstPort() uint16 { return binary.BigEndian.Uint16(b[tcpDstPort:]) }

// Seq returns the sequence number.
func (b TCP) Seq() uint32 { return binary.BigEndian.Uint32(b[tcpSeq:]) }

// Ack returns the acknowledgment number.
func (b TCP) Ack() uint32 { return binary.BigEndian.Uint32(b[tcpAck:]) }

// HeaderLen returns the header length (the data offset) in bytes.
func (b TCP) HeaderLen() int { return int(b[tcpDataOff]>>4) * 4 }

// Flags returns the flag byte (TCPFlagFIN ... TCPFlagCWR).
func (b TCP) Flags() uint8 { return b[tcpFlags] }

// Window returns the window field.
func (b TCP) Window() uint16 { return binary.BigEndian.Uint16(b[tcpWindow:]) }

// Checksum returns the checksum field.
func (b TCP) Checksum() uint16 { return binary.BigEndian.Uint16(b[tcpChecksum:]) }

// UrgentPointer returns the urgent pointer field.
func (b TCP) UrgentPointer() uint16 { return binary.BigEndian.Uint16(b[tcpUrgent:]) }

// Options returns the option bytes of the header.
func (b TCP) Options() []byte { return b[TCPMinHeaderLen:b.HeaderLen()] }

// Payload returns the bytes after the header.
func (b TCP) Payload() []byte { return b[b.HeaderLen():] }

// SetChecksum sets the checksum field.
func (b TCP) SetChecksum(c uint16) { binary.BigEndian.PutUint16(b[tcpChecksum:], c) }

// OptionIter returns an iterator over the options of b.
func (b TCP) OptionIter() TCPOptionIter { return TCPOptionIter{opts: b.Options()} }

// TCPOption is one option found by TCPOptionIter. Data is a slice of the
// header (nil for NOP); Offset is the position of the kind byte within the
// options, so the option starts at TCPMinHeaderLen+Offset in the header.
type TCPOption struct {
	Kind   uint8
	Data   []byte
	Offset int
}

// TCPOptionIter walks TCP options without allocating:
//
//	it := tcp.OptionIter()
//	for opt, ok := it.Next(); ok; opt, ok = it.Next() { ... }
//	if it.Malformed() { ... }
//
// NOPs are reported; iteration stops at End-of-Option-List, at the end of
// the options, or at an option whose length is below 2 or runs past the
// end (then Malformed reports true).
type TCPOptionIter struct {
	opts      []byte
	off       int
	malformed bool
}

// NewTCPOptionIter returns an iterator over raw option bytes.
func NewTCPOptionIter(opts []byte) TCPOptionIter { return TCPOptionIter{opts: opts} }

// Next returns the next option, or false when there are no more.
func (it *TCPOptionIter) Next() (TCPOption, bool) {
	if it.off >= len(it.opts) {
		return TCPOption{}, false
	}
	off := it.off
	kind := it.opts[off]
	switch kind {
	case TCPOptEnd:
		it.off = len(it.opts)
		return TCPOption{}, false
	case TCPOptNOP:
		it.off++
		return TCPOption{Kind: kind, Offset: off}, true
	}
	if off+2 > len(it.opts) {
		it.malformed = true
		it.off = len(it.opts)
		return TCPOption{}, false
	}
	n := int(it.opts[off+1])
	if n < 2 || off+n > len(it.opts) {
		it.malformed = true
		it.off = len(it.opts)
		return TCPOption{}, false
	}
	it.off = off + n
	return TCPOption{Kind: kind, Data: it.opts[off+2 : off+n], Offset: off}, true
}

// Malformed reports whether iteration stopped at a malformed option.
func (it *TCPOptionIter) Malformed() bool { return it.malformed }

// TCPFields describes a TCP header to encode. Options are copied after the
// fixed header and padded with End-of-Option-List bytes to a multiple of 4.
type TCPFields struct {
	SrcPort, DstPort uint16
	Seq, Ack         uint32
	Flags            uint8
	Window           uint16
	Checksum         uint16
	UrgentPointer    uint16
	Options          []byte // at most 40 bytes
}

// Len is the encoded header length: 20 plus the options rounded up to 4.
func (f *TCPFields) Len() int { return TCPMinHeaderLen + (len(f.Options)+3)&^3 }

// Encode writes the header to the start of b, which must have room for Len
// bytes. It panics if the options are longer than 40 bytes.
func (f *TCPFields) Encode(b []byte) {
	hl := f.Len()
	if hl > TCPMaxHeaderLen {
		panic("encap: TCP options longer than 40 bytes")
	}
	_ = b[hl-1]
	binary.BigEndian.PutUint16(b[tcpSrcPort:], f.SrcPort)
	binary.BigEndian.PutUint16(b[tcpDstPort:], f.DstPort)
	binary.BigEndian.PutUint32(b[tcpSeq:], f.Seq)
	binary.BigEndian.PutUint32(b[tcpAck:], f.Ack)
	b[tcpDataOff] = uint8(hl/4) << 4
	b[tcpFlags] = f.Flags
	binary.BigEndian.PutUint16(b[tcpWindow:], f.Window)
	binary.BigEndian.PutUint16(b[tcpChecksum:], f.Checksum)
	binary.BigEndian.PutUint16(b[tcpUrgent:], f.UrgentPointer)
	n := copy(b[TCPMinHeaderLen:], f.Options)
	clear(b[TCPMinHeaderLen+n : hl])
}

// TCPChecksum computes the checksum field value of the TCP segment b (header
// with any checksum, and payload) for the given pseudo-header addresses (4 or
// 16 bytes each).
func TCPChecksum(b []byte, src, dst []byte) uint16 {
	s := PseudoHeaderChecksum(ProtoTCP, src, dst, uint16(len(b)))
	s = Checksum(b[:tcpChecksum], s)
	s = Checksum(b[tcpChecksum+2:], s)
	return ^s
}
