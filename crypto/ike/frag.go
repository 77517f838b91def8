// IKE fragmentation (RFC 7383): encrypted messages larger than a path of
// 1280 bytes carries (IKE_AUTH with certificates) are sent as Encrypted
// Fragment payloads, each sealed on its own, when both sides announced
// IKEV2_FRAGMENTATION_SUPPORTED; fragments that arrive are opened and
// put back together before the message is handled.

package ike

import (
	"encoding/binary"
	"fmt"
	"time"
)

// fragmentPacket is the size of the IP packets that fragments are cut to:
// what every IPv6 path carries, and what strongSwan uses by default.
const fragmentPacket = 1280

// maxReassembled bounds the plaintext of a reassembled message.
const maxReassembled = 64 << 10

// defrag collects the fragments of one message.
type defrag struct {
	msgID   uint32
	total   uint16
	first   uint8 // next payload of fragment 1: the first inner payload
	parts   [][]byte
	have    int
	size    int
	started time.Time
}

// udpBudget is how many bytes of IKE message one datagram to the peer may
// hold for an IP packet of fragmentPacket bytes.
func (sa *ikeSA) udpBudget() int {
	n := fragmentPacket - 8 // UDP
	if sa.remote.Addr().Is4() || sa.remote.Addr().Is4In6() {
		n -= 20
	} else {
		n -= 40
	}
	if sa.local.Port() != 500 {
		n -= 4 // the non-ESP marker
	}
	return n
}

// seal encrypts a message with payloads ps: one datagram, or when it is
// larger than a 1280-byte path carries and the peer supports it, a
// fragment per datagram (RFC 7383 §2.5).
func (sa *ikeSA) seal(h Header, ps []Payload) [][]byte {
	msg := sa.out.sealMessage(h, ps)
	budget := sa.udpBudget()
	if !sa.fragOK || len(msg) <= budget {
		return [][]byte{msg}
	}
	pt, first := appendPayloads(nil, ps)
	// Each fragment: IKE header, SKF header with its numbers, IV, the
	// plaintext chunk and the pad length byte, ICV.
	room := budget - (HeaderLen + 4 + 4 + skIVLen + 1 + skICVLen)
	total := (len(pt) + room - 1) / room
	if room <= 0 || total > maxFragments {
		return [][]byte{msg}
	}
	var out [][]byte
	for i := 0; i < total; i++ {
		chunk := pt[i*room : min((i+1)*room, len(pt))]
		next := PayloadNone
		if i == 0 {
			next = first
		}
		out = append(out, sa.out.sealFragment(h, next, uint16(i+1), uint16(total), chunk))
	}
	return out
}

// sealFragment builds one Encrypted Fragment message. As for SK (RFC 5282
// §5.1), the associated data is everything before the IV: the IKE header
// and the SKF header with the fragment numbers (RFC 7383 §2.5.3).
func (c *skCipher) sealFragment(h Header, next uint8, number, total uint16, chunk []byte) []byte {
	pt := append(append([]byte{}, chunk...), 0) // pad length 0
	hdr := HeaderLen + 4 + 4
	n := hdr + skIVLen + len(pt) + skICVLen
	b := make([]byte, hdr+skIVLen, n)
	h.NextPayload = PayloadSKF
	h.Version = 0x20
	h.Length = uint32(n)
	h.Encode(b)
	b[HeaderLen] = next
	binary.BigEndian.PutUint16(b[HeaderLen+2:], uint16(n-HeaderLen))
	binary.BigEndian.PutUint16(b[HeaderLen+4:], number)
	binary.BigEndian.PutUint16(b[HeaderLen+6:], total)
	iv := be64(c.iv)
	c.iv++
	copy(b[hdr:], iv)
	var nonce [12]byte
	copy(nonce[:4], c.salt[:])
	copy(nonce[4:], iv)
	return c.aead.Seal(b, nonce[:], pt, b[:hdr])
}

// Reassembly bounds: a partial message is dropped after
// fragmentTimeout, and all SAs together hold at most maxFragmentMemory
// bytes of partial messages (half-open SAs accept IKE_AUTH fragments from
// anyone who completed IKE_SA_INIT).
const (
	fragmentTimeout   = 30 * time.Second
	maxFragmentMemory = 1 << 20
)

// handleFragment takes one Encrypted Fragment message for sa. When it
// completes a message, it hands the reassembled payloads on as an
// unfragmented message would go. A fragment of a retransmitted request
// gets the cached response again, once it is authenticated and only for
// fragment 1 (RFC 7383 §2.6.1). d.mu must be held.
func (sa *ikeSA) handleFragment(h Header, msg []byte, deliver func(ps []Payload), now time.Time) error {
	if h.SPIi != sa.spiI || sa.spiR != 0 && h.SPIr != sa.spiR {
		return nil
	}
	ps, err := DecodePayloads(h.NextPayload, msg[HeaderLen:])
	if err != nil || len(ps) != 1 || ps[0].Type != PayloadSKF {
		return fmt.Errorf("SKF message: %w", ErrMalformed)
	}
	f, rest, err := ParseFragment(ps[0].Body)
	if err != nil {
		return err
	}
	retransmit := false
	if !h.IsResponse() {
		retransmit = sa.lastResp != nil && h.MessageID == sa.lastRespID && h.MessageID+1 == sa.peerMsgID
		if !retransmit && h.MessageID != sa.peerMsgID {
			return nil
		}
	} else if sa.req == nil || sa.req.msgID != h.MessageID || sa.req.exch != h.Exchange {
		return nil
	}
	if sa.in == nil {
		return fmt.Errorf("fragment before keys: %w", ErrMalformed)
	}
	pt, err := sa.in.openRaw(msg, rest)
	if err != nil {
		return err
	}
	if retransmit {
		if f.Number == 1 {
			sa.sendAll(sa.lastResp)
		}
		return nil
	}
	slot := &sa.defragReq
	if h.IsResponse() {
		slot = &sa.defragResp
	}
	df := *slot
	if df != nil && df.msgID == h.MessageID && f.Total < df.total {
		return nil // RFC 7383 §2.6: a smaller total belongs to an older try
	}
	if df == nil || df.msgID != h.MessageID || f.Total > df.total {
		sa.dropDefrag(slot)
		df = &defrag{msgID: h.MessageID, total: f.Total, parts: make([][]byte, f.Total), started: now}
		*slot = df
	}
	i := int(f.Number - 1)
	if df.parts[i] != nil {
		return nil // a duplicate
	}
	d := sa.d
	if df.size+len(pt) > maxReassembled || d.fragMemory+len(pt) > maxFragmentMemory {
		sa.dropDefrag(slot)
		return fmt.Errorf("reassembly over its bounds (%d bytes in this message, %d in all): %w", df.size+len(pt), d.fragMemory, ErrMalformed)
	}
	if f.Number == 1 {
		df.first = msg[HeaderLen] // the SKF header's next payload
	}
	df.parts[i] = pt
	df.have++
	df.size += len(pt)
	d.fragMemory += len(pt)
	if df.have < int(df.total) {
		return nil
	}
	whole := make([]byte, 0, df.size)
	for _, p := range df.parts {
		whole = append(whole, p...)
	}
	first := df.first
	sa.dropDefrag(slot)
	inner, err := DecodePayloads(first, whole)
	if err != nil {
		return err
	}
	if inner == nil {
		inner = []Payload{} // an empty message: still reassembled, not to be decrypted again
	}
	deliver(inner)
	return nil
}

// dropDefrag forgets the partial message in *slot and its memory.
func (sa *ikeSA) dropDefrag(slot **defrag) {
	if df := *slot; df != nil {
		sa.d.fragMemory -= df.size
		*slot = nil
	}
}

// expireFragments drops partial messages older than fragmentTimeout.
func (sa *ikeSA) expireFragments(now time.Time) {
	for _, slot := range []**defrag{&sa.defragReq, &sa.defragResp} {
		if df := *slot; df != nil && now.Sub(df.started) > fragmentTimeout {
			sa.dropDefrag(slot)
		}
	}
}
