package evpn

import (
	"net/netip"

	"github.com/vxswitch/vxswitch/encap"
)

// The type-2 routes received, indexed by MAC, by address and by next hop,
// and what they installed: for each MAC the best route (highest MAC
// mobility sequence number, then the lowest next hop, RFC 7432 §15.1) is
// pinned in the data plane unless the MAC is here and not outdone; for
// each address the best route carrying it is the ARP/ND binding. Every
// change re-resolves only the MACs and addresses it touches.

type neighKey struct {
	vni encap.VNI
	ip  netip.Addr
}

func addIndex[K comparable](m map[K]map[string]struct{}, k K, key string) {
	set := m[k]
	if set == nil {
		set = map[string]struct{}{}
		m[k] = set
	}
	set[key] = struct{}{}
}

func dropIndex[K comparable](m map[K]map[string]struct{}, k K, key string) {
	if set := m[k]; set != nil {
		delete(set, key)
		if len(set) == 0 {
			delete(m, k)
		}
	}
}

// addMAC takes a type-2 route (new or changed) and resolves what it touches.
func (s *Speaker) addMAC(r route) {
	s.mu.Lock()
	defer s.mu.Unlock()
	if old, ok := s.macs[r.key]; ok {
		s.unindexLocked(old)
	} else {
		s.countLocked(s.stats.RoutesIn, "type2", r.vni, 1)
	}
	s.macs[r.key] = r
	k := macKey{r.vni, r.mac}
	addIndex(s.byMAC, k, r.key)
	addIndex(s.byNexthop, r.nexthop, r.key)
	if r.ip.IsValid() {
		addIndex(s.byIP, neighKey{r.vni, r.ip}, r.key)
	}
	if r.seq > s.seqs[k] {
		s.seqs[k] = r.seq
	}
	s.resolveMACLocked(k)
	if r.ip.IsValid() {
		s.resolveIPLocked(neighKey{r.vni, r.ip})
	}
}

// dropMACRouteLocked forgets a withdrawn type-2 route and resolves its MAC
// and address again.
func (s *Speaker) dropMACRouteLocked(r route) {
	delete(s.macs, r.key)
	s.countLocked(s.stats.RoutesIn, "type2", r.vni, -1)
	s.unindexLocked(r)
	s.resolveMACLocked(macKey{r.vni, r.mac})
	if r.ip.IsValid() {
		s.resolveIPLocked(neighKey{r.vni, r.ip})
	}
}

func (s *Speaker) unindexLocked(r route) {
	k := macKey{r.vni, r.mac}
	dropIndex(s.byMAC, k, r.key)
	dropIndex(s.byNexthop, r.nexthop, r.key)
	if r.ip.IsValid() {
		dropIndex(s.byIP, neighKey{r.vni, r.ip}, r.key)
		s.resolveIPLocked(neighKey{r.vni, r.ip})
	}
	if _, still := s.byMAC[k]; !still && s.local[k] == nil {
		delete(s.seqs, k)
		delete(s.history, k)
	}
}

// better reports whether route a beats b for the same MAC (RFC 7432 §15.1:
// the higher sequence number; equal, the lower next hop).
func better(a, b route) bool {
	if a.seq != b.seq {
		return a.seq > b.seq
	}
	return a.nexthop.Less(b.nexthop)
}

// bestOfLocked is the best of the received routes with these keys.
func (s *Speaker) bestOfLocked(keys map[string]struct{}) (route, bool) {
	var best route
	found := false
	for key := range keys {
		r := s.macs[key]
		if !found || better(r, best) {
			best, found = r, true
		}
	}
	return best, found
}

// bestMACLocked is the best received route for k.
func (s *Speaker) bestMACLocked(k macKey) (route, bool) { return s.bestOfLocked(s.byMAC[k]) }

// resolveMACLocked makes the data plane's entry for k follow the best
// route, unless the MAC is here and not outdone (then it stays local).
func (s *Speaker) resolveMACLocked(k macKey) {
	best, ok := s.bestMACLocked(k)
	if ok {
		if l := s.local[k]; l != nil {
			if !best.sticky && !better(best, route{seq: l.seq, nexthop: s.cfg.Nexthop}) {
				ok = false // ours is newer: it stays here
			} else {
				s.moveAwayLocked(k, l)
			}
		}
	}
	name := ""
	if ok {
		name = s.peerForLocked(best.nexthop)
	}
	if name == s.fdb[k] {
		return
	}
	if name == "" {
		// No route, or its site is not a peer yet (its type-3 route has
		// not come: addIMET resolves again): no stale pin either.
		if err := s.sw.RemoveRemoteMAC(k.vni, k.mac); err != nil {
			s.log.Debug("evpn: remove remote MAC", "mac", k.mac, "err", err)
		}
		delete(s.fdb, k)
		return
	}
	if err := s.sw.AddRemoteMAC(k.vni, k.mac, name); err != nil {
		s.log.Debug("evpn: cannot install remote MAC", "mac", k.mac, "vni", k.vni, "peer", name, "err", err)
		s.stats.Refused++
		return
	}
	s.fdb[k] = name
}

// resolveIPLocked binds an address to the MAC of the best route carrying
// it, or drops the binding.
func (s *Speaker) resolveIPLocked(n neighKey) {
	if best, found := s.bestOfLocked(s.byIP[n]); found {
		s.sw.AddRemoteNeighbour(n.vni, n.ip, best.mac)
	} else {
		s.sw.RemoveRemoteNeighbour(n.vni, n.ip)
	}
}

// resolveNexthopLocked resolves every MAC whose routes name nexthop (its
// site just became a peer, or went).
func (s *Speaker) resolveNexthopLocked(nexthop netip.Addr) {
	seen := map[macKey]bool{}
	for key := range s.byNexthop[nexthop] {
		r := s.macs[key]
		k := macKey{r.vni, r.mac}
		if !seen[k] {
			seen[k] = true
			s.resolveMACLocked(k)
		}
	}
}

// peerForLocked is the peer a route's next hop names: a discovered one or
// a configured one.
func (s *Speaker) peerForLocked(nexthop netip.Addr) string {
	for _, p := range s.peers {
		if p.endpoint == nexthop {
			return p.name
		}
	}
	name, _ := s.sw.PeerAt(nexthop)
	return name
}
