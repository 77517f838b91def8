package pmtu

import (
	"encoding/binary"
	"errors"
)

// Wire format of a probe and its acknowledgement, carried in an ESP dummy
// packet (next header 59, RFC 4303 §2.6: a standard receiver discards it)
// in esp mode, and behind a VXLAN header without the I flag (RFC 7348
// §5: a standard VTEP drops it) in plain mode:
//
//	 0                   1                   2                   3
//	 0 1 2 3 4 5 6 7 8 9 0 1 2 3 4 5 6 7 8 9 0 1 2 3 4 5 6 7 8 9 0 1
//	+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+
//	|                 magic "VXPM" (0x5658504d)                     |
//	+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+
//	|  version = 1  |  type (1, 2)  |             flags             |
//	+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+
//	|                          probe ID                             |
//	+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+
//	|          size: the probe's outer IP packet, in bytes          |
//	+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+
//	|                 padding (probes), any content                 |
//
// An acknowledgement echoes the ID and size of the probe it answers, and
// is small (HeaderLen bytes) so that it fits any path. Flags say what the
// sender of the message takes (FlagChecksumOffload); a receiver ignores
// flags it does not know, and a sender that knows none sends 0.

// HeaderLen is the length of a probe message without padding.
const HeaderLen = 16

// Magic starts every probe message.
const Magic uint32 = 0x5658504d // "VXPM"

// Message types.
const (
	TypeProbe = 1
	TypeAck   = 2
)

const version = 1

// FlagChecksumOffload: the sender of the message takes TCP segments whose
// checksum is unfinished (the pseudo-header sum in its field) and leaves
// them to its kernel as checksum offload does (esp mode only: the ICV
// proves each frame intact; see link.ChecksumOffload).
const FlagChecksumOffload uint16 = 0x0001

// Message is a decoded probe or acknowledgement.
type Message struct {
	Type  uint8
	Flags uint16
	ID    uint32
	Size  int
}

// ErrNotProbe: b does not start with a probe message.
var ErrNotProbe = errors.New("pmtu: not a probe message")

// IsMessage reports whether b starts with the probe magic (cheap test on
// the data path before Parse).
func IsMessage(b []byte) bool {
	return len(b) >= 4 && binary.BigEndian.Uint32(b) == Magic
}

// Parse decodes the message at the start of b. It does not keep b.
func Parse(b []byte) (Message, error) {
	if len(b) < HeaderLen || binary.BigEndian.Uint32(b) != Magic || b[4] != version {
		return Message{}, ErrNotProbe
	}
	m := Message{Type: b[5], Flags: binary.BigEndian.Uint16(b[6:]), ID: binary.BigEndian.Uint32(b[8:]), Size: int(binary.BigEndian.Uint32(b[12:]))}
	if (m.Type != TypeProbe && m.Type != TypeAck) || m.Size <= 0 || m.Size > 1<<20 {
		return Message{}, ErrNotProbe
	}
	return m, nil
}

// Encode writes m into b (at least HeaderLen bytes) and zeroes the
// padding up to len(b); it returns len(b).
func (m Message) Encode(b []byte) int {
	binary.BigEndian.PutUint32(b, Magic)
	b[4], b[5] = version, m.Type
	binary.BigEndian.PutUint16(b[6:], m.Flags)
	binary.BigEndian.PutUint32(b[8:], m.ID)
	binary.BigEndian.PutUint32(b[12:], uint32(m.Size))
	clear(b[HeaderLen:])
	return len(b)
}
