// Learning: a source MAC seen on a port, new or moved (with move and flap
// accounting and their rate-limited logs), static entries, and flushing a
// port's entries.

package fdb

import (
	"fmt"

	"github.com/vxswitch/vxswitch/encap"
)

// Learn records that a frame with source mac arrived on port in vni's
// segment, and says what it did. Refreshing a live entry on the same port
// takes no lock and does not allocate; a new MAC, a move or an aged entry
// takes the segment's lock (and a new MAC may grow the table).
//
// Zero, broadcast and multicast sources are ignored and counted. A MAC with
// a static entry is never moved: a frame from another port is counted as a
// static conflict. A move takes effect at once; moves are counted and
// logged (rate-limited), and FlapMoves moves within FlapWindow flag the MAC
// as flapping.
func (t *Table) Learn(vni encap.VNI, mac encap.MAC, port Port) LearnResult {
	if mac.IsMulticast() || mac.IsZero() {
		t.ctr.ignored.Add(1)
		return LearnIgnored
	}
	if port > MaxPort {
		t.ctr.badPort.Add(1)
		return LearnBadPort
	}
	s := t.idx.Load().get(vni)
	if s == nil {
		t.ctr.unknownSegment.Add(1)
		return LearnUnknownSegment
	}
	m := macBits(mac)
	if sl, k := s.tab.Load().find(m); sl != nil {
		seen := sl.seen.Load()
		same := Port(k>>portShift) == port
		if seen == staticSeen {
			if same {
				return LearnStatic
			}
			t.ctr.staticConflicts.Add(1)
			return LearnStaticConflict
		}
		if now := t.now.Load(); same && seen >= now-t.age {
			// Write only when table time has moved, so that refreshes
			// from many cores do not fight over the cache line.
			if seen >= now || sl.seen.CompareAndSwap(seen, now) {
				return LearnRefreshed
			}
		}
	}
	return t.learnLocked(s, m, port)
}

func (t *Table) learnLocked(s *segment, m uint64, port Port) LearnResult {
	var ev moveEvent
	s.mu.Lock()
	res := t.learnUnderLock(s, m, port, &ev)
	s.mu.Unlock()
	if res == LearnMoved || res == LearnFlapping {
		t.logMove(s.vni, m, &ev)
	}
	return res
}

type moveEvent struct {
	from, to     Port
	moves        uint64
	flapping     bool
	windowMoves  int
	startedFlaps bool
}

func (t *Table) learnUnderLock(s *segment, m uint64, port Port, ev *moveEvent) LearnResult {
	if s.removed {
		t.ctr.unknownSegment.Add(1)
		return LearnUnknownSegment
	}
	now := t.tick()
	tb := s.tab.Load()
	i, found := tb.probe(m)
	if found {
		sl := &tb.slots[i]
		k, seen := sl.key.Load(), sl.seen.Load()
		cur := Port(k >> portShift)
		switch {
		case seen == staticSeen:
			if cur == port {
				return LearnStatic
			}
			t.ctr.staticConflicts.Add(1)
			return LearnStaticConflict
		case seen < now-t.age:
			// Aged but not yet reclaimed: learn afresh, history and all.
			delete(s.moves, m)
			sl.seen.Store(now)
			sl.key.Store(makeKey(m, port))
			s.portCount(cur, -1)
			s.portCount(port, 1)
			t.ctr.newEntries.Add(1)
			return LearnNew
		case cur == port:
			sl.seen.Store(now)
			return LearnRefreshed
		}
		// A move: seen first, so a reader that sees the new key sees a
		// live entry; a reader that saw the old key re-reads it.
		sl.seen.Store(now)
		sl.key.Store(makeKey(m, port))
		s.portCount(cur, -1)
		s.portCount(port, 1)
		t.ctr.moves.Add(1)
		*ev = t.noteMove(s, m, cur, port, now)
		if ev.flapping {
			return LearnFlapping
		}
		return LearnMoved
	}

	if s.learned >= t.maxPer {
		t.ctr.refusedFull.Add(1)
		return LearnRefusedFull
	}
	if int(s.perPort[port]) >= t.maxPort {
		t.ctr.refusedPort.Add(1)
		return LearnRefusedPort
	}
	if t.total.Add(1) > int64(t.maxTotal) {
		t.total.Add(-1)
		t.ctr.refusedFull.Add(1)
		return LearnRefusedFull
	}
	s.learned++
	s.portCount(port, 1)
	t.insert(s, tb, i, makeKey(m, port), now)
	t.ctr.newEntries.Add(1)
	return LearnNew
}

// insert puts a key that probe did not find at index i, rebuilding the
// table first if taking an empty slot would overload it. Under s.mu.
func (t *Table) insert(s *segment, tb *table, i uint64, key uint64, seen int64) {
	if tb.slots[i].key.Load() == 0 && tb.used+1 > tb.limit() {
		tb = t.rebuild(s, tb, tb.live+1)
		i, _ = tb.probe(key & macMask)
	}
	tb.put(i, key, seen)
}

// rebuild copies tb's entries into a new table sized for need entries,
// dropping tombstones and aged learned entries, and publishes it. Lock-free
// refreshes that land on the old table after its entry was copied are lost;
// the entry then ages from its previous refresh, and the MAC's next frame
// refreshes it again. Under s.mu.
func (t *Table) rebuild(s *segment, tb *table, need int) *table {
	now := t.now.Load()
	nt := newTable(need)
	for i := range tb.slots {
		sl := &tb.slots[i]
		k := sl.key.Load()
		if k&macMask == 0 {
			continue
		}
		seen := sl.seen.Load()
		if seen != staticSeen && seen < now-t.age {
			t.forget(s, k, false)
			t.ctr.agedOut.Add(1)
			continue
		}
		j, _ := nt.probe(k & macMask)
		nt.put(j, k, seen)
	}
	s.tab.Store(nt)
	t.ctr.rebuilds.Add(1)
	return nt
}

// forget updates the counts for an entry (key k: MAC and port) leaving
// the table. Under s.mu.
func (t *Table) forget(s *segment, k uint64, static bool) {
	if static {
		s.static--
		t.nstat.Add(-1)
	} else {
		s.learned--
		t.total.Add(-1)
		s.portCount(Port(k>>portShift), -1)
	}
	delete(s.moves, k&macMask)
}

// portCount adds d to the learned entries counted for port. Under s.mu;
// the map gains an entry once per port, never per packet.
func (s *segment) portCount(p Port, d int32) {
	if s.perPort == nil {
		s.perPort = make(map[Port]int32)
	}
	if n := s.perPort[p] + d; n > 0 {
		s.perPort[p] = n
	} else {
		delete(s.perPort, p)
	}
}

// noteMove records a move in the MAC's history and runs flap detection.
// Under s.mu.
func (t *Table) noteMove(s *segment, m uint64, from, to Port, now int64) moveEvent {
	if s.moves == nil {
		s.moves = make(map[uint64]*moveState)
	}
	ms := s.moves[m]
	if ms == nil {
		ms = &moveState{windowStart: now}
		s.moves[m] = ms
	}
	ms.total++
	ms.lastMove = now
	if now-ms.windowStart > t.flapWindow {
		ms.windowStart, ms.windowMoves, ms.flapping = now, 0, false
	}
	ms.windowMoves++
	ev := moveEvent{from: from, to: to, moves: ms.total, windowMoves: ms.windowMoves}
	if ms.windowMoves >= t.flapMoves {
		if !ms.flapping {
			ms.flapping = true
			ev.startedFlaps = true
			t.ctr.flaps.Add(1)
		}
		ev.flapping = true
	}
	return ev
}

// AddStatic adds a static entry, or changes the port of one: it never ages,
// learning never moves it, and it does not count against the capacity
// limits. A learned entry for the same MAC becomes the static one.
func (t *Table) AddStatic(vni encap.VNI, mac encap.MAC, port Port) error {
	if mac.IsMulticast() || mac.IsZero() {
		return fmt.Errorf("add static %v on %d: %w", mac, vni, ErrInvalidMAC)
	}
	if port > MaxPort {
		return fmt.Errorf("add static %v on %d: port %d: %w", mac, vni, port, ErrPortRange)
	}
	s := t.segment(vni)
	if s == nil {
		return fmt.Errorf("add static %v on %d: %w", mac, vni, ErrUnknownSegment)
	}
	m := macBits(mac)
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.removed {
		return fmt.Errorf("add static %v on %d: %w", mac, vni, ErrUnknownSegment)
	}
	tb := s.tab.Load()
	i, found := tb.probe(m)
	if found {
		sl := &tb.slots[i]
		if old := sl.key.Load(); sl.seen.Swap(staticSeen) != staticSeen {
			t.forget(s, old, false)
			s.static++
			t.nstat.Add(1)
		}
		sl.key.Store(makeKey(m, port))
		return nil
	}
	s.static++
	t.nstat.Add(1)
	t.insert(s, tb, i, makeKey(m, port), staticSeen)
	return nil
}

// RemoveStatic removes a static entry.
func (t *Table) RemoveStatic(vni encap.VNI, mac encap.MAC) error {
	s := t.segment(vni)
	if s == nil {
		return fmt.Errorf("remove static %v on %d: %w", mac, vni, ErrUnknownSegment)
	}
	m := macBits(mac)
	if m == 0 {
		return fmt.Errorf("remove static %v on %d: %w", mac, vni, ErrNotFound)
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	tb := s.tab.Load()
	i, found := tb.probe(m)
	if !found || tb.slots[i].seen.Load() != staticSeen {
		return fmt.Errorf("remove static %v on %d: %w", mac, vni, ErrNotFound)
	}
	tb.slots[i].seen.Store(deadSeen)
	tb.remove(i)
	t.forget(s, m, true)
	return nil
}

// FlushPort removes every learned entry on port, in every segment, and
// returns how many it removed; use it when a peer goes down. Static entries
// stay, as they are configuration. Each segment is flushed under its lock,
// so no frame re-learns a MAC of the segment on the old port in the middle;
// lookups are not blocked.
func (t *Table) FlushPort(port Port) int {
	n := 0
	for _, s := range t.idx.Load().list {
		s.mu.Lock()
		tb := s.tab.Load()
		for i := range tb.slots {
			sl := &tb.slots[i]
			k := sl.key.Load()
			if k&macMask == 0 || Port(k>>portShift) != port {
				continue
			}
			if sl.seen.Load() == staticSeen {
				continue
			}
			sl.seen.Store(deadSeen)
			tb.remove(uint64(i))
			t.forget(s, k, false)
			n++
		}
		t.maybeShrink(s)
		s.mu.Unlock()
	}
	t.ctr.flushed.Add(uint64(n))
	return n
}

// maybeShrink rebuilds s's table when it is mostly empty or mostly
// tombstones. Under s.mu.
func (t *Table) maybeShrink(s *segment) {
	tb := s.tab.Load()
	if (len(tb.slots) > minSlots && tb.live*8 < len(tb.slots)) || tb.used-tb.live > len(tb.slots)/4 {
		t.rebuild(s, tb, tb.live)
	}
}

func (t *Table) logMove(vni encap.VNI, m uint64, ev *moveEvent) {
	now := t.now.Load()
	okMove, supMove := t.moveLog.Allow(now)
	okFlap, supFlap := false, 0
	if ev.startedFlaps {
		okFlap, supFlap = t.flapLog.Allow(now)
	}
	mac := encap.MAC(bitsMAC(m))
	if okFlap {
		t.log.Warn("fdb: MAC flapping between ports, a loop?", "vni", vni, "mac", mac,
			"from", ev.from, "to", ev.to, "moves_in_window", ev.windowMoves, "suppressed", supFlap)
	}
	if okMove {
		t.log.Info("fdb: MAC moved", "vni", vni, "mac", mac,
			"from", ev.from, "to", ev.to, "moves", ev.moves, "suppressed", supMove)
	}
}
