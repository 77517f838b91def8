package dataplane

import (
	"errors"
	"net/netip"
	"syscall"

	"github.com/vxswitch/vxswitch/crypto"
	"github.com/vxswitch/vxswitch/encap"
	"github.com/vxswitch/vxswitch/link"
	"github.com/vxswitch/vxswitch/pmtu"
)

// Path MTU probing (RFC 8899) of each peer: in esp mode a probe is an
// ESP dummy packet (next header 59, which RFC 4303 §2.6 has any standard
// receiver discard) carrying a pmtu message and padding, so it is
// authenticated, sealed in the peer's SA like data and never reaches a
// TAP; in plain mode it follows a VXLAN header without the I flag, which
// RFC 7348 receivers (the kernel's vxlan device among them) drop before
// any bridge. Both are sent with DF. The peer answers with a small
// acknowledgement of the same form.

// Base PLPMTUs (RFC 8899 §5.1.2): sizes every path is taken to carry
// before a probe confirms more. IPv6 links carry at least 1280.
const (
	basePLPMTU4 = 1200
	basePLPMTU6 = 1280
)

// basePLPMTU is the base PLPMTU toward an underlay address.
func basePLPMTU(a netip.Addr) int {
	if a.Is6() && !a.Is4In6() {
		return basePLPMTU6
	}
	return basePLPMTU4
}

// probeCeiling is the largest outer packet worth probing for p: what the
// largest frame of its segments becomes on the wire, capped by the
// configured peer MTU, else by the local link's MTU toward the peer.
func (s *Switch) probeCeiling(p *peer) int {
	frame := 0
	for vni, seg := range s.segments {
		if p.inSegment(vni) {
			frame = max(frame, seg.cfg.MTU+encap.EthernetHeaderLen+encap.VLANTagLen)
		}
	}
	ep := p.Endpoint()
	need := frame + encap.VXLANHeaderLen + outerOverhead(ep)
	if s.cfg.Mode == ModeESP {
		need += p.tunnel.Overhead() - encap.VXLANHeaderLen + crypto.HeaderLen + crypto.MaxTrailerLen
	}
	need = (need + 3) &^ 3
	if c := int(p.ceiling.Load()); c > 0 {
		return min(need, c)
	}
	if l := routeMTUFn(ep.Addr()); l > 0 {
		return min(need, l)
	}
	return min(need, 1500)
}

// startProber starts path MTU probing of p (esp: its first SA is in; plain:
// the switch is attached). It does nothing with probing off or when p is
// probed already.
func (s *Switch) startProber(p *peer) {
	if s.cfg.PMTU.Off || p.prober.Load() != nil {
		return
	}
	// Only a peer that is still configured, and in esp mode one with an SA
	// to probe in (a delayed start may come after PeerDown or removal).
	if s.peers.Load().byName[p.cfg.Name] != p || (s.cfg.Mode == ModeESP && p.outSA.Load() == nil) {
		return
	}
	base := basePLPMTU(p.Endpoint().Addr())
	ceiling := s.probeCeiling(p)
	// A peer that answers no probes (a kernel VTEP, a strongSwan gateway)
	// gets the configured path MTU if there is one. Without, esp mode
	// sends at the base size, fragmenting inside the tunnel, since nothing
	// tells it what the path carries and the path may drop ICMP; plain
	// mode over IPv4 sends at the local link's MTU with DF off, so routers
	// fragment as they do for a kernel VTEP; over IPv6, where routers
	// never fragment, it fragments to 1280 itself.
	fallback := int(p.cfgMTU.Load())
	if p.ceiling.Load() == 0 {
		switch {
		case s.cfg.Mode == ModeESP, base == basePLPMTU6:
			fallback = base
		default:
			fallback = ceiling
		}
	}
	c := s.cfg.PMTU
	cfg := pmtu.Config{Base: min(base, ceiling), Max: ceiling, Fallback: min(fallback, ceiling),
		ProbeTimer: c.ProbeTimer, RaiseTimer: c.RaiseTimer, ConfirmTimer: c.ConfirmTimer, MaxProbes: c.MaxProbes}
	var pr *pmtu.Prober
	if s.cfg.Mode == ModeESP {
		// An ESP peer whose data plane answers none of our probes (a
		// strongSwan gateway) is probed through IKE instead.
		cfg.OnDisabled = func() { s.startIKEProber(p, pr) }
	}
	pr = pmtu.New(cfg, s.clock, func(id uint32, size int) { s.sendProbe(p, pmtu.TypeProbe, id, size) })
	if !p.prober.CompareAndSwap(nil, pr) {
		return
	}
	pr.Start()
}

// startIKEProber replaces old, the data-plane prober of p that found no
// answer, with one whose probes are padded IKE INFORMATIONAL requests
// (ike.Daemon.Probe): one at a time, as IKE's window allows. A peer that
// answers these neither (its IKE SA is down) is left to ICMP as before.
func (s *Switch) startIKEProber(p *peer, old *pmtu.Prober) {
	d := s.ike.get()
	if d == nil || old == nil {
		return
	}
	cfg := old.Config()
	cfg.PerRound = 1
	cfg.OnDisabled = nil
	var pr *pmtu.Prober
	pr = pmtu.New(cfg, s.clock, func(id uint32, size int) {
		udpLen := size - outerOverhead(p.Endpoint())
		if d.Probe(p.cfg.Name, udpLen, cfg.Base, cfg.ProbeTimer, func(acked bool) {
			if acked {
				p.ctr.inc(cRxProbeAcks)
				pr.Ack(id, size)
			}
		}) {
			p.ctr.inc(cTxProbes)
		}
	})
	if !p.prober.CompareAndSwap(old, pr) {
		return // stopped or replaced meanwhile
	}
	old.Stop()
	p.ikeProbed.Store(true)
	s.log.Info("path MTU: the peer answers no data-plane probes, probing through IKE", "peer", p.cfg.Name)
	pr.Start()
}

// stopProber stops probing p; it reports whether p was probed.
func (s *Switch) stopProber(p *peer) bool {
	if p.dontFragment.Swap(false) && s.under != nil {
		s.under.SetDontFragment(p.Endpoint(), false)
	}
	p.ikeProbed.Store(false)
	p.csumOffload.Store(false)
	pr := p.prober.Swap(nil)
	if pr != nil {
		pr.Stop()
	}
	return pr != nil
}

// sendProbe sends a probe (or, typ TypeAck, an acknowledgement) of size
// bytes of outer packet to p.
func (s *Switch) sendProbe(p *peer, typ uint8, id uint32, size int) {
	p.probeMu.Lock()
	defer p.probeMu.Unlock()
	if p.probeBuf == nil {
		p.probeBuf = make([]byte, BufferSize)
	}
	ep := p.Endpoint()
	var pkt []byte
	if s.cfg.Mode == ModeESP {
		sa := p.outSA.Load()
		if sa == nil {
			return
		}
		n := pmtu.HeaderLen // an acknowledgement: the message alone
		if typ == pmtu.TypeProbe {
			n = espPayloadFor(size, ep) // a probe: padded to size on the wire
		}
		if n < pmtu.HeaderLen || crypto.HeaderLen+n+crypto.MaxTrailerLen > len(p.probeBuf) {
			return
		}
		var flags uint16
		if s.csumOffload {
			flags |= pmtu.FlagChecksumOffload
		}
		pmtu.Message{Type: typ, Flags: flags, ID: id, Size: size}.Encode(p.probeBuf[crypto.HeaderLen : crypto.HeaderLen+n])
		sealed, err := sa.Seal(p.probeBuf, n, encap.ProtoNoNext)
		if err != nil {
			return
		}
		pkt = p.probeBuf[:sealed]
	} else {
		room := encap.VXLANHeaderLen + pmtu.HeaderLen
		if typ == pmtu.TypeProbe {
			room = size - outerOverhead(ep)
		}
		if room < encap.VXLANHeaderLen+pmtu.HeaderLen || room > len(p.probeBuf) {
			return
		}
		pkt = p.probeBuf[:room]
		clear(pkt[:encap.VXLANHeaderLen]) // no I flag: not a frame for any VTEP
		pmtu.Message{Type: typ, ID: id, Size: size}.Encode(pkt[encap.VXLANHeaderLen:])
	}
	var err error
	if typ == pmtu.TypeAck {
		err = s.under.WriteControl(pkt, ep)
		p.ctr.inc(cTxProbeAcks)
	} else {
		err = s.under.WriteProbe(pkt, ep)
		p.ctr.inc(cTxProbes)
	}
	if err != nil {
		var errno syscall.Errno
		if errors.As(err, &errno) && errno == syscall.EMSGSIZE {
			p.ctr.inc(cTxPathMTU) // the local link's MTU: PathMTUs tells the prober
			return
		}
		p.ctr.inc(cTxErrors)
	}
}

// handleProbe answers a probe from p, or hands an acknowledgement to p's
// prober. msg is the pmtu message (what follows the ESP header, or the
// VXLAN header); it is not kept.
func (s *Switch) handleProbe(p *peer, msg []byte) {
	m, err := pmtu.Parse(msg)
	if err != nil {
		p.ctr.inc(cRxDropMalformed)
		return
	}
	// Only an ESP peer's word counts: in plain mode nothing authenticates
	// the frames, so their checksums are all they have.
	p.csumOffload.Store(s.cfg.Mode == ModeESP && m.Flags&pmtu.FlagChecksumOffload != 0)
	switch m.Type {
	case pmtu.TypeProbe:
		p.ctr.inc(cRxProbes)
		s.sendProbe(p, pmtu.TypeAck, m.ID, m.Size)
	case pmtu.TypeAck:
		p.ctr.inc(cRxProbeAcks)
		if pr := p.prober.Load(); pr != nil {
			pr.Ack(m.ID, m.Size)
			if pr.Answering() && !p.dontFragment.Swap(true) {
				// A vxswitch peer: DF on its data too, so a path that
				// shrinks says so (ICMP) or shows as a black hole at once.
				s.under.SetDontFragment(p.Endpoint(), true)
			}
		}
	}
}

// isPlainProbe reports whether a plain-mode datagram is a probe message:
// a VXLAN header without the I flag, then the pmtu magic.
func isPlainProbe(pkt []byte) bool {
	return len(pkt) >= encap.VXLANHeaderLen+pmtu.HeaderLen && pkt[0]&0x08 == 0 && pmtu.IsMessage(pkt[encap.VXLANHeaderLen:])
}

// routeMTUFn asks the kernel for the local link's MTU toward a peer
// (a variable so that in-memory tests can stand in for it).
var routeMTUFn = link.RouteMTU
