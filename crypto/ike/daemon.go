package ike

import (
	"bytes"
	"context"
	"crypto/rand"
	"encoding/binary"
	"errors"
	"fmt"
	"log/slog"
	"net/netip"
	"reflect"
	"sort"
	"sync"
	"sync/atomic"
	"time"

	"github.com/vxswitch/vxswitch/clock"
	"github.com/vxswitch/vxswitch/crypto"
	"github.com/vxswitch/vxswitch/internal/ratelimit"
)

// PeerConfig describes one peer site.
type PeerConfig struct {
	Name string
	// Endpoint is the peer's IKE address: port 4500 (IKE with the non-ESP
	// marker from the first message, RFC 7296 §2.23) or 500 (IKE_SA_INIT on
	// 500, then 4500).
	Endpoint netip.AddrPort
	// Local is our underlay address and NAT-T port (IKE behind the non-ESP
	// marker, and ESP); port 0 means 4500. IKE_SA_INIT to an Endpoint on
	// port 500 goes out from port 500 of the same address. An invalid
	// address lets the transport choose.
	Local netip.AddrPort
	// LocalID and RemoteID are identities: an IP address, an FQDN (optional
	// leading '@') or user@fqdn. LocalID defaults to the local underlay
	// address the IKE SA runs on (Local's, or the one the packets arrive
	// at); an empty RemoteID accepts any identity from the Endpoint's
	// address (the PSK authenticates).
	LocalID, RemoteID string
	// LocalVTEP and RemoteVTEP are the tunnel-inner addresses; the Child SA
	// carries UDP between them (all ports: VXLAN source ports are a flow hash).
	LocalVTEP, RemoteVTEP netip.Addr
	// Initiate makes this side start (and restart) the IKE SA.
	Initiate bool
	// Passive: never initiate, not even when the peer names an IKE SA we
	// lost in a restart (which otherwise starts one at once, to the
	// configured endpoint); the peer must find out by its liveness checks.
	Passive bool
	// PSK is this peer's own pre-shared key; empty: the mesh PSK, or
	// certificates when Config.Credentials is set.
	PSK []byte
}

// Config configures a Daemon.
type Config struct {
	// PSK is the mesh key: it authenticates every peer without a PSK of its
	// own when Credentials is nil.
	PSK []byte
	// Credentials, when set, authenticate with certificates (RFC 7427)
	// every peer without a PSK of its own.
	Credentials *Credentials
	// Suite is the ESP suite offered and accepted for Child SAs.
	Suite crypto.Suite
	// IKESuite lists the IKE SA algorithms as strongSwan writes them, e.g.
	// "aes128gcm16-prfsha256-x25519"; empty means DefaultIKESuite.
	IKESuite string
	// Lifetime and ChildLifetime are hard lifetimes; rekeying starts at 90%
	// minus a random jitter of up to 5%. Defaults 4h and 1h.
	Lifetime, ChildLifetime time.Duration
	// DPDInterval: an empty INFORMATIONAL is sent when nothing was heard
	// from the peer for this long. Default 30s; negative disables.
	DPDInterval time.Duration
	Peers       []PeerConfig
	Logger      *slog.Logger
	Clock       clock.Clock

	// RetransmitTimeout is the first retransmission timeout (default 1s);
	// it doubles with every try up to RetransmitTries tries (default 5).
	RetransmitTimeout time.Duration
	RetransmitTries   int
	// RetryInterval is the wait before initiating again after a failure
	// or a lost peer (default 5s).
	RetryInterval time.Duration
	// CookieThreshold is the number of half-open SAs above which the
	// responder demands a COOKIE (RFC 7296 §2.6); default 16, negative
	// means always. COOKIEs are demanded too whenever more than 50
	// IKE_SA_INITs arrived in the last second.
	CookieThreshold int
}

// ChildSA is an ESP SA pair handed to the data plane.
type ChildSA struct {
	Peer   string
	Suite  crypto.Suite
	ESN    bool
	InSPI  uint32
	OutSPI uint32
	// InKeymat and OutKeymat are key||salt of Suite.KeymatLen() bytes each.
	InKeymat, OutKeymat []byte
	// Local and Remote are the underlay UDP endpoints of the ESP packets.
	Local, Remote netip.AddrPort
	Lifetime      time.Duration
	// BehindNAT: NAT detection found a NAT in front of us; the data plane
	// sends NAT keepalives (RFC 3948 §4) to keep its mapping open.
	BehindNAT bool
	// Responder: we answered the exchange that made the SA, so the peer
	// installs it only once our answer arrives, a moment after us: a
	// packet sent on it at once may find the peer without it.
	Responder bool
}

// Handler receives the daemon's results. Calls are made without the
// daemon's lock held, in the order the events happened, from one goroutine
// at a time; a handler may call back into the Daemon.
type Handler interface {
	// InstallChildSA installs the inbound SA first, then switches outbound
	// traffic to the new SA (make-before-break). The previous SA of the peer
	// stays until DeleteChildSA.
	InstallChildSA(sa ChildSA) error
	// DeleteChildSA removes an SA pair. It may be the pair outbound traffic
	// uses now (the redundant SA of a rekey collision, RFC 7296 §2.8.1, or
	// of a duplicate IKE SA after simultaneous initiation, is installed and
	// then deleted): outbound traffic then moves to the most recently
	// installed remaining pair of the peer.
	DeleteChildSA(peer string, inSPI, outSPI uint32)
	PeerUp(peer string)
	// PeerDown is called when the peer's last IKE SA is gone (liveness check
	// failed, deleted, or configuration removed).
	PeerDown(peer string)
}

// EndpointUpdater may be implemented by a Handler: UpdateEndpoints is
// called when authenticated IKE messages of an established SA arrive from
// a new address or port (a NAT rebinding), with the new underlay endpoints
// for ESP.
type EndpointUpdater interface {
	UpdateEndpoints(peer string, local, remote netip.AddrPort)
}

// InboundCounter may be implemented by a Handler: InboundPackets is how
// many authenticated packets (ESP) have come from the peer. A request whose
// retransmissions went out while the path was down (no ESP came meanwhile)
// is sent again at once, with its retransmission count started over, when
// ESP shows the path works again: a liveness check fails only on the
// current path, not on retransmissions lost in an outage that is over.
// Called with the daemon's lock held: it must not call back into it.
type InboundCounter interface {
	InboundPackets(peer string) uint64
}

// Transport sends IKE messages. For any local port but 500 the transport
// prepends the 4-byte non-ESP marker; msg is the IKE message only.
type Transport interface {
	Send(from netip.AddrPort, to netip.AddrPort, msg []byte) error
}

// IKESAInfo describes one IKE SA for `vxswitch show sas`.
type IKESAInfo struct {
	Peer        string
	State       string
	Initiator   bool
	SPIi, SPIr  uint64
	Local       netip.AddrPort
	Remote      netip.AddrPort
	Algorithms  string
	Established time.Time
	Age         time.Duration // since Established, by the daemon's clock
	Children    []ChildSAInfo
}

// ChildSAInfo describes one Child SA.
type ChildSAInfo struct {
	Suite       crypto.Suite
	ESN         bool
	InSPI       uint32
	OutSPI      uint32
	State       string
	Established time.Time
}

// ErrConfig is wrapped by New for invalid configurations.
var ErrConfig = errors.New("ike: invalid configuration")

// Daemon runs IKEv2 for a set of peers. It is safe for concurrent use.
type Daemon struct {
	cfg   Config
	algs  ikeAlgs
	tr    Transport
	h     Handler
	log   *slog.Logger
	clock clock.Clock

	mu       sync.Mutex
	creds    *Credentials // Config.Credentials, replaced by SetAuth
	peers    map[string]*peer
	sas      map[uint64]*ikeSA // by our SPI
	inSPIs   map[uint32]*childSA
	halfOpen map[halfOpenKey]*ikeSA
	cookies  cookieJar
	out      []func() // handler calls and sends waiting for unlock
	draining bool     // a goroutine is running out
	wake     chan struct{}
	// Rates (token buckets, guarded by mu): stateless replies but COOKIEs,
	// COOKIE replies, and IKE_SA_INITs arriving.
	stateless, cookieReplies, initRate ratelimit.Bucket
	authLog                            map[string]*ratelimit.Limiter // per peer: refused authentications
	lastCertCheck                      time.Time                     // when recheckCertificates last ran
	fragMemory                         int                           // bytes of partial IKE messages held, all SAs

	authFailures atomic.Uint64 // IKE_AUTH refused, either way
	certRefused  atomic.Uint64 // of which a peer's certificate was refused
	adm          admissionCounters
}

// PeerError is why the last negotiation with a peer failed, and when.
type PeerError struct {
	Reason string
	At     time.Time
}

// PeerErrors returns the last error of every peer that had one.
func (d *Daemon) PeerErrors() map[string]PeerError {
	d.mu.Lock()
	defer d.mu.Unlock()
	out := map[string]PeerError{}
	for name, p := range d.peers {
		if p.lastErr != "" {
			out[name] = PeerError{Reason: p.lastErr, At: p.lastErrAt}
		}
	}
	return out
}

// noteError keeps why a negotiation with p failed; d.mu must be held.
func (d *Daemon) noteError(p *peer, why string, now time.Time) {
	if p != nil {
		p.lastErr, p.lastErrAt = why, now
	}
}

// Stats counts what the daemon refused.
type Stats struct {
	// AuthFailures counts IKE_AUTH exchanges refused (a PSK or signature
	// that does not verify, a certificate refused, an unknown identity).
	AuthFailures uint64
	// CertificatesRefused counts the refusals of a peer's certificate: no
	// chain to a trusted CA, expired, revoked, or not bound to the VTEP
	// address or identity the peer claims.
	CertificatesRefused uint64
	Admission           AdmissionStats
}

// Stats returns the daemon's counters.
func (d *Daemon) Stats() Stats {
	d.mu.Lock()
	halfOpen := len(d.halfOpen)
	d.mu.Unlock()
	return Stats{AuthFailures: d.authFailures.Load(), CertificatesRefused: d.certRefused.Load(),
		Admission: d.adm.snapshot(halfOpen)}
}

// SetAuth replaces the mesh PSK and the credentials (a reload re-read the
// files): new IKE SAs use them; established ones authenticated by a
// certificate that no longer passes (revoked, expired, another CA) are
// deleted, and peers that are down are tried again at once.
func (d *Daemon) SetAuth(psk []byte, creds *Credentials) {
	d.mu.Lock()
	// Whether peers without a PSK of their own authenticate differently now:
	// with another certificate or key (a new CRL alone is only rechecked
	// below), or with another mesh PSK.
	var changedKey bool
	if creds != nil {
		changedKey = d.creds == nil || !d.creds.sameKeys(creds)
	} else {
		changedKey = d.creds != nil || !bytes.Equal(d.cfg.PSK, psk)
	}
	d.cfg.PSK, d.cfg.Credentials, d.creds = psk, creds, creds
	now := d.clock.Now()
	d.recheckCertificates(now)
	// Peers whose key changed authenticate again (make-before-break);
	// peers that are down may have failed for the old key: try them now.
	for _, p := range d.peers {
		if p.up && len(p.cfg.PSK) == 0 {
			p.reauth = p.reauth || changedKey
		}
	}
	for _, p := range d.peers {
		if !p.up {
			p.nextAttempt = now
		}
	}
	d.unlock()
	select {
	case d.wake <- struct{}{}:
	default:
	}
}

// logAuthFailure logs a refused authentication at Warn, at most once a
// minute for each peer (unknown identities share one limit), and keeps it
// as the peer's last error.
func (d *Daemon) logAuthFailure(peerName, msg, why string, err error, from netip.AddrPort) {
	if p := d.peers[peerName]; p != nil {
		reason := why
		if err != nil && !errors.Is(err, ErrAuth) {
			reason += ": " + err.Error()
		}
		d.noteError(p, reason, d.clock.Now())
	}
	l := d.authLog[peerName]
	if l == nil {
		if len(d.authLog) > 1024 {
			clear(d.authLog)
		}
		l = &ratelimit.Limiter{Interval: time.Minute}
		d.authLog[peerName] = l
	}
	ok, held := l.Allow(d.clock.Now().UnixNano())
	if !ok {
		return
	}
	attrs := []any{"peer", peerName, "from", from, "reason", why, "err", err}
	if held > 0 {
		attrs = append(attrs, "suppressed", held)
	}
	d.log.Warn(msg, attrs...)
}

type halfOpenKey struct {
	spii   uint64
	remote netip.AddrPort
}

type peer struct {
	cfg         PeerConfig
	reauth      bool      // its key changed: authenticate a new IKE SA, then retire the old
	lastErr     string    // why the last negotiation with the peer failed
	lastErrAt   time.Time // and when
	localID     *ID       // nil: the local underlay address of the IKE SA
	remoteID    *ID       // nil: any
	up          bool
	nextAttempt time.Time
	keGroup     uint16 // group to use in the next IKE_SA_INIT
}

// New checks cfg and returns a daemon; Run starts its timers. tr may be
// nil when ListenUDP (or SetTransport) provides it later.
func New(cfg Config, tr Transport, h Handler) (*Daemon, error) {
	if len(cfg.PSK) == 0 && cfg.Credentials == nil {
		for _, p := range cfg.Peers {
			if len(p.PSK) == 0 {
				return nil, fmt.Errorf("peer %q: no PSK and no certificate: %w", p.Name, ErrConfig)
			}
		}
	}
	if cfg.Suite.KeyLen() == 0 {
		return nil, fmt.Errorf("suite %v: %w", cfg.Suite, ErrConfig)
	}
	algs, err := parseIKESuite(cfg.IKESuite)
	if err != nil {
		return nil, fmt.Errorf("%w: %w", ErrConfig, err)
	}
	if cfg.Lifetime <= 0 {
		cfg.Lifetime = 4 * time.Hour
	}
	if cfg.ChildLifetime <= 0 {
		cfg.ChildLifetime = time.Hour
	}
	if cfg.DPDInterval == 0 {
		cfg.DPDInterval = 30 * time.Second
	}
	if cfg.RetransmitTimeout <= 0 {
		cfg.RetransmitTimeout = time.Second
	}
	if cfg.RetransmitTries <= 0 {
		cfg.RetransmitTries = 5
	}
	if cfg.RetryInterval <= 0 {
		cfg.RetryInterval = 5 * time.Second
	}
	if cfg.CookieThreshold == 0 {
		cfg.CookieThreshold = 16
	}
	if cfg.Logger == nil {
		cfg.Logger = slog.New(slog.DiscardHandler)
	}
	if cfg.Clock == nil {
		cfg.Clock = clock.System{}
	}
	if h == nil {
		return nil, fmt.Errorf("nil handler: %w", ErrConfig)
	}
	d := &Daemon{
		cfg: cfg, algs: algs, tr: tr, h: h, log: cfg.Logger, clock: cfg.Clock,
		peers:         map[string]*peer{},
		sas:           map[uint64]*ikeSA{},
		inSPIs:        map[uint32]*childSA{},
		halfOpen:      map[halfOpenKey]*ikeSA{},
		wake:          make(chan struct{}, 1),
		creds:         cfg.Credentials,
		stateless:     ratelimit.Bucket{Rate: statelessRepliesPerSec},
		cookieReplies: ratelimit.Bucket{Rate: cookieRepliesPerSec},
		initRate:      ratelimit.Bucket{Rate: initRateForCookies},
		authLog:       map[string]*ratelimit.Limiter{},
	}
	for _, pc := range cfg.Peers {
		p, err := newPeer(pc)
		if err != nil {
			return nil, err
		}
		if _, dup := d.peers[pc.Name]; dup {
			return nil, fmt.Errorf("peer %q twice: %w", pc.Name, ErrConfig)
		}
		d.peers[pc.Name] = p
	}
	return d, nil
}

// newPeer checks pc (name, endpoint, VTEP addresses of one family) and
// parses its identities; errors wrap ErrConfig. New and UpdatePeers call it.
func newPeer(pc PeerConfig) (*peer, error) {
	if pc.Name == "" || !pc.Endpoint.IsValid() {
		return nil, fmt.Errorf("peer %q: name and endpoint required: %w", pc.Name, ErrConfig)
	}
	if !pc.LocalVTEP.IsValid() || !pc.RemoteVTEP.IsValid() || pc.LocalVTEP.Is4() != pc.RemoteVTEP.Is4() {
		return nil, fmt.Errorf("peer %q: VTEP addresses %v %v: %w", pc.Name, pc.LocalVTEP, pc.RemoteVTEP, ErrConfig)
	}
	p := &peer{cfg: pc}
	if pc.LocalID != "" {
		id, err := ParseIdentity(pc.LocalID)
		if err != nil {
			return nil, fmt.Errorf("peer %q local id: %w: %w", pc.Name, ErrConfig, err)
		}
		p.localID = &id
	}
	if pc.RemoteID != "" {
		rid, err := ParseIdentity(pc.RemoteID)
		if err != nil {
			return nil, fmt.Errorf("peer %q remote id: %w: %w", pc.Name, ErrConfig, err)
		}
		p.remoteID = &rid
	}
	return p, nil
}

// emit queues f to run after the lock is released; d.mu must be held.
func (d *Daemon) emit(f func()) { d.out = append(d.out, f) }

// unlock releases d.mu and runs the queued handler calls and sends in
// order. Only one goroutine drains at a time, so events keep their order
// across goroutines, and d.mu is never held while a handler runs (a handler
// may call SAs or UpdatePeers).
func (d *Daemon) unlock() {
	if d.draining {
		d.mu.Unlock()
		return
	}
	d.draining = true
	for len(d.out) > 0 {
		out := d.out
		d.out = nil
		d.mu.Unlock()
		for _, f := range out {
			f()
		}
		d.mu.Lock()
	}
	d.draining = false
	d.mu.Unlock()
}

// SetTransport sets the transport when New was given nil (ListenUDP does
// this itself).
func (d *Daemon) SetTransport(tr Transport) {
	d.mu.Lock()
	d.tr = tr
	d.mu.Unlock()
}

// send queues msg to go out through the transport once d.mu is released
// (see emit); d.mu must be held. Without a transport msg is dropped; send
// errors are only logged.
func (d *Daemon) send(from, to netip.AddrPort, msg []byte) {
	tr := d.tr
	if tr == nil {
		return
	}
	d.emit(func() {
		if err := tr.Send(from, to, msg); err != nil {
			d.log.Debug("ike send failed", "to", to, "err", err)
		}
	})
}

// Run drives timers until ctx is done: initiations, retransmissions,
// rekeying, liveness checks and expiry.
func (d *Daemon) Run(ctx context.Context) error {
	t := time.NewTicker(100 * time.Millisecond)
	defer t.Stop()
	d.Tick()
	for {
		select {
		case <-ctx.Done():
			return ctx.Err()
		case <-t.C:
		case <-d.wake:
		}
		d.Tick()
	}
}

// Tick runs every timer that is due at Clock.Now(). Run calls it; tests
// with a manual clock may call it directly.
func (d *Daemon) Tick() {
	d.mu.Lock()
	d.tick(d.clock.Now())
	d.unlock()
}

// RekeyChild asks for an early rekey of the Child SA whose outbound SPI
// is outSPI: the data plane calls it when an SA's volume limits (packets,
// bytes, sequence numbers without ESN) near their end before its time
// does. It returns whether such a Child SA was found; the rekey itself
// starts on the next tick, as a timed one would.
func (d *Daemon) RekeyChild(outSPI uint32) bool {
	d.mu.Lock()
	defer d.mu.Unlock()
	for _, sa := range d.sas {
		if c := sa.childByOut(outSPI); c != nil && c.state == childInstalled {
			c.rekeyAt = time.Time{}
			return true
		}
	}
	return false
}

// samePeer reports whether a and b differ in nothing but their PSK.
func samePeer(a, b PeerConfig) bool {
	a.PSK, b.PSK = nil, nil
	return reflect.DeepEqual(a, b)
}

// UpdatePeers replaces the peer list (configuration reload). Peers that
// are gone or changed lose their SAs; new and changed ones start again.
func (d *Daemon) UpdatePeers(peers []PeerConfig) {
	d.mu.Lock()
	seen := map[string]bool{}
	for _, pc := range peers {
		seen[pc.Name] = true
		old, ok := d.peers[pc.Name]
		if ok && samePeer(old.cfg, pc) {
			if !bytes.Equal(old.cfg.PSK, pc.PSK) {
				old.cfg.PSK = pc.PSK
				old.reauth = old.up // authenticate again with the new key (make-before-break)
			}
			continue
		}
		np, err := newPeer(pc)
		if err != nil {
			d.log.Error("ike: ignoring peer", "peer", pc.Name, "err", err)
			continue
		}
		if ok {
			d.removePeerSAs(old, "reconfigured")
		}
		d.peers[pc.Name] = np
	}
	for name, p := range d.peers {
		if !seen[name] {
			d.removePeerSAs(p, "removed from configuration")
			delete(d.peers, name)
		}
	}
	d.unlock()
	select {
	case d.wake <- struct{}{}:
	default:
	}
}

// removePeerSAs destroys every IKE SA of p at once, first sending a
// best-effort Delete on established ones. UpdatePeers calls it with d.mu held.
func (d *Daemon) removePeerSAs(p *peer, why string) {
	for _, sa := range d.sas {
		if sa.peer == p {
			if sa.state == stEstablished {
				sa.sendDeleteIKE() // best effort, the SA goes away now
			}
			d.destroy(sa, why, d.clock.Now())
		}
	}
}

// SAs lists the IKE SAs and their Child SAs.
func (d *Daemon) SAs() []IKESAInfo {
	d.mu.Lock()
	defer d.mu.Unlock()
	var out []IKESAInfo
	now := d.clock.Now()
	for _, sa := range d.sas {
		info := IKESAInfo{
			State: sa.state.String(), Initiator: sa.initiator, SPIi: sa.spiI, SPIr: sa.spiR,
			Local: sa.local, Remote: sa.remote, Established: sa.established, Age: now.Sub(sa.established),
		}
		if sa.peer != nil {
			info.Peer = sa.peer.cfg.Name
		}
		if sa.keys.d != nil {
			info.Algorithms = sa.algs.String()
		}
		for _, c := range sa.children {
			info.Children = append(info.Children, ChildSAInfo{
				Suite: c.suite, ESN: c.esn, InSPI: c.inSPI, OutSPI: c.outSPI,
				State: c.state.String(), Established: c.created,
			})
		}
		out = append(out, info)
	}
	sort.Slice(out, func(i, j int) bool {
		if out[i].Peer != out[j].Peer {
			return out[i].Peer < out[j].Peer
		}
		return out[i].Established.Before(out[j].Established)
	})
	return out
}

// randUint64 returns a random uint64 from crypto/rand; it panics on failure.
func randUint64() uint64 {
	var b [8]byte
	if _, err := rand.Read(b[:]); err != nil {
		panic(err) // crypto/rand never fails on Linux
	}
	return binary.BigEndian.Uint64(b[:])
}

// randBytes returns n bytes from crypto/rand (nonces); it panics on failure.
func randBytes(n int) []byte {
	b := make([]byte, n)
	if _, err := rand.Read(b); err != nil {
		panic(err)
	}
	return b
}

// newSPI returns an unused local IKE SPI.
func (d *Daemon) newSPI() uint64 {
	for {
		s := randUint64()
		if _, used := d.sas[s]; s != 0 && !used {
			return s
		}
	}
}

// newESPSPI returns an unused inbound ESP SPI (1-255 are reserved).
func (d *Daemon) newESPSPI() uint32 {
	for {
		s := uint32(randUint64())
		if _, used := d.inSPIs[s]; s >= 256 && !used {
			return s
		}
	}
}

// jitter returns when to rekey an SA of lifetime life: 90% of it minus a
// random jitter of up to 5%.
func (d *Daemon) jitter(life time.Duration) time.Duration {
	j := life / 20
	if j <= 0 {
		return life * 9 / 10
	}
	return life*9/10 - time.Duration(randUint64()%uint64(j))
}

// findPeerForAuth finds the peer a responder authenticates: the one whose
// RemoteID matches id; else, among those without a RemoteID, a certificate
// peer whose VTEP is id, one whose endpoint address is remote's, or one
// with its own key whose VTEP is the Child SA's TSi.
func (d *Daemon) findPeerForAuth(id ID, remote netip.AddrPort, tsi []TrafficSelector) *peer {
	for _, p := range d.peers {
		if p.remoteID != nil && p.remoteID.Type == id.Type && string(p.remoteID.Data) == string(id.Data) {
			return p
		}
	}
	// Certificate peers without remote_id are known by their VTEP address,
	// which their certificate must carry (verifyPeer checks it).
	if v := vtepOf(id); v.IsValid() && d.creds != nil {
		for _, p := range d.peers {
			if p.remoteID == nil && len(p.cfg.PSK) == 0 && p.cfg.RemoteVTEP == v {
				return p
			}
		}
	}
	for _, p := range d.peers {
		if p.remoteID == nil && p.cfg.Endpoint.Addr() == remote.Addr() {
			return p
		}
	}
	// Behind a NAT whose address is not the configured endpoint, a site
	// that sets no local_id claims its private address, which no
	// configuration names: its Child SA's TSi, its VTEP address, does.
	// Only for a peer with a key of its own (its PSK, or a certificate bound
	// to that VTEP), which the AUTH must then verify with: with the mesh PSK
	// every member could claim any VTEP.
	if len(tsi) == 1 && tsi[0].StartAddr == tsi[0].EndAddr {
		for _, p := range d.peers {
			if p.remoteID == nil && p.cfg.RemoteVTEP == tsi[0].StartAddr.Unmap() && (len(p.cfg.PSK) > 0 || d.creds != nil) {
				return p
			}
		}
	}
	return nil
}

// establishedSAs counts the peer's established IKE SAs other than except.
func (d *Daemon) establishedSAs(p *peer, except *ikeSA) int {
	n := 0
	for _, sa := range d.sas {
		if sa.peer == p && sa != except && (sa.state == stEstablished) {
			n++
		}
	}
	return n
}

// liveSAs counts the peer's IKE SAs other than except that are
// established or being set up by us.
func (d *Daemon) liveSAs(p *peer, except *ikeSA) int {
	n := 0
	for _, sa := range d.sas {
		if sa.peer == p && sa != except && (sa.state == stEstablished || sa.state == stInitSent || sa.state == stAuthSent) {
			n++
		}
	}
	return n
}

// dedup settles simultaneous initiation: when both sides initiate at once
// each ends with two IKE SAs. Both know all four nonces, so, as for rekey
// collisions (RFC 7296 §2.8.1), the SA holding the lowest nonce is
// redundant and its initiator deletes it. Only SAs created within 30s of
// each other count: a stale SA is removed by INITIAL_CONTACT instead.
func (d *Daemon) dedup(p *peer, fresh *ikeSA, now time.Time) {
	if fresh.reauth {
		return // a re-authentication: retireOlder removes the old SA
	}
	var cands []*ikeSA
	for _, sa := range d.sas {
		if sa.peer == p && sa.state == stEstablished && len(sa.children) > 0 &&
			sa.created.Sub(fresh.created).Abs() < 30*time.Second {
			cands = append(cands, sa)
		}
	}
	if len(cands) < 2 {
		return
	}
	red := cands[0]
	for _, sa := range cands[1:] {
		if bytes.Compare(minNonce(sa.ni, sa.nr), minNonce(red.ni, red.nr)) < 0 {
			red = sa
		}
	}
	if !red.initiator {
		return // the peer deletes it
	}
	d.log.Info("ike: duplicate IKE SA from simultaneous initiation, deleting ours", red.logAttrs()...)
	red.deleteIKE(now)
}

// abandonInits ends our IKE_SA_INITs to p that have had no answer yet,
// now that fresh (the peer's initiation, or another of ours) is up: they
// were superseded, not refused, so no error is kept for the peer and the
// retransmissions stop instead of ending in "no answer" a minute later.
func (d *Daemon) abandonInits(p *peer, fresh *ikeSA, now time.Time) {
	for _, sa := range d.sas {
		if sa.peer == p && sa != fresh && sa.state == stInitSent {
			d.log.Debug("ike: our IKE_SA_INIT superseded by an established IKE SA", sa.logAttrs()...)
			d.destroy(sa, "superseded", now)
		}
	}
}

// established reports whether p has an established IKE SA other than except.
func (d *Daemon) established(p *peer, except *ikeSA) bool {
	for _, sa := range d.sas {
		if sa.peer == p && sa != except && sa.state == stEstablished {
			return true
		}
	}
	return false
}

// settingUp reports whether an IKE SA with p is being set up by us.
func (d *Daemon) settingUp(p *peer) bool {
	for _, sa := range d.sas {
		if sa.peer == p && (sa.state == stInitSent || sa.state == stAuthSent) {
			return true
		}
	}
	return false
}

// retireOlder deletes the peer's IKE SAs older than fresh (a
// re-authentication after a key change is up: make-before-break).
func (d *Daemon) retireOlder(p *peer, fresh *ikeSA, now time.Time) {
	for _, sa := range d.sas {
		if sa.peer == p && sa != fresh && sa.state == stEstablished && sa.created.Before(fresh.created) {
			d.log.Info("ike: retiring the IKE SA authenticated with the old key", sa.logAttrs()...)
			sa.deleteIKE(now)
		}
	}
}

// peerBusy reports whether p has an IKE SA being set up or established.
func (d *Daemon) peerBusy(p *peer) bool {
	for _, sa := range d.sas {
		if sa.peer == p && (sa.state == stEstablished || sa.state == stInitSent || sa.state == stAuthSent) {
			return true
		}
	}
	return false
}

// tick starts an IKE SA for each initiating peer that is due and has none
// being set up or established, then runs every SA's timers. d.mu must be
// held; Tick calls it.
func (d *Daemon) tick(now time.Time) {
	if now.Sub(d.lastCertCheck) >= certRecheckInterval {
		d.recheckCertificates(now)
	}
	for _, p := range d.peers {
		switch {
		case p.cfg.Initiate && !now.Before(p.nextAttempt) && !d.peerBusy(p):
			d.initiate(p, now)
		case p.reauth && p.cfg.Initiate && !d.settingUp(p):
			// Make-before-break: a new IKE SA with the new key alongside
			// the old one, which goes once the new one is up (retireOlder).
			p.reauth = false
			d.log.Info("ike: the peer's key changed, authenticating a new IKE SA", "peer", p.cfg.Name)
			if sa := d.initiate(p, now); sa != nil {
				sa.reauth = true
			}
		}
	}
	for _, sa := range d.sas {
		sa.tick(now)
	}
}
