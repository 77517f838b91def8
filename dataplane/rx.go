package dataplane

import (
	"context"
	"encoding/binary"
	"errors"
	"fmt"
	"log/slog"
	"net/netip"
	"slices"
	"strings"
	"sync"

	"github.com/vxswitch/vxswitch/crypto"
	"github.com/vxswitch/vxswitch/encap"
	"github.com/vxswitch/vxswitch/fdb"
	"github.com/vxswitch/vxswitch/link"
	"github.com/vxswitch/vxswitch/pmtu"
)

// openJob is one ESP packet of a receive batch, opened by the crypto
// workers: the inner packet and the SA it authenticated under.
type openJob struct {
	pkt     []byte
	payload []byte
	nh      uint8
	sa      *crypto.InboundSA
	err     error
}

// rxPath is the receive pipeline of the underlay, owned by its reader
// goroutine (or a test or benchmark calling Switch.ServeUnderlay).
type rxPath struct {
	s       *Switch
	pkts    [][]byte // the datagrams of a batch, in the underlay's buffers
	pktFrom []netip.AddrPort
	jobs    []openJob
	reasmMu sync.Mutex // the reassembler is single-goroutine; Stats and Expire come from others
	reasm   *encap.Reassembler
	decap   encap.Decap
	// learnt is what the batch last learnt (valid with learntOK): a run
	// of frames from one host behind one peer is learnt once per batch.
	learnt   remoteMAC
	learntTo fdb.Port
	learntOK bool
	// received sums a run of datagrams from one peer for its counters.
	received peerRun

	wg     sync.WaitGroup
	openFn rangeFunc
}

func newRxPath(s *Switch) *rxPath {
	r := &rxPath{
		s:        s,
		received: peerRun{pkts: cRxPackets, byts: cRxBytes},
		reasm: encap.NewReassembler(encap.ReassemblyConfig{
			Timeout:      s.cfg.Reassembly.Timeout,
			MaxDatagrams: s.cfg.Reassembly.MaxDatagrams,
			SourceShare:  s.cfg.Reassembly.PerPeer,
			Clock:        s.clock,
		}),
	}
	r.openFn = r.openRange
	return r
}

// attach sizes the batch arrays for what the underlay's Read returns.
func (r *rxPath) attach(u link.Underlay) {
	n := u.ReadBatch()
	r.pkts, r.pktFrom, r.jobs = make([][]byte, n), make([]netip.AddrPort, n), make([]openJob, n)
}

// serve reads one batch from the underlay and handles it.
func (r *rxPath) serve() error {
	n, err := r.s.under.Read(r.pkts, r.pktFrom)
	if err != nil {
		return err
	}
	r.process(n)
	r.s.applyPathMTUs()
	return nil
}

// process handles the datagrams pkts[i] from pktFrom[i], i < n.
func (r *rxPath) process(n int) {
	s := r.s
	pt := s.peers.Load()
	if s.capture.active(CaptureUnderlay) {
		for i := 0; i < n; i++ {
			s.emitUnderlay(r.pktFrom[i], s.localAddr, r.pkts[i])
		}
	}
	defer s.flushPorts()
	defer r.received.flush()
	r.learntOK = false
	if s.cfg.Mode == ModePlain {
		// A batch is mostly runs from one peer (GRO): one look-up per run.
		var last netip.Addr
		var p *peer
		for i := 0; i < n; i++ {
			if a := r.pktFrom[i].Addr(); a != last || i == 0 {
				last, p = a, pt.byAddr[a]
			}
			r.plain(p, r.pkts[i], r.pktFrom[i])
		}
		return
	}
	// Classify; ESP packets are opened in parallel, then handled in order.
	weight := 0
	for i := 0; i < n; i++ {
		pkt := r.pkts[i]
		j := &r.jobs[i]
		j.pkt, j.payload, j.sa, j.err = nil, nil, nil, nil
		switch crypto.Classify(pkt) {
		case crypto.KindESP:
			j.pkt = pkt
			weight += len(pkt)
		case crypto.KindIKE:
			s.ctr.inc(cRxIKE)
			s.handleIKE(r.pktFrom[i], pkt[crypto.NonESPMarkerLen:])
		case crypto.KindKeepalive:
			s.ctr.inc(cRxKeepalive)
		default:
			s.ctr.inc(cRxDropInvalid)
		}
	}
	s.pool.Run(n, weight, &r.wg, r.openFn)
	for i := 0; i < n; i++ {
		if r.jobs[i].pkt != nil {
			r.esp(pt, &r.jobs[i], r.pktFrom[i])
		}
	}
}

func (r *rxPath) openRange(lo, hi int) {
	db := &r.s.sadb
	for i := lo; i < hi; i++ {
		j := &r.jobs[i]
		if j.pkt == nil {
			continue
		}
		j.payload, j.nh, j.sa, j.err = db.Open(j.pkt)
	}
}

// esp handles one opened ESP packet: counts a failure, or checks the
// inner packet, reassembles it and delivers the frame.
func (r *rxPath) esp(pt *peerTable, j *openJob, from netip.AddrPort) {
	s := r.s
	if j.err != nil {
		s.ctr.inc(espDropCounter(j.err))
		if crypto.ReasonOf(j.err) == crypto.ReasonUnknownSPI {
			s.debugUnknownSPI(j.pkt, from)
		}
		return
	}
	p, _ := j.sa.Owner().(*peer)
	if p == nil {
		s.ctr.inc(cRxDropUnknownPeer)
		return
	}
	r.received.count(p, len(j.pkt))
	// The peer sends on the new SA pair: it has it, so we may too.
	if pd := p.pending.Load(); pd != nil && pd.in == j.sa {
		s.promote(p, pd)
	}
	// An authenticated packet from a new address: the peer's NAT rebound.
	// Only the newest packet moves the endpoint (RFC 4555 §3.5 takes the
	// same care): a reordered older one, or a replayed copy raced ahead
	// from elsewhere, must not redirect the tunnel.
	if old := p.Endpoint(); from != old && uint32(j.sa.HighestSeq()) == binary.BigEndian.Uint32(j.pkt[4:8]) {
		ep := from
		p.endpoint.Store(&ep)
		p.ctr.inc(cRxEndpointMoved)
		s.log.Info("peer endpoint moved (NAT rebinding)", "peer", p.cfg.Name, "from", old, "to", from)
	}
	inner := j.payload
	reassembled := false
	switch j.nh {
	case crypto.NextHeaderIPv4, crypto.NextHeaderIPv6:
	case encap.ProtoNoNext: // dummy packet (RFC 4303 §2.6), or a path MTU probe in one
		if pmtu.IsMessage(inner) {
			s.handleProbe(p, inner)
			return
		}
		p.ctr.inc(cRxDropDummy)
		return
	default:
		p.ctr.inc(cRxDropNextHeader)
		return
	}
	if isFragment(inner) {
		p.ctr.inc(cRxFragments)
		// A peer's fragments carry its own VTEP: it may not meddle with
		// another peer's datagrams in the shared reassembler.
		if !fromVTEP(inner, p.tunnel.Dst) {
			p.ctr.inc(cRxDropVTEPMismatch)
			return
		}
		r.reasmMu.Lock()
		d, err := r.reasm.Add(inner)
		r.reasmMu.Unlock()
		if err != nil {
			p.ctr.inc(cRxDropReassembly)
			return
		}
		if d == nil {
			return
		}
		p.ctr.inc(cRxReassembled)
		inner = d
		reassembled = true
	}
	if err := encap.DecapIP(inner, &r.decap); err != nil {
		p.ctr.inc(decapDropCounter(err))
		return
	}
	if s.capture.active(CaptureInner) {
		s.capture.emit(CaptureInner, r.decap.VNI, inner)
	}
	if r.decap.Src != p.tunnel.Dst {
		p.ctr.inc(cRxDropVTEPMismatch)
		return
	}
	r.deliver(p, r.decap.VNI, r.decap.Frame, reassembled)
}

// fromVTEP reports whether the (valid) inner IP packet's source is vtep.
func fromVTEP(pkt []byte, vtep netip.Addr) bool {
	if pkt[0]>>4 == encap.IPv4Version {
		return vtep.Is4() && encap.IPv4(pkt).Src() == vtep
	}
	return vtep.Is6() && encap.IPv6(pkt).Src() == vtep
}

// isFragment reports whether the inner IP packet is a fragment.
func isFragment(pkt []byte) bool {
	if len(pkt) == 0 {
		return false
	}
	switch pkt[0] >> 4 {
	case encap.IPv4Version:
		ip := encap.IPv4(pkt)
		return ip.IsValid() && ip.IsFragment()
	case encap.IPv6Version:
		ip := encap.IPv6(pkt)
		return ip.IsValid() && ip.NextHeader() == encap.ProtoIPv6Frag
	}
	return false
}

// plain handles one RFC 7348 VXLAN datagram from p, the peer at from (nil:
// none).
func (r *rxPath) plain(p *peer, pkt []byte, from netip.AddrPort) {
	s := r.s
	if p == nil {
		s.ctr.inc(cRxDropUnknownPeer)
		return
	}
	r.received.count(p, len(pkt))
	if isPlainProbe(pkt) {
		s.handleProbe(p, pkt[encap.VXLANHeaderLen:])
		return
	}
	vni, frame, err := encap.DecapVXLAN(pkt)
	if err != nil {
		p.ctr.inc(decapDropCounter(err))
		return
	}
	if s.capture.active(CaptureInner) {
		// Plain mode has no tunnel-inner IP: show the VXLAN packet as the
		// kernel's socket received it.
		s.emitSynth(CaptureInner, vni, from, s.localAddr, pkt)
	}
	r.deliver(p, vni, frame, false)
}

// deliver learns the source of a frame from p and queues it for the
// segment's port; the queue is written at the end of the batch (the frames
// live in the underlay's buffers until the next Read). A reassembled frame
// lives in the reassembler only until its next Add, so it is written at
// once, behind what is queued. Split horizon: frames from a peer never go
// to another peer.
func (r *rxPath) deliver(p *peer, vni encap.VNI, frame []byte, reassembled bool) {
	s := r.s
	seg := s.segments[vni]
	if seg == nil || !p.inSegment(vni) {
		p.ctr.inc(cRxDropUnknownSegment)
		return
	}
	eth := encap.Ethernet(frame)
	if !eth.IsValid() {
		p.ctr.inc(cRxDropMalformed)
		return
	}
	src := eth.Src()
	if src.IsMulticast() || src.IsZero() {
		p.ctr.inc(cRxDropMalformed)
		return
	}
	if k := (remoteMAC{vni, src}); !r.learntOK || k != r.learnt || p.port != r.learntTo {
		r.learnt, r.learntTo, r.learntOK = k, p.port, true
		s.fdb.Learn(vni, src, p.port)
	}
	if !p.isVXSwitch() && encap.FinishPartialChecksum(frame) {
		// A kernel VTEP on a veth left the inner checksum to an offload
		// that never ran (CHECKSUM_PARTIAL). vxswitch peers send complete
		// ones, or unfinished ones only where our TAP takes them (checksum
		// offload, esp mode), so only other VTEPs pay for this check.
		p.ctr.inc(cRxChecksumFinished)
	}
	if s.cfg.MSSClamp && encap.ClampMSSForMTU(frame, p.frameMTU(s.cfg.Mode)) {
		seg.ctr.inc(cMSSClamped)
	}
	if s.capture.active(CaptureTAP) {
		s.capture.emit(CaptureTAP, vni, frame)
	}
	if len(seg.out) == cap(seg.out) {
		seg.writeOut()
	}
	seg.out = append(seg.out, frame)
	if reassembled {
		seg.writeOut()
	}
}

// espDropCounters maps crypto's drop reasons to the receive counters.
var espDropCounters = [crypto.NumReasons]counter{
	crypto.ReasonOther: cRxDropInvalid, crypto.ReasonTruncated: cRxDropTruncated,
	crypto.ReasonUnknownSPI: cRxDropUnknownSPI, crypto.ReasonAuth: cRxDropAuth,
	crypto.ReasonBadPadding: cRxDropBadPadding, crypto.ReasonReplay: cRxDropReplay,
	crypto.ReasonTooOld: cRxDropTooOld, crypto.ReasonSeqExhausted: cRxDropInvalid,
	crypto.ReasonExpired: cRxDropExpired, crypto.ReasonShortBuffer: cRxDropInvalid,
}

func espDropCounter(err error) counter { return espDropCounters[crypto.ReasonOf(err)] }

func decapDropCounter(err error) counter {
	switch {
	case errors.Is(err, encap.ErrTruncated):
		return cRxDropTruncated
	case errors.Is(err, encap.ErrNotVXLAN):
		return cRxDropNotVXLAN
	case errors.Is(err, encap.ErrNoVNI):
		return cRxDropNoVNI
	}
	return cRxDropMalformed
}

// reassemblyStats reads the reassembler's counters.
func (r *rxPath) reassemblyStats() encap.ReassemblyStats {
	r.reasmMu.Lock()
	defer r.reasmMu.Unlock()
	return r.reasm.Stats()
}

// expire releases timed-out partial datagrams when no fragments arrive.
func (r *rxPath) expire() {
	r.reasmMu.Lock()
	defer r.reasmMu.Unlock()
	r.reasm.Expire()
}

func reassemblyCounters(st encap.ReassemblyStats) []Counter {
	var out []Counter
	for _, c := range []Counter{
		{Name: "fragments", Value: st.Fragments}, {Name: "completed", Value: st.Completed},
		{Name: "duplicates", Value: st.Duplicates}, {Name: "drop_timeout", Value: st.Timeout},
		{Name: "drop_overlap", Value: st.Overlap}, {Name: "drop_too_big", Value: st.TooBig},
		{Name: "drop_too_many_fragments", Value: st.TooManyFragments}, {Name: "drop_no_memory", Value: st.NoMemory}, {Name: "drop_source_share", Value: st.SourceShare},
		{Name: "drop_malformed", Value: st.Malformed}, {Name: "drop_tiny_first_fragment", Value: st.TinyFirstFragment},
		{Name: "in_progress", Value: uint64(st.InProgress), Level: true}, {Name: "memory_in_use", Value: uint64(st.MemoryInUse), Level: true},
	} {
		c.Scope = "reassembly"
		out = append(out, c)
	}
	return out
}

// flushPorts writes every segment's queued frames and what its port held
// back: the end of a batch.
func (s *Switch) flushPorts() {
	for _, seg := range s.segments {
		seg.writeOut()
		seg.portMu.Lock()
		err := seg.port.Flush()
		seg.portMu.Unlock()
		if err != nil {
			seg.ctr.inc(cTAPWriteErrors)
			s.logf("tap write failed", "segment", seg.vni, "err", err)
		}
	}
}

// writeOut writes the segment's queued frames to its port.
func (seg *segment) writeOut() {
	if len(seg.out) == 0 {
		return
	}
	seg.portMu.Lock()
	n, _ := seg.port.Write(seg.out)
	seg.portMu.Unlock()
	bytes := 0
	for _, f := range seg.out {
		bytes += len(f)
	}
	seg.ctr.add(cTAPTxFrames, uint64(n))
	seg.ctr.add(cTAPTxBytes, uint64(bytes))
	if failed := len(seg.out) - n; failed > 0 {
		seg.ctr.add(cTAPWriteErrors, uint64(failed))
	}
	clear(seg.out)
	seg.out = seg.out[:0]
}

// debugUnknownSPI logs, at debug level and at most once a second, an ESP
// packet whose SPI no inbound SA has, with the SPIs there are: what an
// operator needs to see that two sites disagree about their SAs (a
// restart, a rekey one side missed). Nothing is done unless debug is on.
func (s *Switch) debugUnknownSPI(pkt []byte, from netip.AddrPort) {
	if !s.log.Enabled(context.Background(), slog.LevelDebug) {
		return
	}
	ok, suppressed := s.spiLogLimiter.Allow(s.clock.Now().UnixNano())
	if !ok {
		return
	}
	var known []string
	for _, sa := range s.sadb.SAs() {
		known = append(known, fmt.Sprintf("%08x", sa.SPI()))
	}
	slices.Sort(known)
	s.log.Debug("esp packet with an unknown SPI", "spi", fmt.Sprintf("%08x", binary.BigEndian.Uint32(pkt)),
		"from", from, "seq", binary.BigEndian.Uint32(pkt[4:8]), "inbound_spis", strings.Join(known, ","), "suppressed", suppressed)
}
