package dataplane

import (
	"encoding/binary"
	"errors"
	"net/netip"
	"sync"
	"syscall"

	"github.com/vxswitch/vxswitch/crypto"
	"github.com/vxswitch/vxswitch/encap"
	"github.com/vxswitch/vxswitch/fdb"
	"github.com/vxswitch/vxswitch/internal/ratelimit"
	"github.com/vxswitch/vxswitch/link"
)

// Buffer layout. Every buffer is BufferSize bytes (with TAP offloads,
// transmit buffers are larger: a read may bring a TCP super-frame before
// the port cuts it up); a frame is read at Headroom so that the
// tunnel-inner IP, UDP and VXLAN headers and the ESP header are written in
// front of it in place, and the ESP trailer after it.
const (
	// Headroom is where a frame starts in its buffer.
	Headroom = 128
	// MaxFrame is the largest Ethernet frame: a 9000-byte MTU, the
	// Ethernet header and one 802.1Q tag.
	MaxFrame = link.MaxFrame
	// Tailroom is what a buffer keeps after the largest frame, for the
	// ESP trailer.
	Tailroom = 128
	// BufferSize is the size of every packet buffer.
	BufferSize = Headroom + MaxFrame + Tailroom

	batchSize = 64  // frames read per wake-up
	outSize   = 256 // messages and spare buffers per send batch
)

// sealJob is one ESP packet to seal: pkt[crypto.HeaderLen:][:payloadLen]
// holds the inner IP packet, cap(pkt) has room for the trailer.
type sealJob struct {
	sa         *crypto.OutboundSA
	pkt        []byte
	payloadLen int
	nextHeader uint8
	seq        uint64
	peer       *peer
}

// txPath is one segment's transmit pipeline. It is owned by the segment's
// reader goroutine (or a benchmark); nothing in it is shared.
type txPath struct {
	s   *Switch
	seg *segment

	bufs  [][]byte // frames read from the port, at Headroom
	sizes []int
	dsts  []encap.MAC // the batch's destinations, looked up together
	ports []fdb.Port
	found []bool

	spare     [][]byte // buffers for flood copies and fragments
	spareUsed int
	// flood bounds the broadcast, multicast and unknown unicast frames
	// the TAP may send to the peers (each a copy per peer): a loop behind
	// the TAP is not multiplied into the underlay without bound.
	flood ratelimit.Bucket

	// learnt is the source MAC the batch last learnt (valid with
	// learntOK): a run of frames from one host is learnt once per batch.
	learnt   encap.MAC
	learntOK bool
	// offloaded counts the frames of the batch sent with their checksum
	// unfinished, per run to one peer; sent the messages of a flush.
	offloaded, sent peerRun

	// partial[i]: frame i of the batch has its TCP checksum unfinished
	// (the port's checksum offload, link.ChecksumOffload).
	partial []bool

	out     [][]byte // messages to send, in order
	outTo   []netip.AddrPort
	outPeer []*peer
	jobs    []sealJob // ESP mode: out[i] is sealed from jobs[i]

	fragBufs  [][]byte // views into spare buffers handed to FragmentIPv4/6
	fragSizes []int

	neighBuf []byte   // a locally made ARP or neighbour advertisement (neigh.go)
	neighOut [][]byte // its one-frame batch

	retx retxWatch // TCP segments sent again: a sign the path shrank (retx.go)

	wg     sync.WaitGroup
	sealFn rangeFunc
	failFn func(int, syscall.Errno)
}

func newTxPath(s *Switch, seg *segment) *txPath {
	t := &txPath{
		s: s, seg: seg,
		offloaded: peerRun{pkts: cTxChecksumOffload, byts: -1},
		sent:      peerRun{pkts: cTxPackets, byts: cTxBytes},
		bufs:      link.MakeBuffers(batchSize, Headroom+seg.port.ReadRoom()+Tailroom), sizes: make([]int, batchSize),
		dsts: make([]encap.MAC, batchSize), ports: make([]fdb.Port, batchSize), found: make([]bool, batchSize),
		partial: make([]bool, batchSize),
		spare:   link.MakeBuffers(outSize, BufferSize),
		out:     make([][]byte, 0, outSize), outTo: make([]netip.AddrPort, 0, outSize),
		outPeer: make([]*peer, 0, outSize), jobs: make([]sealJob, 0, outSize),
		fragBufs: make([][]byte, outSize), fragSizes: make([]int, outSize),
		neighBuf: make([]byte, 128), neighOut: make([][]byte, 1),
	}
	t.sealFn = t.sealRange
	t.failFn = t.sendFailed
	if r := s.cfg.FloodRate; r > 0 {
		t.flood = ratelimit.Bucket{Rate: float64(r), Burst: float64(2 * r)}
	}
	return t
}

// serve reads one batch from the segment's port and forwards it.
func (t *txPath) serve() error {
	n, err := t.seg.port.Read(t.bufs, t.sizes, Headroom)
	if err != nil {
		return err
	}
	t.process(n)
	return nil
}

// process forwards frames bufs[i][Headroom:][:sizes[i]] for i < n and
// sends what they produce: first every frame is checked and its source
// learnt, then the destinations of the batch are looked up together
// (fdb.LookupBatch overlaps their cache misses), then each is forwarded.
func (t *txPath) process(n int) {
	pt := t.s.peers.Load()
	off := t.seg.offload
	t.learntOK = false
	var bytes uint64
	for i := 0; i < n; i++ {
		bytes += uint64(t.sizes[i])
	}
	t.seg.ctr.add(cTAPRxFrames, uint64(n))
	t.seg.ctr.add(cTAPRxBytes, bytes)
	k := 0
	for i := 0; i < n; i++ {
		if t.admit(t.bufs[i], t.sizes[i]) {
			t.bufs[k], t.bufs[i] = t.bufs[i], t.bufs[k]
			t.sizes[k] = t.sizes[i]
			t.partial[k] = off != nil && off.Partial(i)
			t.dsts[k] = encap.Ethernet(t.bufs[k][Headroom:]).Dst()
			k++
		}
	}
	t.s.fdb.LookupBatch(t.seg.vni, t.dsts[:k], t.ports[:k], t.found[:k])
	for i := 0; i < k; i++ {
		t.frame(pt, t.bufs[i], t.sizes[i], t.ports[i], t.found[i], t.partial[i])
	}
	t.offloaded.flush()
	t.flush()
}

// admit checks one frame read from the port (process counted it), captures
// it and learns its source; false drops it.
func (t *txPath) admit(buf []byte, n int) bool {
	s, seg := t.s, t.seg
	frame := buf[Headroom : Headroom+n]
	eth := encap.Ethernet(frame)
	if !eth.IsValid() {
		seg.ctr.inc(cDropRunt)
		return false
	}
	if s.capture.active(CaptureTAP) {
		s.capture.emit(CaptureTAP, seg.vni, frame)
	}
	src := eth.Src()
	if src.IsMulticast() || src.IsZero() {
		seg.ctr.inc(cDropBadSrcMAC)
		return false
	}
	if !t.learntOK || src != t.learnt {
		t.learnt, t.learntOK = src, true
		if s.fdb.Learn(seg.vni, src, fdb.LocalPort) == fdb.LearnStaticConflict {
			// A MAC pinned to a peer (a control plane's entry, or a static
			// one) speaks from the TAP: it may have moved here. Told to the
			// control plane (MovedToTAP) without blocking or allocating.
			select {
			case seg.movedHere <- src:
			default:
			}
		}
	}
	if et := binary.BigEndian.Uint16(frame[12:]); (et == encap.EtherTypeARP || et == encap.EtherTypeIPv6) && t.neighbour(frame) {
		return false // answered here (ARP/ND suppression)
	}
	return true
}

// frame forwards one admitted frame whose destination looked up to
// (port, found). partial: its TCP checksum is unfinished, which only a
// peer that said it takes them (peer.csumOffload) gets; it is finished for
// any other and for a flood.
func (t *txPath) frame(pt *peerTable, buf []byte, n int, port fdb.Port, found, partial bool) {
	s, seg := t.s, t.seg
	frame := buf[Headroom : Headroom+n]
	eth := encap.Ethernet(frame)
	dst := eth.Dst()
	if !dst.IsMulticast() {
		if found {
			if port == fdb.LocalPort {
				seg.ctr.inc(cDropLocalDst)
				return
			}
			if p := pt.get(port); p != nil {
				if partial {
					if p.csumOffload.Load() {
						t.offloaded.count(p, 0)
					} else if !t.finishChecksum(frame) {
						return
					}
				}
				t.clampMSS(frame, p)
				if pr := p.prober.Load(); pr != nil && t.retx.sentAgain(frame, p.frameMTU(s.cfg.Mode)/2) {
					pr.Suspect() // a segment sent again: is the path smaller now?
				}
				t.toPeer(p, buf, n, true)
				return
			}
		}
	}
	if partial && !t.finishChecksum(frame) {
		return
	}
	// Broadcast, multicast and unknown unicast: head-end replication to
	// every peer of the segment; the last copy is made in place.
	list := s.fdb.FloodList(seg.vni)
	if len(list) == 0 {
		return
	}
	if t.flood.Rate > 0 && !t.flood.Allow(s.clock.Now().UnixNano()) {
		seg.ctr.inc(cDropFloodRate)
		return
	}
	seg.ctr.inc(cFloodFrames)
	if s.cfg.MSSClamp {
		t.clampMSS(frame, nil)
	}
	if s.cfg.Mode == ModePlain {
		t.plainFlood(pt, list, buf, n)
		return
	}
	for j, port := range list {
		p := pt.get(port)
		if p == nil {
			continue
		}
		if j < len(list)-1 {
			seg.ctr.inc(cFloodCopies)
		}
		t.toPeer(p, buf, n, j == len(list)-1)
	}
}

// finishChecksum finishes the TCP checksum the port left unfinished; false
// (counted, the frame dropped) if frame is no TCP segment it can finish.
func (t *txPath) finishChecksum(frame []byte) bool {
	if !encap.FinishTCPChecksum(frame) {
		t.seg.ctr.inc(cDropOffload)
		return false
	}
	t.seg.ctr.inc(cTxChecksumFinished)
	return true
}

// clampMSS lowers the MSS of TCP SYNs to what fits the path to p without
// fragmentation (for a flood, p is nil: the smallest over the segment).
func (t *txPath) clampMSS(frame []byte, p *peer) {
	if !t.s.cfg.MSSClamp {
		return
	}
	mtu := 0
	if p != nil {
		mtu = p.frameMTU(t.s.cfg.Mode)
	} else {
		mtu = int(t.seg.minFrameMTU.Load())
	}
	if encap.ClampMSSForMTU(frame, mtu) {
		t.seg.ctr.inc(cMSSClamped)
	}
}

// plainFlood sends one VXLAN packet, built once in place, to every peer.
func (t *txPath) plainFlood(pt *peerTable, list []fdb.Port, buf []byte, n int) {
	start, _ := encap.EncapVXLAN(buf, Headroom, t.seg.vni)
	pkt := buf[start : Headroom+n]
	for _, port := range list {
		if p := pt.get(port); p != nil {
			if t.s.capture.active(CaptureInner) {
				t.s.emitSynth(CaptureInner, t.seg.vni, t.s.localAddr, p.Endpoint(), pkt)
			}
			if len(t.out) == cap(t.out) {
				t.flush()
			}
			t.queuePlain(pkt, p)
		}
	}
}

// queuePlain queues a VXLAN datagram for p, or, when it is larger than the
// path to p carries, sends it at once as fragments made here (behind what
// is queued, to keep the order).
func (t *txPath) queuePlain(pkt []byte, p *peer) {
	ep := p.Endpoint()
	mtu := p.pathMTU()
	if len(pkt)+outerOverhead(ep) <= mtu || (ep.Addr().Is4() && !p.answersProbes()) {
		// It fits; or an IPv4 peer not known to be a vxswitch (yet): DF
		// off, as a kernel VTEP sends, routers may fragment.
		t.queue(pkt, p)
		return
	}
	t.flush()
	nf, err := t.s.under.WriteFragmented(pkt, ep, mtu)
	if err != nil {
		p.ctr.inc(cTxErrors)
		t.s.logf("sender fragmentation failed", "peer", p.cfg.Name, "err", err)
		return
	}
	p.ctr.inc(cTxPackets)
	p.ctr.add(cTxBytes, uint64(len(pkt)))
	p.ctr.add(cTxFragments, uint64(nf))
}

func (t *txPath) queue(pkt []byte, p *peer) {
	t.out = append(t.out, pkt)
	t.outTo = append(t.outTo, p.Endpoint())
	t.outPeer = append(t.outPeer, p)
}

// toPeer encapsulates the frame at buf[Headroom:][:n] for p. inPlace says
// the frame's own buffer may be used; otherwise it is copied first.
func (t *txPath) toPeer(p *peer, buf []byte, n int, inPlace bool) {
	s, seg := t.s, t.seg
	if s.cfg.Mode == ModePlain {
		if len(t.out) == cap(t.out) {
			t.flush()
		}
		start, _ := encap.EncapVXLAN(buf, Headroom, seg.vni)
		if s.capture.active(CaptureInner) {
			s.emitSynth(CaptureInner, seg.vni, s.localAddr, p.Endpoint(), buf[start:Headroom+n])
		}
		t.queuePlain(buf[start:Headroom+n], p)
		return
	}
	sa := p.outSA.Load()
	if sa == nil {
		p.ctr.inc(cDropNoSA)
		return
	}
	// A copy needs a spare buffer and every packet a message slot.
	spareIdx := -1
	if !inPlace {
		if t.spareUsed == len(t.spare) || len(t.out) == cap(t.out) {
			t.flush()
		}
		spareIdx = t.spareUsed
		c := t.spare[spareIdx]
		t.spareUsed++
		copy(c[Headroom:], buf[Headroom:Headroom+n])
		buf = c
	}
	// Only a datagram that will be fragmented takes an identification
	// (RFC 6864): one that fits is sent atomic, with DF, so the 16-bit IDs
	// of a busy peer do not wrap within the reassembly timeout.
	maxInner := p.maxInner()
	fragmenting := p.tunnel.Overhead()+n > maxInner
	id := uint16(0)
	if fragmenting && p.tunnel.Src.Is4() {
		id = uint16(s.ids.Next(p.tunnel.Dst))
	}
	start, err := encap.EncapIP(buf, Headroom, n, seg.vni, &p.tunnel, id)
	if err != nil {
		seg.ctr.inc(cDropTooBig)
		return
	}
	inner := buf[start : Headroom+n]
	nf := 1
	if fragmenting {
		if nf, err = encap.FragmentCount(inner, maxInner); err != nil {
			seg.ctr.inc(cDropFragment)
			return
		}
	} else if p.tunnel.Src.Is4() {
		ip := encap.IPv4(inner)
		ip.SetFlagsOffset(encap.IPv4FlagDF, 0)
		ip.SetChecksum(encap.ChecksumUpdate(ip.Checksum(), 0, encap.IPv4FlagDF))
	}
	if len(t.out)+nf > cap(t.out) || (fragmenting && t.spareUsed+nf > len(t.spare)) {
		// Send what is queued first. The packet being built may sit in a
		// spare buffer: keep that one out of the recycled set.
		t.flush()
		if spareIdx >= 0 {
			t.spare[0], t.spare[spareIdx] = t.spare[spareIdx], t.spare[0]
			t.spareUsed = 1
		}
	}
	if s.capture.active(CaptureInner) {
		s.capture.emit(CaptureInner, seg.vni, inner)
	}
	nh := crypto.NextHeaderIPv4
	if !p.tunnel.Src.Is4() {
		nh = crypto.NextHeaderIPv6
	}
	if len(inner) <= maxInner {
		t.seal(sa, p, buf[start-crypto.HeaderLen:], len(inner), nh)
		return
	}
	t.fragment(sa, p, inner, maxInner, nh, nf)
}

// fragment splits the inner packet into its nf fragments (FragmentCount),
// in spare buffers, each at Headroom so its ESP header fits in front, and
// seals each.
func (t *txPath) fragment(sa *crypto.OutboundSA, p *peer, inner []byte, mtu int, nh uint8, nf int) {
	free := min(nf, len(t.spare)-t.spareUsed)
	views := t.fragBufs[:free]
	for i := range views {
		views[i] = t.spare[t.spareUsed+i][Headroom:]
	}
	var err error
	if nh == crypto.NextHeaderIPv4 {
		nf, err = encap.FragmentIPv4(inner, mtu, encap.IPv4(inner).ID(), views, t.fragSizes[:free])
	} else {
		nf, err = encap.FragmentIPv6(inner, mtu, t.s.ids.Next(p.tunnel.Dst), views, t.fragSizes[:free])
	}
	if err != nil {
		if errors.Is(err, encap.ErrFragmentBuffers) {
			t.seg.ctr.inc(cDropNoBuffer)
		} else {
			t.seg.ctr.inc(cDropFragment)
		}
		return
	}
	p.ctr.add(cTxFragments, uint64(nf))
	for i := 0; i < nf; i++ {
		b := t.spare[t.spareUsed+i]
		t.seal(sa, p, b[Headroom-crypto.HeaderLen:], t.fragSizes[i], nh)
	}
	t.spareUsed += nf
}

// seal reserves the next sequence number of sa, in send order, and queues
// the packet; the sealing itself happens in flush, in parallel.
func (t *txPath) seal(sa *crypto.OutboundSA, p *peer, pkt []byte, payloadLen int, nh uint8) {
	seq, err := sa.NextSeq()
	if err != nil {
		p.ctr.inc(cDropSeqExhausted)
		return
	}
	t.jobs = append(t.jobs, sealJob{sa: sa, pkt: pkt, payloadLen: payloadLen, nextHeader: nh, seq: seq, peer: p})
	t.queue(pkt, p)
}

// sealRange seals jobs [lo, hi); a failed job leaves a nil message.
func (t *txPath) sealRange(lo, hi int) {
	for i := lo; i < hi; i++ {
		j := &t.jobs[i]
		n, err := j.sa.SealSeq(j.pkt, j.payloadLen, j.nextHeader, j.seq)
		if err != nil {
			t.out[i] = nil
			continue
		}
		t.out[i] = j.pkt[:n]
	}
}

// flush seals (ESP mode) and sends every queued message in order, then
// recycles the spare buffers.
func (t *txPath) flush() {
	if len(t.out) == 0 {
		t.spareUsed = 0
		return
	}
	s := t.s
	if s.cfg.Mode == ModeESP {
		weight := 0
		for i := range t.jobs {
			weight += t.jobs[i].payloadLen
		}
		s.pool.Run(len(t.jobs), weight, &t.wg, t.sealFn)
		// Drop the messages that failed to seal, keeping order.
		k := 0
		for i := range t.out {
			if t.out[i] == nil {
				t.outPeer[i].ctr.inc(cDropSealError)
				continue
			}
			t.out[k], t.outTo[k], t.outPeer[k] = t.out[i], t.outTo[i], t.outPeer[i]
			k++
		}
		t.out, t.outTo, t.outPeer = t.out[:k], t.outTo[:k], t.outPeer[:k]
	}
	capture := s.capture.active(CaptureUnderlay)
	// Counted once per run of messages to one peer: an atomic add per
	// message would cost more than the rest of this loop.
	for i, b := range t.out {
		t.sent.count(t.outPeer[i], len(b))
		if capture {
			s.emitUnderlay(s.localAddr, t.outTo[i], b)
		}
	}
	t.sent.flush()
	if err := s.under.Write(t.out, t.outTo, t.failFn); err != nil && !link.Closed(err) {
		s.ctr.inc(cTxErrors)
		s.logf("underlay send failed", "err", err)
	}
	t.out, t.outTo, t.outPeer, t.jobs = t.out[:0], t.outTo[:0], t.outPeer[:0], t.jobs[:0]
	t.spareUsed = 0
}

// sendFailed counts a message the kernel refused; EMSGSIZE means the path
// MTU shrank: the underlay's PathMTUs says to what.
func (t *txPath) sendFailed(i int, errno syscall.Errno) {
	p := t.outPeer[i]
	if errno == syscall.EMSGSIZE {
		p.ctr.inc(cTxPathMTU)
		return
	}
	p.ctr.inc(cTxErrors)
}
