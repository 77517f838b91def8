package dataplane

import (
	"context"
	"crypto/sha256"
	"errors"
	"fmt"
	"log/slog"
	"net/netip"
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
	// csumOffload: every segment's port carries TCP checksums unfinished,
	// so probes and acknowledgements tell peers they may send them so
	// (pmtu.FlagChecksumOffload). Set by Attach.
	csumOffload bool

	peers atomic.Pointer[peerTable]
	mu    sync.Mutex // serialises control-plane changes
	ctlMu sync.Mutex // serialises AddPeer and RemovePeer (read, modify, Reload)
	// remote holds the control-plane FDB entries, each with its peer's
	// name; guarded by mu.
	remote map[remoteMAC]string
	neigh  *neighbours // IP-MAC bindings for ARP/ND suppression (neigh.go)
	clock  clock.Clock

	under     link.Underlay
	localAddr netip.AddrPort
	rx        *rxPath
	lowerFn   func(netip.Addr, int) // lowerPathMTU, bound once (a method value per call allocates)

	ike        ikeBridge
	ctr        counters
	logLimiter ratelimit.Limiter
	// spiLogLimiter paces the debug lines about unknown SPIs (rx.go).
	spiLogLimiter ratelimit.Limiter
}

// segment is one VNI with its port.
type segment struct {
	cfg  SegmentConfig
	vni  encap.VNI
	port link.Port // the TAP, or an in-memory port
	// offload: the port carries TCP checksums unfinished (esp mode, a
	// port that can; see link.ChecksumOffload); nil otherwise.
	offload     link.ChecksumOffload
	tx          *txPath
	out         [][]byte     // frames received for the port, written at the end of the batch (receive goroutine)
	minFrameMTU atomic.Int64 // smallest peer frameMTU, for clamping floods
	ctr         counters
	movedHere   chan encap.MAC // source MACs pinned to a peer seen on the TAP (MovedToTAP)
	// portMu serializes writes to the port: the receive path's, and the
	// ARP/ND answers the transmit path makes (neigh.go).
	portMu sync.Mutex
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
		fdb:      fdb.New(fdb.Config{AgeTime: cfg.AgeTime, MaxPerPort: cfg.MaxMACsPerPort, Logger: log, Clock: clk}),
		segments: make(map[encap.VNI]*segment), remote: make(map[remoteMAC]string), neigh: newNeighbours(),
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
		s.segments[sc.VNI] = &segment{cfg: sc, vni: sc.VNI, movedHere: make(chan encap.MAC, 256)}
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
	if s.cfg.Mode == ModeESP {
		s.ike.mu.Lock()
		s.ike.pre500 = s.listen500()
		s.ike.mu.Unlock()
	}
	if f := s.cfg.AfterOpen; f != nil {
		// Everything that needs privilege is open: the caller may drop it.
		if err := f(); err != nil {
			return err
		}
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
	s.csumOffload = s.cfg.Mode == ModeESP && !s.cfg.NoOffload
	for vni, seg := range s.segments {
		seg.port = ports[vni]
		if co, ok := seg.port.(link.ChecksumOffload); ok && s.cfg.Mode == ModeESP && !s.cfg.NoOffload && co.OffloadChecksums() {
			seg.offload = co
		} else {
			s.csumOffload = false
		}
		seg.tx = newTxPath(s, seg)
		seg.out = make([][]byte, 0, batchSize)
	}
	s.rx.attach(u)
	if s.pool == nil {
		s.pool = newWorkerPool(s.cfg.CryptoWorkers)
	}
	s.updateFloodLists()
	if s.cfg.Mode == ModePlain {
		// Plain peers need no keys: probe them from the start (esp peers
		// from their first SA).
		for _, p := range s.peers.Load().byPort {
			if p != nil {
				s.startProber(p)
			}
		}
	}
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

// housekeepingInterval is how often housekeeping runs.
const housekeepingInterval = time.Second

// housekeeping runs housekeep every housekeepingInterval on the Switch's
// clock until ctx is done.
func (s *Switch) housekeeping(ctx context.Context) error {
	var mu sync.Mutex // guards t and stopped: a tick reschedules itself
	var t clock.Timer
	stopped := false
	var tick func()
	tick = func() {
		s.housekeep()
		mu.Lock()
		defer mu.Unlock()
		if !stopped {
			t = s.clock.AfterFunc(housekeepingInterval, tick)
		}
	}
	mu.Lock()
	t = s.clock.AfterFunc(housekeepingInterval, tick)
	mu.Unlock()
	<-ctx.Done()
	mu.Lock()
	stopped = true
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
	s.updateFloodMTUs() // probed path MTUs move: the floods' MSS clamp follows
	s.rx.expire()
	s.natKeepalives(now)
}

// natKeepaliveInterval is how long a NATed site may send nothing to a peer
// before it sends a NAT keepalive (RFC 3948 §4 suggests 20 s; NAT UDP
// mappings often last 30 s).
const natKeepaliveInterval = 20 * time.Second

// natKeepalives sends the one-byte 0xFF NAT keepalive (RFC 3948 §2.3) to
// every peer we are behind a NAT toward (or every peer, with
// NATKeepaliveAlways) and sent nothing to for natKeepaliveInterval;
// called from housekeeping only.
func (s *Switch) natKeepalives(now time.Time) {
	if s.under == nil {
		return
	}
	if s.cfg.Mode != ModeESP || s.cfg.NATKeepalive == NATKeepaliveOff {
		return
	}
	for _, p := range s.peers.Load().byPort {
		if p == nil || !(p.natKeepalive.Load() || s.cfg.NATKeepalive == NATKeepaliveAlways) {
			continue
		}
		if tx := p.ctr[cTxPackets].Load() + p.ctr[cTxKeepalives].Load(); tx != p.lastTxMark || p.lastTxAt.IsZero() {
			p.lastTxMark, p.lastTxAt = tx, now
			continue
		}
		if now.Sub(p.lastTxAt) < natKeepaliveInterval {
			continue
		}
		if err := s.under.WriteControl([]byte{0xff}, p.Endpoint()); err != nil {
			p.ctr.inc(cTxErrors)
			continue
		}
		p.ctr.inc(cTxKeepalives)
	}
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
