package dataplane

import (
	"context"
	"encoding/binary"
	"fmt"
	"net"
	"net/netip"
	"sync"
	"time"

	"github.com/vxswitch/vxswitch/crypto"
	"github.com/vxswitch/vxswitch/crypto/ike"
	"github.com/vxswitch/vxswitch/encap"
	"github.com/vxswitch/vxswitch/pmtu"
)

// ikeBridge connects the IKEv2 daemon to the data plane: it shares the
// ESP socket on port 4500 (non-ESP marker), owns a socket on port 500 for
// peers that start there, and installs the Child SAs the daemon derives.
type ikeBridge struct {
	mu     sync.Mutex
	daemon *ike.Daemon
	udp500 *net.UDPConn
	pre500 *net.UDPConn // port 500, opened by Run before privileges are dropped
	// queue takes IKE messages from the receive path to the daemon's own
	// goroutine: a flood of IKE_SA_INIT (a DH each) must not stall ESP.
	// Messages of existing IKE SAs (DPD, rekeys, deletes, IKE_AUTH) have a
	// queue of their own, served first, so that a flood of new IKE_SA_INITs
	// never delays them (initQueue).
	queue     chan ikeMessage
	initQueue chan ikeMessage
}

// ikeMessage is an IKE message copied off the receive path.
type ikeMessage struct {
	local, remote netip.AddrPort
	msg           []byte
}

// saRecord is one installed Child SA pair, for show sas.
type saRecord struct {
	in  *crypto.InboundSA
	out *crypto.OutboundSA
}

// listen500 opens UDP port 500 on the listen address, or logs why not.
func (s *Switch) listen500() *net.UDPConn {
	addr := &net.UDPAddr{IP: net.IP(s.localAddr.Addr().AsSlice()), Port: int(encap.PortIKE)}
	u, err := net.ListenUDP("udp", addr)
	if err != nil {
		s.log.Warn("ike: port 500 unavailable, IKE on port 4500 only", "err", err)
		return nil
	}
	return u
}

// runIKE starts the key exchange with every peer and serves it until ctx
// is done.
func (s *Switch) runIKE(ctx context.Context) error {
	d, err := ike.New(s.ikeConfig(s.peers.Load()), ikeTransport{s}, s)
	if err != nil {
		return fmt.Errorf("ike: %w", err)
	}
	// Port 500, for peers (strongSwan and other gateways) that start there;
	// open before the daemon is published, since its transport uses it.
	// Run opens it beforehand (with the privilege to bind it, which the
	// process may drop before the pipeline runs).
	s.ike.mu.Lock()
	u500 := s.ike.pre500
	s.ike.pre500 = nil
	s.ike.mu.Unlock()
	if u500 == nil {
		u500 = s.listen500()
	}
	if u500 != nil {
		defer u500.Close()
	}
	q, iq := make(chan ikeMessage, 256), make(chan ikeMessage, 256)
	s.ike.mu.Lock()
	s.ike.daemon, s.ike.udp500, s.ike.queue, s.ike.initQueue = d, u500, q, iq
	s.ike.mu.Unlock()
	// A reload between reading the peers above and publishing the daemon
	// found no daemon to tell: hand it the peers as they are now.
	d.UpdatePeers(s.ikePeers(s.peers.Load()))
	go serveIKE(ctx, d.HandleMessage, q, iq)
	if u500 != nil {
		local := netip.AddrPortFrom(s.localAddr.Addr(), encap.PortIKE)
		go func() {
			buf := make([]byte, 65536)
			for {
				n, from, err := u500.ReadFromUDPAddrPort(buf)
				if err != nil {
					return
				}
				s.ctr.inc(cRxIKE)
				d.HandleMessage(local, unmapAddrPort(from), buf[:n])
			}
		}()
	}
	return d.Run(ctx)
}

func unmapAddrPort(ap netip.AddrPort) netip.AddrPort {
	return netip.AddrPortFrom(ap.Addr().Unmap(), ap.Port())
}

func (s *Switch) ikeConfig(pt *peerTable) ike.Config {
	c := s.cfg.IKE
	cfg := ike.Config{
		PSK: c.PSK, Credentials: c.Credentials, Suite: s.cfg.Suite, IKESuite: c.Proposal, Lifetime: c.Lifetime,
		ChildLifetime: c.ChildLifetime, DPDInterval: c.DPDInterval, Logger: s.log.With("component", "ike"),
	}
	cfg.Peers = s.ikePeers(pt)
	return cfg
}

func (s *Switch) ikePeers(pt *peerTable) []ike.PeerConfig {
	var peers []ike.PeerConfig
	for _, p := range pt.byPort {
		if p == nil {
			continue
		}
		peers = append(peers, ike.PeerConfig{
			Name: p.cfg.Name, Endpoint: p.cfg.Endpoint, Local: s.localAddr,
			LocalID: s.cfg.IKE.LocalID, RemoteID: p.cfg.RemoteID,
			LocalVTEP: s.cfg.VTEP, RemoteVTEP: p.cfg.VTEP,
			Initiate: p.initiates(), Passive: p.cfg.Initiate == InitiateNo, PSK: p.cfg.PSK,
		})
	}
	return peers
}

// initiates decides whether this site starts the IKE SA with a peer: yes
// unless the configuration says no. Both sites of a pair initiating is
// what makes a restarted site come back at once (its INITIAL_CONTACT
// clears the stale SA at the other end, which would otherwise wait for
// its liveness checks); the daemon settles the duplicate IKE SA that a
// simultaneous start creates (RFC 7296 §2.8.1 style, lowest nonce loses).
func (p *peer) initiates() bool {
	return p.cfg.Initiate != InitiateNo
}

// get returns the daemon, nil before runIKE has published it.
func (b *ikeBridge) get() *ike.Daemon {
	b.mu.Lock()
	defer b.mu.Unlock()
	return b.daemon
}

func (b *ikeBridge) updatePeers(s *Switch) {
	if d := b.get(); d != nil {
		d.UpdatePeers(s.ikePeers(s.peers.Load()))
	}
}

// handleIKE passes an IKE message that arrived on the ESP socket to the
// daemon. The daemon does not keep msg past the call.
func (s *Switch) handleIKE(from netip.AddrPort, msg []byte) {
	s.ike.mu.Lock()
	q := s.ike.queue
	if isNewIKESAInit(msg) {
		q = s.ike.initQueue
	}
	s.ike.mu.Unlock()
	if q == nil {
		return
	}
	select {
	case q <- ikeMessage{local: s.localAddr, remote: from, msg: append([]byte(nil), msg...)}:
	default:
		s.ctr.inc(cRxDropIKEQueue) // the daemon is behind: IKE retransmits
	}
}

// isNewIKESAInit reports whether msg opens a new IKE SA: an IKE_SA_INIT
// request with no responder SPI yet.
func isNewIKESAInit(msg []byte) bool {
	return len(msg) >= ike.HeaderLen && msg[18] == ike.ExchIKESAInit && msg[19]&ike.FlagResponse == 0 &&
		binary.BigEndian.Uint64(msg[8:16]) == 0
}

// serveIKE hands queued IKE messages to the daemon until ctx is done,
// those of existing SAs (q) before new IKE_SA_INITs (iq).
func serveIKE(ctx context.Context, handle func(local, remote netip.AddrPort, msg []byte), q, iq <-chan ikeMessage) {
	for {
		select {
		case m := <-q:
			handle(m.local, m.remote, m.msg)
			continue
		default:
		}
		select {
		case <-ctx.Done():
			return
		case m := <-q:
			handle(m.local, m.remote, m.msg)
		case m := <-iq:
			handle(m.local, m.remote, m.msg)
		}
	}
}

// ikeTransport sends IKE messages: from port 500 on the port-500 socket,
// otherwise on the ESP socket behind the non-ESP marker.
type ikeTransport struct{ s *Switch }

func (t ikeTransport) Send(from, to netip.AddrPort, msg []byte) error {
	t.s.ike.mu.Lock()
	u500 := t.s.ike.udp500
	t.s.ike.mu.Unlock()
	if from.Port() == encap.PortIKE && u500 != nil {
		_, err := u500.WriteToUDPAddrPort(msg, to)
		return err
	}
	return t.s.under.WriteControl(withMarker(msg), to)
}

// withMarker returns msg behind the non-ESP marker (RFC 3948 §2.2), as
// IKE travels on the ESP port.
func withMarker(msg []byte) []byte {
	b := make([]byte, crypto.NonESPMarkerLen+len(msg))
	copy(b[crypto.NonESPMarkerLen:], msg)
	return b
}

// SendProbe sends an IKE path MTU probe on the ESP socket behind the
// non-ESP marker, with DF set (see ike.ProbeTransport; the daemon sends no
// probes from port 500).
func (t ikeTransport) SendProbe(_, to netip.AddrPort, msg []byte) error {
	return t.s.under.WriteProbe(withMarker(msg), to)
}

// SendFragmented sends an IKE message as IP fragments of at most mtu
// bytes made here (a lost probe's retransmission, see ike.Probe).
func (t ikeTransport) SendFragmented(_, to netip.AddrPort, msg []byte, mtu int) error {
	_, err := t.s.under.WriteFragmented(withMarker(msg), to, mtu)
	return err
}

// InstallChildSA installs an ESP SA pair for a peer: inbound first, then
// outbound traffic switches to the new SA (make-before-break). It is the
// IKE daemon's ike.Handler; tests and benchmarks call it directly.
func (s *Switch) InstallChildSA(c ike.ChildSA) error {
	s.mu.Lock()
	defer s.mu.Unlock()
	p := s.peers.Load().byName[c.Peer]
	if p == nil {
		return fmt.Errorf("install child SA: no peer %q", c.Peer)
	}
	in, err := crypto.NewInboundSA(crypto.SAConfig{SPI: c.InSPI, Suite: c.Suite, Keymat: c.InKeymat, ESN: c.ESN,
		ReplayWindow: s.cfg.ReplayWindow, Owner: p, Clock: s.clock})
	if err != nil {
		return fmt.Errorf("install child SA for %s: inbound: %w", c.Peer, err)
	}
	out, err := crypto.NewOutboundSA(crypto.SAConfig{SPI: c.OutSPI, Suite: c.Suite, Keymat: c.OutKeymat, ESN: c.ESN, Clock: s.clock})
	if err != nil {
		in.Zero()
		return fmt.Errorf("install child SA for %s: outbound: %w", c.Peer, err)
	}
	if err := s.sadb.Add(in); err != nil {
		in.Zero()
		out.Zero()
		return fmt.Errorf("install child SA for %s: %w", c.Peer, err)
	}
	if c.Remote.IsValid() {
		ep := unmapAddrPort(c.Remote)
		p.endpoint.Store(&ep)
	}
	p.natKeepalive.Store(c.BehindNAT)
	if p.outSA.Load() == nil {
		// The first SA: the path is probed a moment later, once the peer
		// has installed it too and a duplicate IKE SA from a simultaneous
		// start (and its Child SAs) is settled, so probes are not sealed
		// under an SA the peer is deleting. Until then: the base size.
		s.clock.AfterFunc(firstProbeDelay, func() { s.startProber(p) })
		if !c.Responder {
			p.outSA.Store(out) // the peer answered: it has the SA
		} else {
			// Our answer is on its way: the peer has the SA once it has
			// read it, which a packet sent now may overtake (its IKE runs
			// beside its data path). Send on it when the peer does, or
			// after firstSAWait.
			// A first pair already waiting keeps its place: this one
			// follows it when it goes (deleteSALocked).
			pd := &pendingSA{in: in, out: out, deadline: s.clock.Now().Add(firstSAWait)}
			if p.pending.CompareAndSwap(nil, pd) {
				s.clock.AfterFunc(firstSAWait, func() {
					s.mu.Lock()
					defer s.mu.Unlock()
					s.promote(p, pd)
				})
			}
		}
	} else {
		p.pending.Store(&pendingSA{in: in, out: out, deadline: s.clock.Now().Add(pendingWait)})
	}
	p.sas = append(p.sas, saRecord{in: in, out: out})
	p.state.Store(peerUp)
	s.log.Info("child SA installed", "peer", c.Peer, "suite", c.Suite.String(), "implementation", out.Implementation(), "esn", c.ESN,
		"spi_in", fmt.Sprintf("%08x", c.InSPI), "spi_out", fmt.Sprintf("%08x", c.OutSPI))
	return nil
}

// DeleteChildSA removes an SA pair (rekeyed or deleted by the peer). The
// outbound SA goes at once; the inbound one is kept for inboundGrace, so
// packets sealed under it and still in flight (or reordered behind the
// DELETE) are not lost.
func (s *Switch) DeleteChildSA(peerName string, inSPI, outSPI uint32) {
	s.mu.Lock()
	defer s.mu.Unlock()
	p := s.peers.Load().byName[peerName]
	s.deleteSALocked(p, inSPI, outSPI, inboundGrace)
}

// inboundGrace is how long a deleted inbound SA still opens packets, and
// how long a replaced outbound SA keeps its keys (a transmit batch may
// still be sealing with it).
const inboundGrace = 2 * time.Second

// firstProbeDelay is how long after a peer's first SA its path is probed
// (an IKE responder installs its SAs before the initiator; a simultaneous
// start leaves a duplicate IKE SA to settle).
const firstProbeDelay = 500 * time.Millisecond

// pendingWait is the longest a new SA pair waits to take over sending;
// firstSAWait the same for a peer's first SA when we were the responder
// (no SA to send on meanwhile).
const (
	pendingWait = time.Second
	firstSAWait = 200 * time.Millisecond
)

// deleteSALocked removes an SA pair; s.mu is held. The inbound SA leaves
// the SADB after grace (0: now).
func (s *Switch) deleteSALocked(p *peer, inSPI, outSPI uint32, grace time.Duration) {
	if grace > 0 {
		s.clock.AfterFunc(grace, func() {
			s.mu.Lock()
			defer s.mu.Unlock()
			s.removeInboundLocked(inSPI)
		})
	} else {
		s.removeInboundLocked(inSPI)
	}
	if p == nil {
		return
	}
	kept := p.sas[:0]
	for _, r := range p.sas {
		if r.in.SPI() == inSPI {
			// A transmit batch may have taken this SA a moment ago and
			// still be sealing with it: wipe its keys a little later.
			s.clock.AfterFunc(inboundGrace, r.out.Zero)
			continue
		}
		kept = append(kept, r)
	}
	p.sas = kept
	pd := p.pending.Load()
	if pd != nil && pd.in.SPI() == inSPI {
		p.pending.CompareAndSwap(pd, nil) // the waiting pair itself went
		pd = nil
	}
	if out := p.outSA.Load(); out != nil && out.SPI() == outSPI {
		// The pair we send on went (rekeyed, or the loser of a
		// simultaneous start): a pair waiting to take over does now, else
		// the newest one left.
		if pd != nil {
			s.promote(p, pd)
			return
		}
		var next *crypto.OutboundSA
		if len(p.sas) > 0 {
			next = p.sas[len(p.sas)-1].out
		}
		p.outSA.Store(next)
		return
	}
	// Nothing to send on and nothing waiting (the pair that waited went),
	// but a pair is left: it takes over.
	if p.outSA.Load() == nil && p.pending.Load() == nil && len(p.sas) > 0 {
		p.outSA.Store(p.sas[len(p.sas)-1].out)
	}
}

func (s *Switch) removeInboundLocked(inSPI uint32) { s.sadb.Remove(inSPI) }

// pendingSA is a new SA pair whose outbound half waits to take over until
// the peer shows it has the pair too: a packet arrives on the new inbound
// SA, the old pair is deleted, or pendingWait passes (firstSAWait for a
// peer's first pair). Switching at once would
// lose the packets the peer receives before it installs its inbound half
// (the responder of a rekey sends its answer before the initiator
// installs).
type pendingSA struct {
	in       *crypto.InboundSA
	out      *crypto.OutboundSA
	deadline time.Time
}

// promote makes a pending outbound SA the one the peer sends on.
func (s *Switch) promote(p *peer, pd *pendingSA) {
	if p.pending.CompareAndSwap(pd, nil) {
		p.outSA.Store(pd.out)
		s.askFlags(p)
	}
}

// flagsQueryID is the probe ID of askFlags' probe, which no prober uses
// (their IDs count up from 1): its acknowledgement only brings flags.
const flagsQueryID = 0xffffffff

// askFlags: a new SA pair may come from a new process at the peer (a
// restart, maybe an older release or offloads off), so what the peer took
// before (peer.csumOffload) holds no longer: it is cleared, and a small
// probe under the new SA asks again; the acknowledgement's flags say.
func (s *Switch) askFlags(p *peer) {
	if !p.csumOffload.Swap(false) || p.prober.Load() == nil {
		return
	}
	s.sendProbe(p, pmtu.TypeProbe, flagsQueryID, basePLPMTU(p.Endpoint().Addr()))
}

// promoteExpired promotes pending SAs whose wait is over (housekeeping).
func (s *Switch) promoteExpired(now time.Time) {
	for _, p := range s.peers.Load().byPort {
		if p == nil {
			continue
		}
		if pd := p.pending.Load(); pd != nil && now.After(pd.deadline) {
			s.promote(p, pd)
		}
	}
}

// removePeerSAs drops every SA of a peer at once; s.mu is held.
func (s *Switch) removePeerSAs(p *peer) {
	p.pending.Store(nil)
	for len(p.sas) > 0 {
		r := p.sas[0]
		s.deleteSALocked(p, r.in.SPI(), r.out.SPI(), 0)
	}
	p.outSA.Store(nil)
}

// rekeyWorn asks IKE for an early rekey of every outbound SA whose volume
// limits near their end before its lifetime does (sequence numbers without
// ESN at high packet rates, packet or byte lifetimes): housekeeping.
func (s *Switch) rekeyWorn() {
	d := s.ike.get()
	if d == nil {
		return
	}
	for _, p := range s.peers.Load().byPort {
		if p == nil {
			continue
		}
		if out := p.outSA.Load(); out != nil && p.rekeyed.Load() != out.SPI() && out.NeedsRekey() {
			if d.RekeyChild(out.SPI()) {
				p.rekeyed.Store(out.SPI())
				s.log.Info("child SA worn out before its lifetime, rekeying", "peer", p.cfg.Name, "spi_out", fmt.Sprintf("%08x", out.SPI()))
			}
		}
	}
}

// UpdateEndpoints follows a NAT rebinding that the IKE daemon saw on
// authenticated messages (ike.EndpointUpdater): ESP goes to the new address
// at once, even before ESP arrives from it.
func (s *Switch) UpdateEndpoints(peerName string, _, remote netip.AddrPort) {
	if p := s.peers.Load().byName[peerName]; p != nil && remote.IsValid() {
		ep := unmapAddrPort(remote)
		p.endpoint.Store(&ep)
	}
}

var _ ike.EndpointUpdater = (*Switch)(nil)

// InboundPackets is how many authenticated packets came from a peer
// (ike.InboundCounter): a liveness check whose retransmissions were lost in
// an outage starts over when ESP shows the path is back. Lock-free.
func (s *Switch) InboundPackets(name string) uint64 {
	if p := s.peers.Load().byName[name]; p != nil {
		return p.ctr[cRxPackets].Load()
	}
	return 0
}

var _ ike.InboundCounter = (*Switch)(nil)

// PeerUp marks a peer up (its IKE SA is established).
func (s *Switch) PeerUp(name string) {
	if p := s.peers.Load().byName[name]; p != nil {
		p.state.Store(peerUp)
		s.log.Info("peer up", "peer", name)
	}
}

// PeerDown marks a peer down after its liveness checks failed or its IKE
// SA was deleted: its MACs are flushed, so traffic to them floods to the
// live sites, and its SAs are removed.
func (s *Switch) PeerDown(name string) {
	s.mu.Lock()
	defer s.mu.Unlock()
	p := s.peers.Load().byName[name]
	if p == nil {
		return
	}
	p.state.Store(peerDown)
	n := s.fdb.FlushPort(p.port)
	s.removePeerSAs(p)
	s.stopProber(p) // probed again from its next SA
	s.log.Warn("peer down", "peer", name, "fdb_flushed", n)
}

// SAs returns the installed ESP security associations.
func (s *Switch) SAs() []SAStatus {
	s.mu.Lock()
	defer s.mu.Unlock()
	var out []SAStatus
	local := s.localAddr.Addr()
	now := s.clock.Now()
	for _, p := range s.peers.Load().byPort {
		if p == nil {
			continue
		}
		remote := p.Endpoint().Addr()
		for _, r := range p.sas {
			is, os := r.in.Stats(), r.out.Stats()
			in, out1 := saStatus(p.cfg.Name, "in", r.in, is, now), saStatus(p.cfg.Name, "out", r.out, os, now)
			in.Wireshark, out1.Wireshark = r.in.WiresharkSA(remote, local), r.out.WiresharkSA(local, remote)
			out = append(out, in, out1)
		}
	}
	return out
}

// saView is what SAs reports of an SA, either direction.
type saView interface {
	SPI() uint32
	Suite() crypto.Suite
	ESN() bool
	Implementation() string
	Born() time.Time
	Lifetime() crypto.Lifetime
}

func saStatus(peer, dir string, sa saView, st crypto.Stats, now time.Time) SAStatus {
	l := sa.Lifetime()
	return SAStatus{Peer: peer, Direction: dir, SPI: sa.SPI(), Suite: sa.Suite().String(), Implementation: sa.Implementation(),
		ESN: sa.ESN(), Packets: st.Packets, Bytes: st.Bytes, Age: now.Sub(sa.Born()), SoftLifetime: l.Soft, HardLifetime: l.Hard}
}

// IKESAs returns the IKE SAs of the key exchange.
func (s *Switch) IKESAs() []ike.IKESAInfo {
	d := s.ike.get()
	if d == nil {
		return nil
	}
	return d.SAs()
}

var _ ike.Handler = (*Switch)(nil)
