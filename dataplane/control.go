// The control API: how control planes tell the data plane what exists.

package dataplane

import (
	"cmp"
	"fmt"
	"net/netip"
	"slices"

	"github.com/vxswitch/vxswitch/crypto/ike"
	"github.com/vxswitch/vxswitch/encap"
	"github.com/vxswitch/vxswitch/fdb"
)

// Control is how control planes — the static configuration and its SIGHUP
// reloads, IKE, and the EVPN speaker to come — tell the data plane what
// exists: peers appearing and going, the SAs installed and removed for
// them and their state, remote MACs. Flood lists follow from the peers and
// the segments each joins. *Switch implements it; every method is safe for
// concurrent use with the others and with the running pipeline, and none
// blocks on the data path.
type Control interface {
	// Reload replaces the whole set of peers, keeping the state (port,
	// SAs, learnt MACs, counters) of those whose identity did not change.
	Reload(peers []PeerConfig) error
	// AddPeer adds a peer, or replaces the one of the same name.
	AddPeer(pc PeerConfig) error
	// RemovePeer removes a peer with its SAs, learnt MACs and remote MACs.
	RemovePeer(name string) error

	// InstallChildSA installs an ESP SA pair (make-before-break).
	InstallChildSA(c ike.ChildSA) error
	// DeleteChildSA removes a pair (the inbound half after a grace).
	DeleteChildSA(peer string, inSPI, outSPI uint32)
	// PeerUp and PeerDown report the key exchange's view of a peer.
	PeerUp(name string)
	PeerDown(name string)
	// UpdateEndpoints follows a NAT rebinding seen on authenticated IKE.
	UpdateEndpoints(peer string, local, remote netip.AddrPort)

	// AddRemoteMAC pins mac in segment vni to a peer: frames to it go
	// there only, and learning does not move it (a control-plane entry).
	AddRemoteMAC(vni encap.VNI, mac encap.MAC, peer string) error
	// RemoveRemoteMAC removes such an entry.
	RemoveRemoteMAC(vni encap.VNI, mac encap.MAC) error
}

var _ Control = (*Switch)(nil)

// remoteMAC keys a MAC in a segment: a control-plane FDB entry, a snooped binding.
type remoteMAC struct {
	vni encap.VNI
	mac encap.MAC
}

// AddPeer implements Control.
func (s *Switch) AddPeer(pc PeerConfig) error {
	s.ctlMu.Lock()
	defer s.ctlMu.Unlock()
	cfgs := s.peerConfigs(pc.Name)
	return s.reloadLocked(append(cfgs, pc))
}

// RemovePeer implements Control.
func (s *Switch) RemovePeer(name string) error {
	s.ctlMu.Lock()
	defer s.ctlMu.Unlock()
	if s.peers.Load().byName[name] == nil {
		return fmt.Errorf("remove peer %q: no such peer", name)
	}
	return s.reloadLocked(s.peerConfigs(name))
}

// peerConfigs lists the configurations of the current peers but the one
// named except.
func (s *Switch) peerConfigs(except string) []PeerConfig {
	var out []PeerConfig
	for _, p := range s.peers.Load().byPort {
		if p != nil && p.cfg.Name != except {
			out = append(out, p.cfg)
		}
	}
	return out
}

// AddRemoteMAC implements Control.
func (s *Switch) AddRemoteMAC(vni encap.VNI, mac encap.MAC, peer string) error {
	s.mu.Lock()
	defer s.mu.Unlock()
	p := s.peers.Load().byName[peer]
	if p == nil {
		return fmt.Errorf("remote MAC %v in segment %d: no peer %q", mac, vni, peer)
	}
	seg := s.segments[vni]
	if seg == nil {
		return fmt.Errorf("remote MAC %v: no segment %d", mac, vni)
	}
	for _, st := range seg.cfg.Static {
		if st.MAC == mac {
			return fmt.Errorf("remote MAC %v in segment %d: a configured static entry holds it", mac, vni)
		}
	}
	if err := s.fdb.AddStatic(vni, mac, p.port); err != nil {
		return fmt.Errorf("remote MAC %v in segment %d: %w", mac, vni, err)
	}
	s.remote[remoteMAC{vni, mac}] = peer
	return nil
}

// RemoveRemoteMAC implements Control.
func (s *Switch) RemoveRemoteMAC(vni encap.VNI, mac encap.MAC) error {
	s.mu.Lock()
	defer s.mu.Unlock()
	k := remoteMAC{vni, mac}
	if _, ok := s.remote[k]; !ok {
		return fmt.Errorf("remote MAC %v in segment %d: not installed", mac, vni)
	}
	delete(s.remote, k)
	return s.fdb.RemoveStatic(vni, mac)
}

// dropRemoteMACsLocked removes the remote MACs of a peer that went; s.mu
// is held.
func (s *Switch) dropRemoteMACsLocked(peer string) {
	for k, name := range s.remote {
		if name == peer {
			delete(s.remote, k)
			_ = s.fdb.RemoveStatic(k.vni, k.mac)
		}
	}
}

// setPeers builds a new peer table, keeping the state (port, SAs,
// endpoint, path MTU) of peers whose configuration did not change.
func (s *Switch) setPeers(cfgs []PeerConfig) error {
	s.mu.Lock()
	defer s.mu.Unlock()
	old := s.peers.Load()
	t := &peerTable{
		byPort: []*peer{nil},
		byName: make(map[string]*peer), byAddr: make(map[netip.Addr]*peer),
	}
	if old != nil {
		t.byPort = make([]*peer, len(old.byPort))
	}
	names := make(map[string]bool, len(cfgs))
	for _, pc := range cfgs {
		if names[pc.Name] {
			return fmt.Errorf("peer %q: duplicate name", pc.Name)
		}
		names[pc.Name] = true
	}
	var added, restart []*peer
	for _, pc := range cfgs {
		if pc.Endpoint.Port() == 0 {
			pc.Endpoint = netip.AddrPortFrom(pc.Endpoint.Addr(), s.cfg.Port)
		}
		if !pc.VTEP.IsValid() {
			pc.VTEP = pc.Endpoint.Addr()
		}
		mtu := cmp.Or(pc.MTU, 1500) // without probing; the prober's ceiling is pc.MTU or the local link's
		var p *peer
		var op *peer
		if old != nil {
			op = old.byName[pc.Name]
		}
		if op != nil && samePeer(op.cfg, pc) {
			// The SAs, learnt MACs and counters stay; the path MTU and the
			// segments change in place.
			p = op
			if pc.MTU != p.cfg.MTU {
				p.cfg.MTU = pc.MTU
				p.ceiling.Store(int32(pc.MTU))
				p.cfgMTU.Store(int32(mtu))
				p.mtu.Store(int32(mtu))
				restart = append(restart, p)
			}
			if segs := pc.Segments; !slices.Equal(segs, *p.segments.Load()) {
				p.cfg.Segments = segs
				p.segments.Store(&segs)
				s.fdb.FlushPort(p.port) // what it learnt in segments it left
			}
		}
		if p == nil {
			p = &peer{cfg: pc, tunnel: encap.Tunnel{Src: s.cfg.VTEP, Dst: pc.VTEP}}
			if !s.cfg.PMTU.Off {
				p.baseMTU = basePLPMTU(pc.Endpoint.Addr())
			}
			p.ceiling.Store(int32(pc.MTU))
			ep := pc.Endpoint
			p.endpoint.Store(&ep)
			p.mtu.Store(int32(mtu))
			p.cfgMTU.Store(int32(mtu))
			segs := pc.Segments
			p.segments.Store(&segs)
			if s.cfg.Mode == ModePlain {
				p.state.Store(peerUp)
			}
			if op != nil {
				p.port = op.port // a replaced peer keeps its port, so static entries stay right
			}
			added = append(added, p)
		}
		t.byName[pc.Name] = p
		t.byAddr[pc.Endpoint.Addr()] = p
	}
	// Keep the ports of surviving peers; give new ones free ports.
	for _, p := range t.byName {
		if p.port != 0 {
			t.byPort[p.port] = p
		}
	}
	for _, p := range added {
		if p.port != 0 {
			continue
		}
		port := slices.Index(t.byPort[1:], nil) + 1
		if port == 0 {
			port = len(t.byPort)
			t.byPort = append(t.byPort, nil)
		}
		p.port = fdb.Port(port)
		t.byPort[port] = p
	}
	s.peers.Store(t)
	// Peers that went away: forget their MACs and SAs.
	if old != nil {
		for name, op := range old.byName {
			if t.byName[name] != op {
				s.fdb.FlushPort(op.port)
				s.removePeerSAs(op)
				s.stopProber(op)
				if t.byName[name] == nil {
					s.dropRemoteMACsLocked(name)
				}
			}
		}
	}
	for _, p := range restart {
		if s.stopProber(p) {
			s.startProber(p)
		}
	}
	if s.under != nil && s.cfg.Mode == ModePlain {
		for _, p := range added {
			s.startProber(p)
		}
	}
	if s.segments != nil {
		s.updateFloodListsLocked()
		if err := s.applyStaticsLocked(); err != nil {
			return err
		}
	}
	return nil
}

// applyStaticsLocked (re)installs the static FDB entries of every segment
// with the current port of the peer each names: at start and after a
// reload, which may have removed that peer (its entries go too).
func (s *Switch) applyStaticsLocked() error {
	pt := s.peers.Load()
	for _, seg := range s.segments {
		for _, st := range seg.cfg.Static {
			port := fdb.LocalPort
			if st.Peer != "" {
				p := pt.byName[st.Peer]
				if p == nil {
					_ = s.fdb.RemoveStatic(seg.vni, st.MAC)
					continue
				}
				port = p.port
			}
			// AddStatic moves an existing static entry in place: no moment
			// without it, when frames to the MAC would flood.
			if err := s.fdb.AddStatic(seg.vni, st.MAC, port); err != nil {
				return fmt.Errorf("segment %d: static %v: %w", seg.vni, st.MAC, err)
			}
		}
	}
	return nil
}

// samePeer reports whether a reload keeps the peer (its SAs, learnt MACs
// and counters): what IKE and the tunnel headers are built from is the
// same; the path MTU and the segments may differ and change in place.
func samePeer(a, b PeerConfig) bool {
	return a.Name == b.Name && a.Endpoint == b.Endpoint && a.VTEP == b.VTEP &&
		(a.Initiate == InitiateNo) == (b.Initiate == InitiateNo) && a.RemoteID == b.RemoteID
}

func (p *peer) inSegment(vni encap.VNI) bool {
	segs := *p.segments.Load()
	return len(segs) == 0 || slices.Contains(segs, vni)
}

func (s *Switch) updateFloodLists() {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.updateFloodListsLocked()
}

// updateFloodListsLocked sets each segment's flood list (its peers, in
// port order) and the smallest frame MTU over them for MSS clamping.
func (s *Switch) updateFloodListsLocked() {
	pt := s.peers.Load()
	for vni := range s.segments {
		var list []fdb.Port
		for _, p := range pt.byPort {
			if p != nil && p.inSegment(vni) {
				list = append(list, p.port)
			}
		}
		s.fdb.SetFloodList(vni, list)
	}
	s.updateFloodMTUs()
}

// updateFloodMTUs sets each segment's smallest frame MTU over its peers,
// which floods are MSS-clamped to. It takes no lock (path MTUs move under
// probing; housekeeping calls it).
func (s *Switch) updateFloodMTUs() {
	pt := s.peers.Load()
	for vni, seg := range s.segments {
		minMTU := int64(0)
		for _, p := range pt.byPort {
			if p == nil || !p.inSegment(vni) {
				continue
			}
			if m := int64(p.frameMTU(s.cfg.Mode)); minMTU == 0 || m < minMTU {
				minMTU = m
			}
		}
		seg.minFrameMTU.Store(minMTU)
	}
}

// Reload replaces the peer list (SIGHUP) without disturbing the traffic of
// peers whose configuration did not change.
func (s *Switch) Reload(peers []PeerConfig) error {
	s.ctlMu.Lock()
	defer s.ctlMu.Unlock()
	return s.reloadLocked(peers)
}

// SetAuth replaces the mesh PSK and the certificate credentials (a reload
// re-read their files): new IKE SAs authenticate with them, and
// established ones whose peer certificate no longer passes (revoked, a CA
// removed) are deleted (ike.Daemon.SetAuth).
func (s *Switch) SetAuth(psk []byte, creds *ike.Credentials) {
	s.ctlMu.Lock()
	defer s.ctlMu.Unlock()
	s.cfg.IKE.PSK, s.cfg.IKE.Credentials = psk, creds
	d := s.ike.get()
	if d != nil {
		d.SetAuth(psk, creds)
	}
}

// reloadLocked is Reload with ctlMu held.
func (s *Switch) reloadLocked(peers []PeerConfig) error {
	if err := s.setPeers(peers); err != nil {
		return err
	}
	s.ike.updatePeers(s)
	return nil
}

// LocalMACs calls fn for every MAC learnt on a segment's TAP (what a
// control plane advertises), with the IP address it claimed last in ARP or
// neighbour discovery (the zero Addr if none).
// Snooped addresses of MACs no longer here are dropped on the way.
func (s *Switch) LocalMACs(fn func(vni encap.VNI, mac encap.MAC, ip netip.Addr)) {
	present := map[remoteMAC]bool{}
	s.fdb.Entries(func(e fdb.Entry) bool {
		if e.Port == fdb.LocalPort && !e.Static {
			present[remoteMAC{e.VNI, e.MAC}] = true
			fn(e.VNI, e.MAC, s.neigh.localIP(e.VNI, e.MAC))
		}
		return true
	})
	s.neigh.prune(present)
}

// MovedToTAP calls fn for each MAC pinned to a peer (AddRemoteMAC) that
// has sent from a segment's TAP since the last call: a MAC that moved to
// this site, which the control plane may unpin (RFC 7432 §15 mobility).
func (s *Switch) MovedToTAP(fn func(vni encap.VNI, mac encap.MAC)) {
	for vni, seg := range s.segments {
		for {
			select {
			case mac := <-seg.movedHere:
				fn(vni, mac)
				continue
			default:
			}
			break
		}
	}
}

// PeerAt returns the name of the peer whose endpoint address is addr.
func (s *Switch) PeerAt(addr netip.Addr) (string, bool) {
	if p := s.peers.Load().byAddr[addr]; p != nil {
		return p.cfg.Name, true
	}
	return "", false
}

// ClaimLocal moves a MAC pinned to a peer (AddRemoteMAC) to the segment's
// TAP at once: it has spoken from there (MovedToTAP), so it is learnt
// there without waiting for its next frame.
func (s *Switch) ClaimLocal(vni encap.VNI, mac encap.MAC) error {
	if err := s.RemoveRemoteMAC(vni, mac); err != nil {
		return err
	}
	s.fdb.Learn(vni, mac, fdb.LocalPort)
	return nil
}
