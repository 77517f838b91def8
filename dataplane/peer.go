package dataplane

import (
	"net/netip"
	"sync"
	"sync/atomic"
	"time"

	"github.com/vxswitch/vxswitch/crypto"
	"github.com/vxswitch/vxswitch/encap"
	"github.com/vxswitch/vxswitch/fdb"
	"github.com/vxswitch/vxswitch/pmtu"
)

// Peer states.
const (
	peerConnecting int32 = iota
	peerUp
	peerDown
)

// peer is a remote site. Its mutable state is atomic: the data path reads
// it without locks while the control plane (IKE, PMTU, reload) writes.
type peer struct {
	cfg    PeerConfig
	port   fdb.Port
	tunnel encap.Tunnel // tunnel-inner addresses: our VTEP -> the peer's

	endpoint atomic.Pointer[netip.AddrPort] // underlay address; follows NAT rebinding
	mtu      atomic.Int32                   // path MTU to the peer: configured, or lower as the kernel reports
	cfgMTU   atomic.Int32                   // the configured path MTU (reload changes it in place)
	mtuLow   atomic.Int64                   // when mtu was last lowered (Unix ns), to go back up later
	segments atomic.Pointer[[]encap.VNI]    // segments the peer joins; empty: all (reload changes it in place)
	outSA    atomic.Pointer[crypto.OutboundSA]
	pending  atomic.Pointer[pendingSA] // a new SA pair waiting to take over
	rekeyed  atomic.Uint32             // outbound SPI whose early rekey was asked for
	state    atomic.Int32

	// prober finds the path MTU (RFC 8899); nil before the peer is up, or
	// with probing off. probeMu guards probeBuf (probes go out from timers
	// and acknowledgements from the receive goroutine).
	prober  atomic.Pointer[pmtu.Prober]
	baseMTU int          // with probing on: the base PLPMTU, sent to until a prober confirms more; 0: probing off
	ceiling atomic.Int32 // peer.mtu as configured (0: unset), for the prober; reload changes it
	// dontFragment: the underlay sends to the peer with DF (plain mode,
	// once it answered a probe).
	dontFragment atomic.Bool
	// ikeProbed: the prober's probes travel in IKE (esp mode, the peer's
	// data plane answered none of its own).
	ikeProbed atomic.Bool
	// csumOffload: the peer's last probe or acknowledgement said it takes
	// TCP segments with unfinished checksums (pmtu.FlagChecksumOffload;
	// esp mode). Cleared with its prober.
	csumOffload atomic.Bool
	// natKeepalive: we are behind a NAT toward this peer (IKE's NAT
	// detection): housekeeping sends a keepalive when nothing else went
	// out for natKeepaliveInterval. lastTxMark/At track that.
	natKeepalive atomic.Bool
	lastTxMark   uint64
	lastTxAt     time.Time
	probeMu      sync.Mutex
	probeBuf     []byte

	ctr counters
	sas []saRecord // installed Child SAs, guarded by Switch.mu
}

func (p *peer) Endpoint() netip.AddrPort { return *p.endpoint.Load() }

// outerOverhead is what the underlay adds around an ESP or VXLAN payload:
// outer IP and UDP.
func outerOverhead(ap netip.AddrPort) int {
	if ap.Addr().Is4() || ap.Addr().Is4In6() {
		return encap.IPv4MinHeaderLen + encap.UDPHeaderLen
	}
	return encap.IPv6HeaderLen + encap.UDPHeaderLen
}

// maxInner is the largest tunnel-inner IP packet that, sealed in ESP and
// wrapped in the outer headers, fits the peer's path MTU.
func (p *peer) maxInner() int { return espPayloadFor(p.pathMTU(), p.Endpoint()) }

// espPayloadFor is the largest ESP payload whose packet, sealed and in its
// outer IP and UDP headers to ep, is at most size bytes: room left after
// the outer headers, the ESP header and ICV, rounded down to the 4-byte
// ESP alignment (so no padding), less the pad-length and next-header bytes.
func espPayloadFor(size int, ep netip.AddrPort) int {
	room := size - outerOverhead(ep) - crypto.HeaderLen - crypto.ICVLen
	return room&^3 - 2
}

// frameMTU is the IP MTU an overlay host may use towards this peer
// without fragmentation in the tunnel: what MSS clamping aims at.
func (p *peer) frameMTU(mode Mode) int {
	if mode == ModePlain {
		return p.pathMTU() - outerOverhead(p.Endpoint()) - encap.VXLANHeaderLen - encap.EthernetHeaderLen
	}
	return p.maxInner() - p.tunnel.Overhead() - encap.EthernetHeaderLen
}

// pathMTU is the largest outer packet to send to the peer now: what the
// prober found, or (probing off or not started) the configured path MTU as
// lowered by the kernel's reports; before the prober starts, the base.
func (p *peer) pathMTU() int {
	if pr := p.prober.Load(); pr != nil {
		return pr.PLPMTU()
	}
	if p.baseMTU > 0 {
		return min(p.baseMTU, int(p.mtu.Load()))
	}
	return int(p.mtu.Load())
}

// isVXSwitch reports whether the peer's data plane is a vxswitch's: it
// answered a data-plane path MTU probe (IKE-carried ones do not count).
func (p *peer) isVXSwitch() bool { return p.answersProbes() && !p.ikeProbed.Load() }

// answersProbes reports whether the peer has acknowledged a path MTU probe.
func (p *peer) answersProbes() bool {
	pr := p.prober.Load()
	return pr != nil && pr.Answering()
}

func stateName(s int32) string {
	switch s {
	case peerUp:
		return "up"
	case peerDown:
		return "down"
	}
	return "connecting"
}

// peerTable is an immutable snapshot of the peers, replaced as a whole on
// reload so the data path reads it with one atomic load.
type peerTable struct {
	byPort []*peer // index: fdb port; nil holes for removed peers
	byName map[string]*peer
	byAddr map[netip.Addr]*peer // underlay address (plain mode knows peers by it)
}

func (t *peerTable) get(port fdb.Port) *peer {
	if int(port) < len(t.byPort) {
		return t.byPort[port]
	}
	return nil
}
