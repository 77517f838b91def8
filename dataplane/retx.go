package dataplane

import "github.com/vxswitch/vxswitch/encap"

// retxWatch notices TCP segments a host behind the TAP sends again
// (after a retransmission timeout, or a fast retransmit): the sign of
// loss that makes the peer's prober check its PLPMTU at once
// (pmtu.Prober.Suspect) instead of at the next confirmation probe, so a
// path that shrank under a running flow is noticed within a
// retransmission timeout and a few round trips, with or without ICMP.
//
// It keeps, per flow hashed into a fixed table, the end of the highest
// sequence number sent; a segment that starts below it is sent again.
// Collisions only forget a flow for a while. A txPath owns one (its
// goroutine alone uses it); it allocates nothing.
type retxWatch struct {
	slots [retxSlots]struct {
		key uint64
		end uint32
	}
}

const retxSlots = 1024 // a power of two

// sentAgain reports whether frame is a TCP segment carrying at least
// minPayload bytes that starts below what its flow already sent. It
// records the segment's end either way.
func (w *retxWatch) sentAgain(frame []byte, minPayload int) bool {
	seg, key, ok := encap.TCPOf(frame)
	if !ok || seg.Flags()&encap.TCPFlagRST != 0 {
		return false
	}
	sl := &w.slots[key&(retxSlots-1)]
	if seg.Flags()&encap.TCPFlagSYN != 0 {
		// a connection (re)starts: its sequence numbers start anew
		sl.key, sl.end = key, seg.Seq()+1
		return false
	}
	n := len(seg) - seg.HeaderLen()
	if n <= 0 {
		return false // a bare ACK (or IP padding counted as payload: none here)
	}
	seq := seg.Seq()
	end := seq + uint32(n)
	if sl.key != key {
		sl.key, sl.end = key, end
		return false
	}
	again := int32(seq-sl.end) < 0 && n >= minPayload
	if int32(end-sl.end) > 0 {
		sl.end = end
	}
	return again
}
