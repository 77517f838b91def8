package evpn

import (
	"context"
	"net/netip"
	"time"

	"github.com/vxswitch/vxswitch/encap"
)

// Duplicate MAC detection (RFC 7432 §15.1): a MAC that moves dupMoves
// times within dupWindow is a duplicate (two hosts, or a loop); this site
// stops advertising it and says so.
const (
	dupMoves  = 5
	dupWindow = 180 * time.Second
)

// syncLocal compares the MACs learnt on the TAPs with those advertised:
// new ones are advertised (with a MAC mobility sequence number above any
// seen for the MAC once it was elsewhere), aged-out ones withdrawn. MACs
// pinned to a peer that now speak from the TAP are unpinned first, so
// that learning takes them (a move to this site).
func (s *Speaker) syncLocal(ctx context.Context) {
	for _, c := range s.syncLocalState() {
		nlri, attrs, err := macRoute(s.me, c.k.vni, c.k.mac, c.ip, c.seq)
		if err == nil {
			err = s.announce(nlri, attrs, c.withdraw)
		}
		if err != nil {
			s.log.Warn("evpn: advertise MAC", "mac", c.k.mac, "err", err)
			continue
		}
		s.mu.Lock()
		d := 1
		if c.withdraw {
			d = -1
		}
		s.countLocked(s.stats.RoutesOut, "type2", c.k.vni, d)
		s.mu.Unlock()
	}
}

// change is one type-2 route to advertise or withdraw: the MAC alone, or
// with an address (ip valid; RFC 7432 §7.2, a route of its own).
type change struct {
	k        macKey
	ip       netip.Addr
	seq      uint32
	withdraw bool
}

// routesOf lists the routes a local MAC has: the MAC alone, and the MAC
// with its address if it claimed one.
func routesOf(k macKey, l *localMAC, withdraw bool) []change {
	out := []change{{k: k, seq: l.seq, withdraw: withdraw}}
	if l.ip.IsValid() {
		out = append(out, change{k: k, ip: l.ip, seq: l.seq, withdraw: withdraw})
	}
	return out
}

// syncLocalState updates the local MAC state and returns the routes to
// advertise and withdraw (syncLocal sends them).
func (s *Speaker) syncLocalState() []change {
	var unpin []macKey
	s.sw.MovedToTAP(func(vni encap.VNI, mac encap.MAC) { unpin = append(unpin, macKey{vni, mac}) })
	s.mu.Lock()
	defer s.mu.Unlock()
	for _, k := range unpin {
		delete(s.away, k) // it speaks from here again
		if s.fdb[k] != "" {
			if err := s.sw.ClaimLocal(k.vni, k.mac); err == nil {
				delete(s.fdb, k)
				s.log.Info("evpn: remote MAC appeared on the TAP: moved here", "mac", k.mac, "vni", k.vni)
			}
		}
	}
	cur := map[macKey]netip.Addr{}
	s.sw.LocalMACs(func(vni encap.VNI, mac encap.MAC, ip netip.Addr) {
		if s.segment(vni) {
			cur[macKey{vni, mac}] = ip
		}
	})
	changes := s.pendingOut
	s.pendingOut = nil
	now := time.Now()
	for k := range s.away {
		if _, ok := cur[k]; !ok {
			delete(s.away, k)
		}
	}
	for k, ip := range cur {
		if s.away[k] {
			continue // moved away: its old entry here is not a new arrival
		}
		if l := s.local[k]; l != nil {
			if ip != l.ip && ip.IsValid() && !l.dup {
				// It claims another address now: that route replaces the old one.
				if l.ip.IsValid() {
					changes = append(changes, change{k: k, ip: l.ip, seq: l.seq, withdraw: true})
				}
				changes = append(changes, change{k: k, ip: ip, seq: l.seq})
				l.ip = ip
			}
			continue
		}
		l := &localMAC{ip: ip}
		if seq, ok := s.seqs[k]; ok || s.remoteRouteLocked(k) {
			// It was elsewhere: a move to this site.
			l.seq = seq + 1
			s.seqs[k] = l.seq
			l.moves = trimMoves(append(s.history[k], now), now)
			if s.isDuplicate(l.moves, now) {
				l.dup = true
				s.stats.Duplicate++
				s.log.Warn("evpn: duplicate MAC (moved too often), no longer advertised (RFC 7432 §15)", "mac", k.mac, "vni", k.vni, "moves", len(l.moves))
			}
		}
		s.local[k] = l
		if !l.dup {
			changes = append(changes, routesOf(k, l, false)...)
		}
	}
	for k, l := range s.local {
		if _, ok := cur[k]; ok {
			continue
		}
		delete(s.local, k)
		if !l.dup {
			changes = append(changes, routesOf(k, l, true)...)
		}
	}
	return changes
}

// remoteRouteLocked reports whether a type-2 route for k came from another site.
func (s *Speaker) remoteRouteLocked(k macKey) bool { return len(s.byMAC[k]) > 0 }

func (s *Speaker) isDuplicate(moves []time.Time, now time.Time) bool {
	n := 0
	for _, t := range moves {
		if now.Sub(t) <= dupWindow {
			n++
		}
	}
	return n >= dupMoves
}

// moveAwayLocked: a route from elsewhere with a higher sequence number
// took a MAC we advertised; withdraw ours (the data plane's entry is
// overwritten by the pin), keeping its move history.
func (s *Speaker) moveAwayLocked(k macKey, l *localMAC) {
	s.history[k] = trimMoves(append(l.moves, time.Now()), time.Now())
	delete(s.local, k)
	s.away[k] = true
	if l.dup {
		return
	}
	s.pendingOut = append(s.pendingOut, routesOf(k, l, true)...) // sent by the next syncLocal
}

// trimMoves keeps the moves within dupWindow.
func trimMoves(moves []time.Time, now time.Time) []time.Time {
	i := 0
	for i < len(moves) && now.Sub(moves[i]) > dupWindow {
		i++
	}
	return moves[i:]
}
