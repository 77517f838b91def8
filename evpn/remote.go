package evpn

import (
	"strconv"
	"time"

	"github.com/osrg/gobgp/v4/pkg/apiutil"
	"github.com/osrg/gobgp/v4/pkg/packet/bgp"

	"github.com/vxswitch/vxswitch/encap"
)

// withdrawGrace is how long a withdrawn route is kept in case another
// reflector's copy of it becomes the best path.
const withdrawGrace = 500 * time.Millisecond

// received handles one best-path change: a new or changed route is used,
// a withdrawn one removed after withdrawGrace, or, when every session is
// down, kept as stale for StaleTime (the data plane stays as it is while
// the reflectors are away, graceful-restart style).
func (s *Speaker) received(p *apiutil.Path) {
	nlri, attrs := p.Nlri, p.Attrs
	if nlri == nil {
		return
	}
	key := nlri.String()
	s.mu.Lock()
	s.stats.Churn++
	s.mu.Unlock()
	if p.Withdrawal {
		// Not at once: when one reflector goes, its paths are withdrawn
		// before the other's copy becomes the best path, which then
		// cancels the removal (received deletes the deadline). With every
		// session down the routes are kept as stale for StaleTime.
		hold := withdrawGrace
		if s.sessions == 0 {
			hold = s.cfg.StaleTime
		}
		s.mu.Lock()
		if _, held := s.imet[key]; held || s.macs[key].kind != 0 {
			s.stale[key] = time.Now().Add(hold)
		}
		s.mu.Unlock()
		return
	}
	r, err := parseRoute(nlri, attrs, s.cfg.ASN)
	usable := err == nil && r.nexthop != s.cfg.Nexthop && !(r.kind == bgp.EVPN_INCLUSIVE_MULTICAST_ETHERNET_TAG && r.vtep == s.cfg.VTEP) &&
		s.segment(r.vni) && r.imports(r.vni, s.cfg.ESP, s.cfg.RouteTargets)
	if !usable {
		if err != nil && err != errNotOurs {
			s.log.Debug("evpn: route not usable", "err", err)
			s.refused()
		}
		// A route held before that no longer applies (another route
		// target, segment or next hop): as good as withdrawn.
		s.withdrawn(key)
		return
	}
	s.mu.Lock()
	delete(s.stale, key)
	s.mu.Unlock()
	switch r.kind {
	case bgp.EVPN_INCLUSIVE_MULTICAST_ETHERNET_TAG:
		s.addIMET(r)
	case bgp.EVPN_ROUTE_TYPE_MAC_IP_ADVERTISEMENT:
		s.addMAC(r)
	}
}

func (s *Speaker) refused() {
	s.mu.Lock()
	s.stats.Refused++
	s.mu.Unlock()
}

func (s *Speaker) segment(vni encap.VNI) bool {
	for _, v := range s.cfg.Segments {
		if v == vni {
			return true
		}
	}
	return false
}

// addIMET makes the route's site a peer of the segment (a flood list
// member), or adds the segment to it; a configured [[peer]] at that
// endpoint is used as it is.
func (s *Speaker) addIMET(r route) {
	s.mu.Lock()
	defer s.mu.Unlock()
	if old, ok := s.imet[r.key]; ok && old.vtep == r.vtep && old.nexthop == r.nexthop && old.vni == r.vni {
		return
	}
	if old, ok := s.imet[r.key]; ok {
		s.dropSegmentLocked(old)
	}
	s.imet[r.key] = r
	s.countLocked(s.stats.RoutesIn, "type3", r.vni, 1)
	if name, ok := s.sw.PeerAt(r.nexthop); ok && !s.discovered(name) {
		return // a configured peer: static [[peer]] blocks keep working
	}
	p := s.peers[r.vtep]
	if p == nil {
		p = &remotePeer{name: "evpn-" + r.vtep.String(), vtep: r.vtep, segments: map[encap.VNI]bool{}}
		s.peers[r.vtep] = p
	}
	if p.endpoint == r.nexthop && p.segments[r.vni] {
		return
	}
	p.endpoint = r.nexthop
	p.segments[r.vni] = true
	if err := s.sw.AddPeer(s.peerConfig(p)); err != nil {
		s.log.Warn("evpn: cannot add the peer a route names", "peer", p.name, "endpoint", r.nexthop, "err", err)
		s.stats.Refused++
		return
	}
	s.log.Info("evpn: peer from route", "peer", p.name, "endpoint", r.nexthop, "vtep", r.vtep, "vni", r.vni)
	// MAC routes that came before their site's type-3 route.
	s.resolveNexthopLocked(r.nexthop)
}

func (s *Speaker) discovered(name string) bool {
	for _, p := range s.peers {
		if p.name == name {
			return true
		}
	}
	return false
}

func (s *Speaker) countLocked(m map[string]int, kind string, vni encap.VNI, d int) {
	k := kind + " vni " + strconv.Itoa(int(vni))
	m[k] += d
	if m[k] <= 0 {
		delete(m, k)
	}
}

// dropSegmentLocked undoes a type-3 route: the segment leaves the peer,
// and a peer with no segment left is removed (with its remote MACs).
func (s *Speaker) dropSegmentLocked(r route) {
	delete(s.imet, r.key)
	s.countLocked(s.stats.RoutesIn, "type3", r.vni, -1)
	p := s.peers[r.vtep]
	if p == nil {
		return
	}
	delete(p.segments, r.vni)
	if len(p.segments) > 0 {
		if err := s.sw.AddPeer(s.peerConfig(p)); err != nil {
			s.log.Warn("evpn: cannot update peer", "peer", p.name, "err", err)
		}
		return
	}
	delete(s.peers, r.vtep)
	if err := s.sw.RemovePeer(p.name); err != nil {
		s.log.Warn("evpn: cannot remove peer", "peer", p.name, "err", err)
	}
	for k, name := range s.fdb {
		if name == p.name {
			delete(s.fdb, k) // RemovePeer removed them from the data plane
		}
	}
	s.log.Info("evpn: peer withdrawn", "peer", p.name)
}

// withdrawn removes what a withdrawn route installed.
func (s *Speaker) withdrawn(key string) {
	s.mu.Lock()
	defer s.mu.Unlock()
	delete(s.stale, key)
	if r, ok := s.imet[key]; ok {
		s.dropSegmentLocked(r)
		return
	}
	if r, ok := s.macs[key]; ok {
		s.dropMACRouteLocked(r)
	}
}

// expireStale removes withdrawn routes whose grace (withdrawGrace, or
// StaleTime when every session was down) passed without them coming back.
func (s *Speaker) expireStale(now time.Time) {
	s.mu.Lock()
	var due []string
	for k, t := range s.stale {
		if now.After(t) {
			due = append(due, k)
		}
	}
	s.mu.Unlock()
	for _, k := range due {
		s.log.Debug("evpn: withdrawn route removed", "route", k)
		s.withdrawn(k)
	}
}
