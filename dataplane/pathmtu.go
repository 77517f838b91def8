// Path MTU: what the kernel reports (ICMP, EMSGSIZE) lowers a peer's path
// MTU, and a lowered one is raised again after a while.

package dataplane

import (
	"net/netip"
	"time"
)

// applyPathMTUs applies path MTUs the kernel reported for our peers.
func (s *Switch) applyPathMTUs() {
	s.under.PathMTUs(s.lowerFn)
}

// lowerPathMTU lowers the path MTU of the peer at dst (its current
// endpoint: it may have moved from the configured one) to mtu.
func (s *Switch) lowerPathMTU(dst netip.Addr, mtu int) {
	for _, p := range s.peers.Load().byPort {
		if p == nil || p.Endpoint().Addr() != dst || mtu < 576 {
			continue
		}
		if pr := p.prober.Load(); pr != nil {
			// A hint for the prober (RFC 8899 §4.6): the kernel matched the
			// report to a packet we sent to this peer's address; the prober
			// takes it only below its PLPMTU and once a check agrees.
			if pr.Hint(mtu) {
				s.log.Info("path MTU report (ICMP or local), checking it", "peer", p.cfg.Name, "mtu", mtu)
			}
			continue
		}
		if int32(mtu) >= p.mtu.Load() {
			continue
		}
		p.mtu.Store(int32(mtu))
		p.mtuLow.Store(s.clock.Now().UnixNano())
		s.log.Info("path MTU lowered", "peer", p.cfg.Name, "mtu", mtu)
		s.updateFloodMTUs()
	}
}

// pathMTURecheck is how long a lowered path MTU holds before the
// configured one is tried again, as the kernel's own cache expires
// (net.ipv4.route.mtu_expires): a route that grew back, or one forged
// ICMP, does not shrink the tunnel for good.
const pathMTURecheck = 10 * time.Minute

// restorePathMTUs raises lowered path MTUs back to the configured ones
// once pathMTURecheck has passed (housekeeping, which then updates the
// floods' MSS clamp).
func (s *Switch) restorePathMTUs(now time.Time) {
	for _, p := range s.peers.Load().byPort {
		if p == nil {
			continue
		}
		cfg := p.cfgMTU.Load()
		if p.mtu.Load() < cfg && now.Sub(time.Unix(0, p.mtuLow.Load())) > pathMTURecheck {
			p.mtu.Store(cfg)
			s.log.Info("path MTU back to the configured one", "peer", p.cfg.Name, "mtu", cfg)
		}
	}
}
