package fdb

import (
	"encoding/binary"
	"math"
	"math/bits"
	"math/rand/v2"
	"sync/atomic"
)

// Slot encoding. A slot is two words, both accessed only atomically:
//
//	key:  bits 0..47 the MAC (big-endian, first octet in bits 40..47),
//	      bits 48..63 the Port.
//	      0 is an empty slot, tombKey a deleted one. A live key always has a
//	      non-zero MAC, since the zero MAC is never stored.
//	seen: the table time (nanoseconds since the table's epoch) at which the
//	      entry was last learned or refreshed; staticSeen for a static entry,
//	      deadSeen for an entry being deleted.
//
// Putting the port in the key word makes (MAC, port) one atomic value, so a
// reader can never pair a MAC with another entry's port. 16 bytes per slot,
// four slots per cache line; a lookup touches one line.
const (
	macMask    = 1<<48 - 1
	portShift  = 48
	tombKey    = 1 << portShift
	staticSeen = math.MaxInt64
	deadSeen   = math.MinInt64

	minSlots = 64 // smallest table, a power of two
	// A table is rebuilt when live entries plus tombstones would exceed
	// maxLoadNum/maxLoadDen of its slots; a rebuilt table is at most half full.
	maxLoadNum = 3
	maxLoadDen = 4
)

type slot struct {
	key  atomic.Uint64
	seen atomic.Int64
}

// table is one segment's open-addressing hash table with linear probing.
// Readers use it without locks; writers hold the segment's mutex. A table is
// never resized in place: growing, shrinking and purging tombstones build a
// new table that the segment publishes atomically, after which the old one
// is never written again by a locked writer.
type table struct {
	slots []slot
	mask  uint64
	shift uint8 // 64 - log2(len(slots))
	seed  uint64
	used  int // live entries + tombstones; guarded by segment.mu
	live  int // learned + static entries; guarded by segment.mu
}

func newTable(minEntries int) *table {
	n := minSlots
	if want := 2 * minEntries; want > n {
		n = 1 << bits.Len(uint(want-1))
	}
	return &table{
		slots: make([]slot, n),
		mask:  uint64(n - 1),
		shift: uint8(64 - bits.TrailingZeros(uint(n))),
		seed:  rand.Uint64(),
	}
}

// limit is the number of used slots above which the table must be rebuilt.
func (tb *table) limit() int { return len(tb.slots) / maxLoadDen * maxLoadNum }

// macBits packs a MAC into the low 48 bits of a word. The byte order is the
// machine's cheapest (two loads), not the wire's: the word is only compared
// and hashed, and bitsMAC undoes it.
func macBits(m [6]byte) uint64 {
	return uint64(binary.LittleEndian.Uint32(m[0:4])) | uint64(binary.LittleEndian.Uint16(m[4:6]))<<32
}

func bitsMAC(k uint64) (m [6]byte) {
	binary.LittleEndian.PutUint32(m[0:4], uint32(k))
	binary.LittleEndian.PutUint16(m[4:6], uint16(k>>32))
	return m
}

func makeKey(m uint64, p Port) uint64 { return m | uint64(p)<<portShift }

// home is the first slot probed for m: Fibonacci hashing (the top bits of a multiplication by 2^64/phi) of the MAC
// mixed with a random per-table seed, so that hosts on the segment cannot
// choose source MACs that collide and lengthen the probe chains.
func (tb *table) home(m uint64) uint64 {
	return (m ^ tb.seed) * 0x9e3779b97f4a7c15 >> (tb.shift & 63)
}

// find is the lock-free probe. It returns the slot holding m and the key word
// it held, or nil. m must not be zero. The probe ends at an empty slot, and
// the table always has one since its load is bounded. Lookup has its own
// copy of this loop, tuned.
func (tb *table) find(m uint64) (*slot, uint64) {
	for i := tb.home(m); ; i = (i + 1) & tb.mask {
		s := &tb.slots[i]
		k := s.key.Load()
		if k == 0 {
			return nil, 0
		}
		if k&macMask == m {
			return s, k
		}
	}
}

// probe is the writer's probe, under the segment's mutex. It returns the
// index of m if found, else the index where m should be inserted: the first
// tombstone on m's chain, or the empty slot that ended it.
func (tb *table) probe(m uint64) (i uint64, found bool) {
	ins, haveIns := uint64(0), false
	for i = tb.home(m); ; i = (i + 1) & tb.mask {
		k := tb.slots[i].key.Load()
		switch {
		case k == 0:
			if haveIns {
				return ins, false
			}
			return i, false
		case k == tombKey:
			if !haveIns {
				ins, haveIns = i, true
			}
		case k&macMask == m:
			return i, true
		}
	}
}

// put stores a new entry at index i, which probe returned for a key it did
// not find. The seen word is written before the key publishes the entry.
func (tb *table) put(i uint64, key uint64, seen int64) {
	s := &tb.slots[i]
	if s.key.Load() == 0 {
		tb.used++
	}
	tb.live++
	s.seen.Store(seen)
	s.key.Store(key)
}

// remove turns slot i into a tombstone. The caller has already made the
// seen word deadSeen, so a reader that raced the change sees an aged entry.
func (tb *table) remove(i uint64) {
	tb.slots[i].key.Store(tombKey)
	tb.live--
}
