package dataplane

import (
	"cmp"
	"context"
	"crypto/sha256"
	"errors"
	"fmt"
	"log/slog"
	"net/netip"
	"slices"
	"sort"
	"sync"
	"sync/atomic"
	"time"

	"github.com/vxswitch/vxswitch/clock"
	"github.com/vxswitch/vxswitch/crypto"
	"github.com/vxswitch/vxswitch/encap"
	"github.com/vxswitch/vxswitch/fdb"
	"github.com/vxswitch/vxswitch/internal/ratelimit"
	"github.com/vxswitch/vxswitch/link"
)

// Switch is one running site. Create it with New, start it with Run (or,
// in benchmarks and tests without devices, Attach).
type Switch struct {
	cfg Config
	log *slog.Logger

	fdb      *fdb.Table
	ids      *encap.IDGenerator // identifications of fragmented tunnel-inner packets, per destination VTEP
	sadb     crypto.SADB        // the one index from SPI to inbound SA and its peer (the SA's Owner)
	pool     *workerPool
	capture  captureHub
	segments map[encap.VNI]*segment // fixed once attached

	peers atomic.Pointer[peerTable]
	mu    sync.Mutex // serialises control-plane changes
	clock clock.Clock

	under     link.Underlay
	localAddr netip.AddrPort
	rx        *rxPath
	lowerFn   func(netip.Addr, int) // lowerPathMTU, bound once (a method value per call allocates)

	ike        ikeBridge
	ctr        counters
	logLimiter ratelimit.Limiter
}

// segment is one VNI with its port.
type segment struct {
	cfg         SegmentConfig
	vni         encap.VNI
	port        link.Port // the TAP, or an in-memory port
	tx          *txPath
	out         [][]byte     // frames received for the port, written at the end of the batch (receive goroutine)
	minFrameMTU atomic.Int64 // smallest peer frameMTU, for clamping floods
	ctr         counters
}

// New prepares a Switch; nothing is opened until Run or Attach.
func New(cfg Config) (*Switch, error) {
	if len(cfg.Segment) == 0 {
		return nil, errors.New("dataplane: no segment configured")
	}
	if cfg.Port == 0 {
		cfg.Port = encap.PortIKENAT
		if cfg.Mode == ModePlain {
			cfg.Port = encap.PortVXLAN
		}
	}
	if !cfg.VTEP.IsValid() {
		cfg.VTEP = cfg.Listen
	}
	if cfg.Mode == ModeESP && !cfg.VTEP.IsValid() {
		return nil, errors.New("dataplane: esp mode needs a vtep address (site.vtep or site.listen)")
	}
	if cfg.Suite == 0 {
		cfg.Suite = crypto.SuiteAES128GCM16
	}
	log := cfg.Logger
	if log == nil {
		log = slog.New(slog.DiscardHandler)
	}
	clk := clock.Or(cfg.Clock)
	s := &Switch{
		cfg: cfg, log: log, clock: clk,
		fdb:      fdb.New(fdb.Config{AgeTime: cfg.AgeTime, Logger: log, Clock: clk}),
		segments: make(map[encap.VNI]*segment),
	}
	// Set before anything runs: the control socket reads them from the start.
	s.localAddr = netip.AddrPortFrom(cfg.Listen, cfg.Port)
	if !cfg.Listen.IsValid() {
		s.localAddr = netip.AddrPortFrom(netip.IPv4Unspecified(), cfg.Port)
	}
	s.ids = encap.NewIDGenerator()
	s.rx = newRxPath(s)
	s.lowerFn = s.lowerPathMTU
	for _, sc := range cfg.Segment {
		if sc.MTU == 0 {
			sc.MTU = 1500
		}
		if err := s.fdb.AddSegment(sc.VNI); err != nil {
			return nil, fmt.Errorf("segment %d: %w", sc.VNI, err)
		}
		s.segments[sc.VNI] = &segment{cfg: sc, vni: sc.VNI}
	}
	if err := s.setPeers(cfg.Peer); err != nil {
		return nil, err
	}
	return s, nil
}

// Run opens the TAP ports and the underlay socket, runs the pipeline until
// ctx is done, then closes everything it opened (TAP devices it created
// disappear with it).
func (s *Switch) Run(ctx context.Context) error {
	listen := s.localAddr
	uc := link.UDPConfig{Listen: listen, DontFragment: s.cfg.Mode == ModeESP, Offload: !s.cfg.NoOffload,
		Batch: batchSize, MaxDatagram: BufferSize, Truncated: &s.ctr[cRxDropOversize]}
	if s.cfg.Mode == ModePlain {
		uc.Spread = spreadSockets
	}
	under, err := link.Listen(uc)
	if err != nil {
		return err
	}
	defer under.Close()
	ports := make(map[encap.VNI]link.Port)
	defer func() {
		for _, p := range ports {
			p.Close()
		}
	}()
	for vni, seg := range s.segments {
		mac := seg.cfg.MAC
		if mac.IsZero() {
			mac = stableMAC(s.cfg.Name, vni)
		}
		port, err := link.OpenTAP(link.TAPConfig{Name: seg.cfg.TAP, MTU: seg.cfg.MTU, Address: seg.cfg.Address, MAC: mac,
			Offload: !s.cfg.NoOffload, SuperFrames: &seg.ctr[cTSOFrames], Malformed: &seg.ctr[cDropOffload]})
		if err != nil {
			return fmt.Errorf("segment %d: %w", vni, err)
		}
		ports[vni] = port
	}
	if err := s.Attach(under, ports); err != nil {
		return err
	}
	s.log.Info("vxswitch running", "site", s.cfg.Name, "mode", s.cfg.Mode.String(), "listen", under.LocalAddr(),
		"segments", len(s.segments), "peers", len(s.cfg.Peer))
	return s.Serve(ctx)
}

// spreadSockets is how many source ports plain mode sends from.
const spreadSockets = 8

// Attach sets up the pipeline over an underlay and a port per segment
// (Run passes the UDP socket and the TAPs; tests and benchmarks pass
// link.MemUnderlay and link.MemPort). After Attach, Serve runs the
// pipeline, or a test drives it a batch at a time with ServePort and
// ServeUnderlay.
func (s *Switch) Attach(u link.Underlay, ports map[encap.VNI]link.Port) error {
	for vni := range s.segments {
		if ports[vni] == nil {
			return fmt.Errorf("segment %d: no port", vni)
		}
	}
	s.under = u
	if la := u.LocalAddr(); la.IsValid() && la.Port() != 0 && !s.cfg.Listen.IsValid() {
		s.localAddr = la
	}
	for vni, seg := range s.segments {
		seg.port = ports[vni]
		seg.tx = newTxPath(s, seg)
		seg.out = make([][]byte, 0, batchSize)
	}
	s.rx.attach(u)
	if s.pool == nil {
		s.pool = newWorkerPool(s.cfg.CryptoWorkers)
	}
	s.updateFloodLists()
	return nil
}

// ServePort reads one batch of frames from segment vni's port and forwards
// them. Serve calls it in a loop; not concurrent with itself per segment.
func (s *Switch) ServePort(vni encap.VNI) error { return s.segments[vni].tx.serve() }

// ServeUnderlay reads one batch of datagrams from the underlay and
// delivers what they carry. Serve calls it in a loop; not concurrent with
// itself.
func (s *Switch) ServeUnderlay() error { return s.rx.serve() }

// Serve runs the attached pipeline — a goroutine per port, one for the
// underlay, housekeeping and (esp mode) IKE — until ctx is done or a link
// fails; then it closes the links.
func (s *Switch) Serve(ctx context.Context) error {
	defer s.pool.Close()
	ctx, cancel := context.WithCancel(ctx)
	defer cancel()
	var wg, rxWG sync.WaitGroup
	errc := make(chan error, len(s.segments)+3)
	run := func(wg *sync.WaitGroup, f func(context.Context) error) {
		wg.Add(1)
		go func() {
			defer wg.Done()
			if err := f(ctx); err != nil && ctx.Err() == nil {
				errc <- err
				cancel()
			}
		}()
	}
	loop := func(serve func() error) func(context.Context) error {
		return func(ctx context.Context) error {
			for {
				if err := serve(); err != nil {
					if link.Closed(err) || ctx.Err() != nil {
						return nil
					}
					return err
				}
			}
		}
	}
	for _, seg := range s.segments {
		run(&wg, loop(seg.tx.serve))
	}
	run(&rxWG, loop(s.rx.serve))
	run(&wg, s.housekeeping)
	if s.cfg.Mode == ModeESP {
		run(&wg, s.runIKE)
	}
	<-ctx.Done()
	// Unblock the readers: closing a link makes its reads fail. The
	// receive loop writes to the ports, so it ends before they close.
	s.under.Close()
	rxWG.Wait()
	for _, seg := range s.segments {
		seg.port.Close()
	}
	wg.Wait()
	select {
	case err := <-errc:
		return err
	default:
		return nil
	}
}

// applyPathMTUs applies path MTUs the kernel reported for our peers.
func (s *Switch) applyPathMTUs() {
	s.under.PathMTUs(s.lowerFn)
}

// lowerPathMTU lowers the path MTU of the peer at dst (its current
// endpoint: it may have moved from the configured one) to mtu.
func (s *Switch) lowerPathMTU(dst netip.Addr, mtu int) {
	for _, p := range s.peers.Load().byPort {
		if p == nil || p.Endpoint().Addr() != dst || mtu < 576 || int32(mtu) >= p.mtu.Load() {
			continue
		}
		p.mtu.Store(int32(mtu))
		p.mtuLow.Store(s.clock.Now().UnixNano())
		s.log.Info("path MTU lowered", "peer", p.cfg.Name, "mtu", mtu)
		s.updateFloodLists()
	}
}

// pathMTURecheck is how long a lowered path MTU holds before the
// configured one is tried again, as the kernel's own cache expires
// (net.ipv4.route.mtu_expires): a route that grew back, or one forged
// ICMP, does not shrink the tunnel for good.
const pathMTURecheck = 10 * time.Minute

// restorePathMTUs raises lowered path MTUs back to the configured ones
// once pathMTURecheck has passed (housekeeping).
func (s *Switch) restorePathMTUs(now time.Time) {
	changed := false
	for _, p := range s.peers.Load().byPort {
		if p == nil {
			continue
		}
		cfg := p.cfgMTU.Load()
		if p.mtu.Load() < cfg && now.Sub(time.Unix(0, p.mtuLow.Load())) > pathMTURecheck {
			p.mtu.Store(cfg)
			changed = true
			s.log.Info("path MTU back to the configured one", "peer", p.cfg.Name, "mtu", cfg)
		}
	}
	if changed {
		s.updateFloodLists()
	}
}

// housekeepingInterval is how often housekeeping runs.
const housekeepingInterval = time.Second

// housekeeping runs housekeep every housekeepingInterval on the Switch's
// clock until ctx is done.
func (s *Switch) housekeeping(ctx context.Context) error {
	var tick func()
	var mu sync.Mutex
	var t clock.Timer
	tick = func() {
		if ctx.Err() != nil {
			return
		}
		s.housekeep()
		mu.Lock()
		t = s.clock.AfterFunc(housekeepingInterval, tick)
		mu.Unlock()
	}
	mu.Lock()
	t = s.clock.AfterFunc(housekeepingInterval, tick)
	mu.Unlock()
	<-ctx.Done()
	mu.Lock()
	t.Stop()
	mu.Unlock()
	return nil
}

// housekeep ages the FDB, promotes pending SAs whose wait is over, raises
// lowered path MTUs again, asks for early rekeys, applies path MTUs the
// kernel reported (one-way traffic: nothing arrives to wake the receive
// loop) and expires reassembly.
func (s *Switch) housekeep() {
	now := s.clock.Now()
	s.fdb.Sweep()
	s.promoteExpired(now)
	s.restorePathMTUs(now)
	s.rekeyWorn()
	if s.under != nil {
		s.applyPathMTUs()
	}
	s.rx.expire()
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
	var added []*peer
	for _, pc := range cfgs {
		if pc.Endpoint.Port() == 0 {
			pc.Endpoint = netip.AddrPortFrom(pc.Endpoint.Addr(), s.cfg.Port)
		}
		if !pc.VTEP.IsValid() {
			pc.VTEP = pc.Endpoint.Addr()
		}
		if pc.MTU == 0 {
			pc.MTU = 1500
		}
		var p *peer
		var op *peer
		if old != nil {
			op = old.byName[pc.Name]
		}
		if op != nil && samePeer(op.cfg, pc) {
			// The SAs, learnt MACs and counters stay; the path MTU and the
			// segments change in place.
			p = op
			if int32(pc.MTU) != p.cfgMTU.Load() {
				p.cfgMTU.Store(int32(pc.MTU))
				p.mtu.Store(int32(pc.MTU))
			}
			if segs := pc.Segments; !slices.Equal(segs, *p.segments.Load()) {
				p.segments.Store(&segs)
				s.fdb.FlushPort(p.port) // what it learnt in segments it left
			}
		}
		if p == nil {
			p = &peer{cfg: pc, tunnel: encap.Tunnel{Src: s.cfg.VTEP, Dst: pc.VTEP}}
			ep := pc.Endpoint
			p.endpoint.Store(&ep)
			p.mtu.Store(int32(pc.MTU))
			p.cfgMTU.Store(int32(pc.MTU))
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
			}
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
	for vni, seg := range s.segments {
		var list []fdb.Port
		minMTU := int64(0)
		for _, p := range pt.byPort {
			if p == nil || !p.inSegment(vni) {
				continue
			}
			list = append(list, p.port)
			if m := int64(p.frameMTU(s.cfg.Mode)); minMTU == 0 || m < minMTU {
				minMTU = m
			}
		}
		s.fdb.SetFloodList(vni, list)
		seg.minFrameMTU.Store(minMTU)
	}
}

// Reload replaces the peer list (SIGHUP) without disturbing the traffic of
// peers whose configuration did not change.
func (s *Switch) Reload(peers []PeerConfig) error {
	if err := s.setPeers(peers); err != nil {
		return err
	}
	s.ike.updatePeers(s)
	return nil
}

// emitUnderlay captures an underlay datagram with a synthesised outer IP
// and UDP header, so a decoder sees ESP-in-UDP (or VXLAN) as on the wire.
func (s *Switch) emitUnderlay(src, dst netip.AddrPort, payload []byte) {
	s.emitSynth(CaptureUnderlay, 0, src, dst, payload)
}

// emitSynth captures payload at point behind a synthesised IP and UDP
// header from src to dst.
func (s *Switch) emitSynth(point CapturePoint, vni encap.VNI, src, dst netip.AddrPort, payload []byte) {
	var hdr [encap.IPv6HeaderLen + encap.UDPHeaderLen]byte
	n := 0
	if src.Addr().Is4() || src.Addr().Is4In6() {
		ip := encap.IPv4Fields{TotalLen: uint16(encap.IPv4MinHeaderLen + encap.UDPHeaderLen + len(payload)), TTL: 64,
			Protocol: encap.ProtoUDP, Src: src.Addr().Unmap(), Dst: dst.Addr().Unmap()}
		ip.Encode(hdr[:])
		n = encap.IPv4MinHeaderLen
	} else {
		ip := encap.IPv6Fields{PayloadLen: uint16(encap.UDPHeaderLen + len(payload)), NextHeader: encap.ProtoUDP,
			HopLimit: 64, Src: src.Addr(), Dst: dst.Addr()}
		ip.Encode(hdr[:])
		n = encap.IPv6HeaderLen
	}
	u := encap.UDPFields{SrcPort: src.Port(), DstPort: dst.Port(), Length: uint16(encap.UDPHeaderLen + len(payload))}
	u.Encode(hdr[n:])
	s.capture.emit(point, vni, hdr[:n+encap.UDPHeaderLen], payload)
}

// logf logs a rate-limited warning about the data path.
func (s *Switch) logf(msg string, args ...any) {
	if ok, suppressed := s.logLimiter.Allow(s.clock.Now().UnixNano()); ok {
		if suppressed > 0 {
			args = append(args, "suppressed", suppressed)
		}
		s.log.Warn(msg, args...)
	}
}

// stableMAC derives a locally administered unicast MAC for a site's TAP
// on a segment, the same at every start.
func stableMAC(site string, vni encap.VNI) encap.MAC {
	h := sha256.Sum256([]byte(fmt.Sprintf("vxswitch %s %d", site, vni)))
	var m encap.MAC
	copy(m[:], h[:6])
	m[0] = m[0]&^0x01 | 0x02
	return m
}

// FDB returns the forwarding database.
func (s *Switch) FDB() []FDBEntry {
	pt := s.peers.Load()
	var out []FDBEntry
	s.fdb.Entries(func(e fdb.Entry) bool {
		port := "local"
		if e.Port != fdb.LocalPort {
			port = fmt.Sprintf("port %d", e.Port)
			if p := pt.get(e.Port); p != nil {
				port = p.cfg.Name
			}
		}
		out = append(out, FDBEntry{VNI: e.VNI, MAC: e.MAC.String(), Port: port, Age: e.Age, Static: e.Static, Moves: e.Moves})
		return true
	})
	sort.Slice(out, func(i, j int) bool {
		if out[i].VNI != out[j].VNI {
			return out[i].VNI < out[j].VNI
		}
		return out[i].MAC < out[j].MAC
	})
	return out
}

// Peers returns the status of every peer.
func (s *Switch) Peers() []PeerStatus {
	pt := s.peers.Load()
	ikeSA := make(map[string]string)
	for _, sa := range s.IKESAs() {
		if sa.State == "established" && !sa.Established.IsZero() {
			ikeSA[sa.Peer] = fmt.Sprintf("%s, %s", sa.Algorithms, time.Since(sa.Established).Round(time.Second))
		}
	}
	var out []PeerStatus
	for _, p := range pt.byPort {
		if p == nil {
			continue
		}
		out = append(out, PeerStatus{
			Name: p.cfg.Name, Endpoint: peerAddr(p.Endpoint()), VTEP: p.cfg.VTEP.String(),
			MTU: int(p.mtu.Load()), State: stateName(p.state.Load()),
			TxPackets: p.ctr[cTxPackets].Load(), TxBytes: p.ctr[cTxBytes].Load(),
			RxPackets: p.ctr[cRxPackets].Load(), RxBytes: p.ctr[cRxBytes].Load(),
			Fragments: p.ctr[cTxFragments].Load(),
			IKE:       cmp.Or(ikeSA[p.cfg.Name], "-"),
		})
	}
	return out
}

// Stats returns every non-zero counter: the switch's, each segment's, each
// peer's, the FDB's, the reassembler's and the SAs'.
func (s *Switch) Stats() []Counter {
	out := s.ctr.appendNonZero(nil, "switch")
	vnis := make([]encap.VNI, 0, len(s.segments))
	for vni := range s.segments {
		vnis = append(vnis, vni)
	}
	slices.Sort(vnis)
	for _, vni := range vnis {
		out = s.segments[vni].ctr.appendNonZero(out, fmt.Sprintf("segment %d", vni))
	}
	for _, p := range s.peers.Load().byPort {
		if p != nil {
			out = p.ctr.appendNonZero(out, "peer "+p.cfg.Name)
		}
	}
	fs := s.fdb.Stats()
	for _, c := range []Counter{
		{Name: "entries_learned", Value: uint64(fs.Learned)}, {Name: "entries_static", Value: uint64(fs.Static)},
		{Name: "new", Value: fs.New}, {Name: "moves", Value: fs.Moves}, {Name: "flaps", Value: fs.Flaps},
		{Name: "static_conflicts", Value: fs.StaticConflicts}, {Name: "refused_full", Value: fs.RefusedFull},
		{Name: "aged_out", Value: fs.AgedOut}, {Name: "flushed", Value: fs.Flushed}, {Name: "ignored_src", Value: fs.Ignored},
	} {
		if c.Value != 0 {
			c.Scope = "fdb"
			out = append(out, c)
		}
	}
	out = append(out, reassemblyCounters(s.rx.reassemblyStats())...)
	return out
}

// Capture starts a capture session at point, for one segment (vni) or all
// (vni 0), with a queue of the given length (0: 4096). Close it when done.
func (s *Switch) Capture(point CapturePoint, vni encap.VNI, queue int) *CaptureSession {
	return s.capture.add(point, vni, queue)
}
