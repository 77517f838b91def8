package crypto

import (
	"fmt"
	"math/bits"
	"sync/atomic"
)

// Replay window sizes (in sequence numbers).
const (
	DefaultReplayWindow = 4096
	MinReplayWindow     = 4096
	MaxReplayWindow     = 1 << 20
)

// replayWindow is an RFC 6479 anti-replay window: a ring of 64-bit blocks,
// one bit per sequence number, where advancing the window clears whole
// blocks instead of shifting a bitmap. It accepts a sequence number s when
// s > last, or when last-s < size and s's bit is clear (RFC 4303 §3.4.3:
// the window covers the size most recent numbers, last included).
//
// Writers (update, reset, markZero) must be serialised by the caller
// (InboundSA holds a mutex); infer and check may run concurrently with
// them without a lock: they read atomically and may see a slightly stale
// window, which is safe because update checks again before it records.
type replayWindow struct {
	last atomic.Uint64   // highest sequence number that passed update
	size uint64          // window size W
	mask uint64          // len(ring)-1
	ring []atomic.Uint64 // power-of-two number of blocks, > (size-1)/64 + 1
}

func newReplayWindow(size int) (*replayWindow, error) {
	if size == 0 {
		size = DefaultReplayWindow
	}
	if size < MinReplayWindow || size > MaxReplayWindow {
		return nil, fmt.Errorf("replay window %d: want %d..%d", size, MinReplayWindow, MaxReplayWindow)
	}
	// The oldest acceptable number lies ceil((size-1)/64) blocks behind the
	// block of last; one more block keeps last's block from sharing a ring
	// slot with it.
	blocks := (uint64(size)-1+63)/64 + 1
	blocks = 1 << bits.Len64(blocks-1) // round up to a power of two
	return &replayWindow{size: uint64(size), mask: blocks - 1, ring: make([]atomic.Uint64, blocks)}, nil
}

// reset empties the window; sequence number 0 becomes acceptable (as in the
// wireguard-go vectors). InboundSA marks 0 as seen, see markZero.
func (w *replayWindow) reset() {
	w.last.Store(0)
	for i := range w.ring {
		w.ring[i].Store(0)
	}
}

// markZero records sequence number 0 as seen: ESP never sends it
// (RFC 4303 §3.3.3 starts at 1), so a packet claiming it is a replay.
func (w *replayWindow) markZero() { w.ring[0].Or(1) }

// infer returns the full 64-bit sequence number of a packet whose low 32
// bits are lo, per RFC 4303 Appendix A3: the high half is that of last,
// or one more (lo wrapped ahead of the window), or one less (lo belongs
// below the window when the window straddles a 2^32 boundary). ok is false
// when the number would fall below 0 or above 2^64-1.
func (w *replayWindow) infer(lo uint32) (seq uint64, ok bool) {
	last := w.last.Load()
	tl, th := uint32(last), uint32(last>>32)
	bottom := tl - uint32(w.size-1) // Tl - W + 1, mod 2^32
	if tl >= uint32(w.size-1) {     // case A: window within one 2^32 epoch
		if lo >= bottom {
			return uint64(th)<<32 | uint64(lo), true
		}
		if th == ^uint32(0) {
			return 0, false
		}
		return uint64(th+1)<<32 | uint64(lo), true
	}
	// case B: window spans the boundary below th<<32
	if lo >= bottom {
		if th == 0 {
			return 0, false
		}
		return uint64(th-1)<<32 | uint64(lo), true
	}
	return uint64(th)<<32 | uint64(lo), true
}

// check reports whether seq would be accepted, without changing the window.
func (w *replayWindow) check(seq uint64) error {
	last := w.last.Load()
	if seq > last {
		return nil
	}
	if last-seq >= w.size {
		return ErrTooOld
	}
	if w.ring[(seq>>6)&w.mask].Load()&(1<<(seq&63)) != 0 {
		return ErrReplay
	}
	return nil
}

// update checks seq again and records it, advancing the window when seq is
// the new highest number. Call it only for authenticated packets.
func (w *replayWindow) update(seq uint64) error {
	block := seq >> 6
	last := w.last.Load()
	if seq > last {
		cur := last >> 6
		diff := block - cur
		if diff > uint64(len(w.ring)) {
			diff = uint64(len(w.ring)) // clearing the whole ring is enough
		}
		for i := cur + 1; i <= cur+diff; i++ {
			w.ring[i&w.mask].Store(0)
		}
		w.last.Store(seq)
	} else if last-seq >= w.size {
		return ErrTooOld
	}
	p := &w.ring[block&w.mask]
	bit := uint64(1) << (seq & 63)
	old := p.Load()
	if old&bit != 0 {
		return ErrReplay
	}
	p.Store(old | bit)
	return nil
}
