// Aging and listing: the sweep that reclaims entries older than AgeTime,
// the walk behind Entries, and the table's statistics.

package fdb

import (
	"time"
)

// sweepChunk is how many slots Sweep examines per lock hold at most.
const sweepChunk = 512

// Sweep advances the table time (see Sweep) and reclaims the learned entries
// older than AgeTime, returning how many it reclaimed. The dataplane calls it
// periodically, about once a second: aged entries are already misses for
// Lookup, so the period bounds only the memory they hold and the precision
// of aging. Sweep scans without the lock and takes it only to delete, a
// chunk of slots at a time, so learning is stalled briefly and lookups not
// at all.
func (t *Table) Sweep() int {
	now := t.tick()
	limit := now - t.age
	n := 0
	for _, s := range t.idx.Load().list {
		tb := s.tab.Load()
	chunks:
		for start := 0; start < len(tb.slots); start += sweepChunk {
			locked := false
			for i := start; i < min(start+sweepChunk, len(tb.slots)); i++ {
				sl := &tb.slots[i]
				k := sl.key.Load()
				if k&macMask == 0 {
					continue
				}
				if sweepReadHook != nil {
					sweepReadHook()
				}
				seen := sl.seen.Load()
				// staticSeen is never aged; deadSeen is an entry another
				// writer removed since k was read (the slot a tombstone).
				if seen >= limit || seen == deadSeen {
					continue
				}
				if !locked {
					s.mu.Lock()
					locked = true
					if s.removed || s.tab.Load() != tb {
						// Rebuilt meanwhile, which dropped aged
						// entries itself; the next sweep sees the
						// new table.
						s.mu.Unlock()
						break chunks
					}
				}
				// A racing refresh wins: it changed seen. A writer
				// that changed the key since k was read (k may have
				// been read before the lock) changed seen too, but
				// check the key as well: the slot is then not k's.
				if sl.key.Load() != k || !sl.seen.CompareAndSwap(seen, deadSeen) {
					continue
				}
				tb.remove(uint64(i))
				t.forget(s, k, false)
				n++
			}
			if locked {
				s.mu.Unlock()
			}
		}
		s.mu.Lock()
		if !s.removed {
			t.maybeShrink(s)
		}
		s.mu.Unlock()
	}
	t.ctr.agedOut.Add(uint64(n))
	return n
}

// entriesChunk is how many slots Entries reads before it looks up their
// move histories under the lock and hands them to fn.
const entriesChunk = 256

// Entries calls fn for every entry, segment by segment in VNI order, until
// fn returns false; entries that are aged but not yet reclaimed are skipped.
// It reads the slots without the lock and takes it only briefly per chunk
// for move histories, never while fn runs, so it stalls neither lookups nor
// learning, and fn may call into the table. Entries added or removed during
// the walk may or may not be seen; a table rebuilt during the walk may make
// it see an entry twice or miss one.
func (t *Table) Entries(fn func(Entry) bool) {
	now := t.tick()
	limit := now - t.age
	var buf []Entry
	for _, s := range t.idx.Load().list {
		tb := s.tab.Load()
		for start := 0; start < len(tb.slots); start += entriesChunk {
			buf = buf[:0]
			for i := start; i < min(start+entriesChunk, len(tb.slots)); i++ {
				sl := &tb.slots[i]
				k := sl.key.Load()
				if k&macMask == 0 {
					continue
				}
				seen := sl.seen.Load()
				if sl.key.Load() != k || seen < limit {
					continue
				}
				e := Entry{VNI: s.vni, MAC: bitsMAC(k & macMask), Port: Port(k >> portShift)}
				if seen == staticSeen {
					e.Static = true
				} else {
					e.Age = time.Duration(max(now-seen, 0))
				}
				buf = append(buf, e)
			}
			if len(buf) == 0 {
				continue
			}
			s.mu.Lock()
			for j := range buf {
				if ms := s.moves[macBits(buf[j].MAC)]; ms != nil {
					buf[j].Moves = ms.total
					buf[j].Flapping = ms.flapping && now-ms.lastMove <= t.flapWindow
				}
			}
			s.mu.Unlock()
			for _, e := range buf {
				if !fn(e) {
					return
				}
			}
		}
	}
}

// Stats returns the table's counters.
func (t *Table) Stats() Stats {
	return Stats{
		Segments:        len(t.idx.Load().list),
		Learned:         int(t.total.Load()),
		Static:          int(t.nstat.Load()),
		New:             t.ctr.newEntries.Load(),
		Moves:           t.ctr.moves.Load(),
		Flaps:           t.ctr.flaps.Load(),
		StaticConflicts: t.ctr.staticConflicts.Load(),
		RefusedFull:     t.ctr.refusedFull.Load(),
		RefusedPort:     t.ctr.refusedPort.Load(),
		AgedOut:         t.ctr.agedOut.Load(),
		Flushed:         t.ctr.flushed.Load(),
		Ignored:         t.ctr.ignored.Load(),
		UnknownSegment:  t.ctr.unknownSegment.Load(),
		BadPort:         t.ctr.badPort.Load(),
		Rebuilds:        t.ctr.rebuilds.Load(),
	}
}

// sweepReadHook, when set (tests only), runs in Sweep between its read of
// a slot's key and of its seen word, before it holds the segment's lock.
var sweepReadHook func()
