package crypto

import (
	"encoding/binary"
	"errors"
)

// ESP packet layout in UDP encapsulation (RFC 4303 §2, RFC 3948 §2.1,
// RFC 4106 §3 and RFC 7634 §2 for the 8-byte explicit IV):
//
//	 0                   1                   2                   3
//	 0 1 2 3 4 5 6 7 8 9 0 1 2 3 4 5 6 7 8 9 0 1 2 3 4 5 6 7 8 9 0 1
//	+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+ ---
//	|               Security Parameters Index (SPI)                 |  ^
//	+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+  | HeaderLen
//	|             Sequence Number (low 32 bits)                     |  |
//	+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+  |
//	|                 IV (8 bytes, = 64-bit sequence number)        |  v
//	+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+ ---
//	|        Payload (inner IPv4/IPv6 packet), encrypted ...        |
//	+               +-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+
//	|               |     Padding 1, 2, 3 (0-3 bytes, encrypted)    |
//	+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+
//	|                               |  Pad Length   | Next Header   |
//	+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+
//	|             Integrity Check Value (16 bytes)                  |
//	+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+
//
// The AAD is SPI || seq low, or SPI || seq high || seq low with ESN
// (RFC 4106 §5, RFC 7634 §2.1); the nonce is salt(4) || IV(8).
const (
	// HeaderLen is the cleartext ESP header: SPI(4) + seq low(4) + IV(8).
	HeaderLen = 16
	// ICVLen is the integrity check value length of every suite.
	ICVLen = 16
	// MaxTrailerLen is the most Seal appends after the payload: up to 3
	// padding bytes (4-byte alignment), pad length, next header and the ICV.
	MaxTrailerLen = 3 + 2 + ICVLen
	// MinPacketLen is the shortest ESP packet Open considers: a header, an
	// empty payload with pad length and next header, and the ICV.
	MinPacketLen = HeaderLen + 2 + ICVLen
)

// Next header values the tunnel carries (IANA protocol numbers).
const (
	NextHeaderIPv4   uint8 = 4  // IP-in-IP: inner IPv4 packet (tunnel mode)
	NextHeaderIPv6   uint8 = 41 // inner IPv6 packet
	NextHeaderNoNext uint8 = 59 // dummy packet (RFC 4303 §2.6): discard after Open
)

// Sentinel errors. Seal and Open return them unwrapped so that the hot path
// does not allocate; the per-SA counters (Stats) carry the rest of the
// context. Compare with errors.Is.
var (
	ErrTruncated    = errors.New("esp: packet truncated")
	ErrUnknownSPI   = errors.New("esp: unknown SPI")
	ErrAuth         = errors.New("esp: ICV check failed")
	ErrBadPadding   = errors.New("esp: bad padding")
	ErrReplay       = errors.New("esp: replayed sequence number")
	ErrTooOld       = errors.New("esp: sequence number left of the replay window")
	ErrSeqExhausted = errors.New("esp: sequence numbers exhausted, rekey needed")
	ErrExpired      = errors.New("esp: SA expired (hard lifetime or removed)")
	ErrShortBuffer  = errors.New("esp: buffer too small for header, payload and trailer")
	ErrSPIInUse     = errors.New("esp: SPI already in the SADB")
)

// Reason is why Seal or Open refused a packet: one value per error above.
// It is the one taxonomy of ESP drops: an SA's Stats and the data plane's
// counters are both indexed by it.
type Reason uint8

const (
	ReasonOther Reason = iota // not one of the errors above
	ReasonTruncated
	ReasonUnknownSPI
	ReasonAuth
	ReasonBadPadding
	ReasonReplay
	ReasonTooOld
	ReasonSeqExhausted
	ReasonExpired
	ReasonShortBuffer
	NumReasons
)

var reasonNames = [NumReasons]string{"other", "truncated", "unknown_spi", "auth", "bad_padding", "replay", "too_old",
	"seq_exhausted", "expired", "short_buffer"}

// String is the reason's counter name, e.g. "replay".
func (r Reason) String() string {
	if r < NumReasons {
		return reasonNames[r]
	}
	return reasonNames[ReasonOther]
}

// ReasonOf classifies an error from Seal, Open or SADB.Open (wrapped or
// not); nil and unknown errors are ReasonOther.
func ReasonOf(err error) Reason {
	switch err {
	case ErrTruncated:
		return ReasonTruncated
	case ErrUnknownSPI:
		return ReasonUnknownSPI
	case ErrAuth:
		return ReasonAuth
	case ErrBadPadding:
		return ReasonBadPadding
	case ErrReplay:
		return ReasonReplay
	case ErrTooOld:
		return ReasonTooOld
	case ErrSeqExhausted:
		return ReasonSeqExhausted
	case ErrExpired:
		return ReasonExpired
	case ErrShortBuffer:
		return ReasonShortBuffer
	}
	for r, e := range reasonErrs {
		if e != nil && errors.Is(err, e) {
			return Reason(r)
		}
	}
	return ReasonOther
}

var reasonErrs = [NumReasons]error{nil, ErrTruncated, ErrUnknownSPI, ErrAuth, ErrBadPadding, ErrReplay, ErrTooOld,
	ErrSeqExhausted, ErrExpired, ErrShortBuffer}

// PadLen is the number of padding bytes Seal adds after a payload of n
// bytes so that pad length and next header end on a 4-byte boundary.
func PadLen(n int) int { return (4 - (n+2)&3) & 3 }

// SealedLen is the length of the ESP packet (the UDP payload) that Seal
// makes of a payload of n bytes.
func SealedLen(n int) int { return HeaderLen + n + PadLen(n) + 2 + ICVLen }

// PacketKind is what a datagram received on UDP port 4500 carries.
type PacketKind uint8

const (
	KindInvalid   PacketKind = iota // too short or malformed
	KindESP                         // ESP: starts with a non-zero SPI
	KindIKE                         // IKE after the four-byte non-ESP marker
	KindKeepalive                   // NAT-keepalive: the single byte 0xff (RFC 3948 §2.3)
)

// String names the kind for logs and counters.
func (k PacketKind) String() string {
	switch k {
	case KindESP:
		return "esp"
	case KindIKE:
		return "ike"
	case KindKeepalive:
		return "keepalive"
	}
	return "invalid"
}

// NonESPMarkerLen is the length of the non-ESP marker in front of IKE
// messages on port 4500 (RFC 3948 §2.2).
const NonESPMarkerLen = 4

// Classify tells ESP, IKE (non-ESP marker) and NAT-keepalive datagrams apart
// by their first bytes, as RFC 3948 §2 does. It does not validate the ESP
// packet beyond a non-zero SPI: Open does that and counts what it drops.
// For KindIKE the IKE message is udpPayload[NonESPMarkerLen:].
func Classify(udpPayload []byte) PacketKind {
	switch n := len(udpPayload); {
	case n == 1 && udpPayload[0] == 0xff:
		return KindKeepalive
	case n < 4:
		return KindInvalid
	case binary.BigEndian.Uint32(udpPayload) != 0:
		return KindESP
	case n > NonESPMarkerLen:
		return KindIKE
	}
	return KindInvalid
}

// Header is the cleartext part of an ESP packet.
type Header struct {
	SPI    uint32
	SeqLow uint32 // low 32 bits of the sequence number, as on the wire
	IV     uint64 // explicit IV; vxswitch sends the 64-bit sequence number
}

// ParseHeader reads the cleartext header of the ESP packet pkt (the UDP
// payload without a marker). It returns ErrTruncated when pkt is shorter
// than MinPacketLen, so a header it accepts always has room for a trailer.
func ParseHeader(pkt []byte) (Header, error) {
	if len(pkt) < MinPacketLen {
		return Header{}, ErrTruncated
	}
	return Header{
		SPI:    binary.BigEndian.Uint32(pkt[0:4]),
		SeqLow: binary.BigEndian.Uint32(pkt[4:8]),
		IV:     binary.BigEndian.Uint64(pkt[8:16]),
	}, nil
}
