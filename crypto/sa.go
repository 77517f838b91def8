package crypto

import (
	"crypto/cipher"
	"encoding/binary"
	"fmt"
	"sync"
	"sync/atomic"
	"time"

	"github.com/vxswitch/vxswitch/clock"
	"github.com/vxswitch/vxswitch/crypto/gcm"
	"golang.org/x/crypto/chacha20poly1305"
)

// Lifetime limits an SA (RFC 4301 §4.4.2.1). A zero field is unlimited.
// Reaching a soft limit makes NeedsRekey true; reaching a hard limit makes
// Expired true and Seal/Open fail with ErrExpired. Packets and bytes count
// payloads (inner packets) that were sealed or that opened successfully.
// Inbound volume limits are exact; outbound ones may be overshot by the
// number of goroutines sealing at that moment. Seal and Open read the
// clock only every clockEvery (64) packets, while Expired and NeedsRekey
// read it on every call: poll them (the control plane does) for an exact
// hard time limit.
type Lifetime struct {
	SoftPackets, HardPackets uint64
	SoftBytes, HardBytes     uint64
	Soft, Hard               time.Duration // since the SA was created
}

// SAConfig describes one direction of an ESP SA.
type SAConfig struct {
	SPI   uint32
	Suite Suite
	// Keymat is key || salt, Suite.KeymatLen() bytes. The SA keeps its own
	// copy; the caller should wipe its slice when done with it.
	Keymat []byte
	// ESN enables 64-bit extended sequence numbers (RFC 4303 §2.2.1).
	ESN bool
	// ReplayWindow is the anti-replay window in packets (inbound only);
	// 0 means DefaultReplayWindow.
	ReplayWindow int
	Lifetime     Lifetime
	Clock        clock.Clock // nil: the system clock
	// Owner is what the SA belongs to in its user's terms (the data
	// plane's peer), returned by Owner: with it the SADB is the one index
	// from SPI to SA and owner.
	Owner any
}

// Stats is a snapshot of an SA's counters.
type Stats struct {
	Packets uint64 // sealed, or opened successfully
	Bytes   uint64 // payload bytes of those packets

	// Drops, one counter per error value.
	Truncated    uint64 // ErrTruncated
	UnknownSPI   uint64 // ErrUnknownSPI: the packet's SPI is not this SA's
	Auth         uint64 // ErrAuth
	BadPadding   uint64 // ErrBadPadding
	Replay       uint64 // ErrReplay
	TooOld       uint64 // ErrTooOld
	SeqExhausted uint64 // ErrSeqExhausted
	Expired      uint64 // ErrExpired
	ShortBuffer  uint64 // ErrShortBuffer
}

type counters struct {
	packets, bytes atomic.Uint64
	drops          [NumReasons]atomic.Uint64
}

func (c *counters) snapshot() Stats {
	d := func(r Reason) uint64 { return c.drops[r].Load() }
	return Stats{
		Packets: c.packets.Load(), Bytes: c.bytes.Load(),
		Truncated: d(ReasonTruncated), UnknownSPI: d(ReasonUnknownSPI),
		Auth: d(ReasonAuth), BadPadding: d(ReasonBadPadding),
		Replay: d(ReasonReplay), TooOld: d(ReasonTooOld),
		SeqExhausted: d(ReasonSeqExhausted), Expired: d(ReasonExpired),
		ShortBuffer: d(ReasonShortBuffer),
	}
}

// count bumps the counter that belongs to err and returns err.
func (c *counters) count(err error) error {
	if r := ReasonOf(err); r != ReasonOther {
		c.drops[r].Add(1)
	}
	return err
}

// scratch holds the nonce and AAD of one Seal or Open. With crypto/gcm's
// AEAD it is on the stack; arrays passed to the cipher.AEAD interface
// (ChaCha20-Poly1305, crypto/aes's GCM) escape to the heap, so for those it
// comes from a pool (a few ns, no allocation after warm-up).
type scratch struct {
	nonce [12]byte
	aad   [12]byte
}

var scratchPool = sync.Pool{New: func() any { return new(scratch) }}

// sa is the part shared by both directions.
type sa struct {
	spi   uint32
	suite Suite
	esn   bool
	aead  cipher.AEAD
	fast  *gcm.AEAD     // aead when it is crypto/gcm's: called without the interface
	impl  string        // which code aead is: Implementation
	salt  atomic.Uint32 // atomic so that Zero does not race with Seal/Open
	dead  atomic.Bool   // set by Zero
	// timeUp latches a hard time limit once seen.
	timeUp  atomic.Bool
	life    Lifetime
	hardVol bool // a hard packet or byte limit is set
	clock   clock.Clock
	born    time.Time
	ctr     counters

	keyMu  sync.Mutex
	keymat []byte // key || salt, for WiresharkSA; wiped by Zero
}

// newAEAD returns the suite's AEAD and the name of its implementation:
// AES-GCM from crypto/gcm (its own assembly, or the standard library's
// where that does not run; only the standard library's in FIPS mode),
// ChaCha20-Poly1305 from golang.org/x/crypto (refused in FIPS mode).
func newAEAD(s Suite, key []byte) (cipher.AEAD, string, error) {
	switch s {
	case SuiteAES128GCM16, SuiteAES256GCM16:
		a, err := gcm.New(key)
		return a, gcm.Implementation(), err
	case SuiteChaCha20Poly1305:
		if err := FIPSRefuses(s.String()); err != nil {
			return nil, "", err
		}
		a, err := chacha20poly1305.New(key)
		return a, "x/crypto", err
	}
	return nil, "", fmt.Errorf("unknown suite %v", s)
}

func (s *sa) init(cfg *SAConfig) error {
	if cfg.Suite.KeyLen() == 0 {
		return fmt.Errorf("SA spi 0x%08x: unknown suite %v", cfg.SPI, cfg.Suite)
	}
	if len(cfg.Keymat) != cfg.Suite.KeymatLen() {
		return fmt.Errorf("SA spi 0x%08x: %v keymat is %d bytes, want %d", cfg.SPI, cfg.Suite, len(cfg.Keymat), cfg.Suite.KeymatLen())
	}
	if cfg.SPI == 0 {
		return fmt.Errorf("SA spi 0: SPI 0 is the non-ESP marker (RFC 3948)")
	}
	kl := cfg.Suite.KeyLen()
	aead, impl, err := newAEAD(cfg.Suite, cfg.Keymat[:kl])
	if err != nil {
		return fmt.Errorf("SA spi 0x%08x: %w", cfg.SPI, err)
	}
	s.init2(cfg, aead, impl)
	return nil
}

// init2 finishes init with a ready AEAD; tests use it for AES-192.
func (s *sa) init2(cfg *SAConfig, aead cipher.AEAD, impl string) {
	s.spi, s.suite, s.esn, s.aead, s.impl = cfg.SPI, cfg.Suite, cfg.ESN, aead, impl
	s.fast, _ = aead.(*gcm.AEAD)
	kl := len(cfg.Keymat) - 4
	s.salt.Store(binary.BigEndian.Uint32(cfg.Keymat[kl:]))
	s.keymat = append([]byte(nil), cfg.Keymat...)
	s.life = cfg.Lifetime
	s.hardVol = s.life.HardPackets != 0 || s.life.HardBytes != 0
	s.clock = cfg.Clock
	if s.clock == nil {
		s.clock = clock.System{}
	}
	s.born = s.clock.Now()
}

// timeExpired reports whether the SA was zeroed or its hard time limit
// passed. It always reads the clock; a hard time limit it sees sticks in
// timeUp.
func (s *sa) timeExpired() bool {
	if s.dead.Load() || s.timeUp.Load() {
		return true
	}
	if s.life.Hard != 0 && s.clock.Now().Sub(s.born) >= s.life.Hard {
		s.timeUp.Store(true)
		return true
	}
	return false
}

// clockEvery is how often (in packets) Seal and Open read the clock for a
// hard time limit: reading it costs as much as the rest of the per-packet
// overhead together. Expired and NeedsRekey, which the control plane
// polls, read it every time, so an SA past its hard time refuses packets
// from the next poll or within clockEvery packets, whichever comes first.
const clockEvery = 64

// usable is the per-packet check of Zero and the hard time limit; tick
// counts packets (the sequence number).
func (s *sa) usable(tick uint64) bool {
	if s.dead.Load() || s.timeUp.Load() {
		return false
	}
	if s.life.Hard != 0 && tick%clockEvery == 0 && s.clock.Now().Sub(s.born) >= s.life.Hard {
		s.timeUp.Store(true)
		return false
	}
	return true
}

// hardVolume reports whether packets or bytes reached a hard limit.
func (s *sa) hardVolume(packets, bytes uint64) bool {
	l := &s.life
	return (l.HardPackets != 0 && packets >= l.HardPackets) || (l.HardBytes != 0 && bytes >= l.HardBytes)
}

// softReached reports whether a soft limit is reached.
func (s *sa) softReached(packets, bytes uint64) bool {
	l := &s.life
	return (l.SoftPackets != 0 && packets >= l.SoftPackets) ||
		(l.SoftBytes != 0 && bytes >= l.SoftBytes) ||
		(l.Soft != 0 && s.clock.Now().Sub(s.born) >= l.Soft)
}

// fill writes the nonce (salt || iv) and the AAD into sc and returns the AAD.
func (s *sa) fill(sc *scratch, seq, iv uint64) []byte {
	binary.BigEndian.PutUint32(sc.nonce[0:4], s.salt.Load())
	binary.BigEndian.PutUint64(sc.nonce[4:12], iv)
	binary.BigEndian.PutUint32(sc.aad[0:4], s.spi)
	if s.esn {
		binary.BigEndian.PutUint64(sc.aad[4:12], seq)
		return sc.aad[:12]
	}
	binary.BigEndian.PutUint32(sc.aad[4:8], uint32(seq))
	return sc.aad[:8]
}

// SPI returns the SA's SPI.
func (s *sa) SPI() uint32 { return s.spi }

// Born returns when the SA was created, by its clock: the start of its
// lifetimes.
func (s *sa) Born() time.Time { return s.born }

// Lifetime returns the SA's limits.
func (s *sa) Lifetime() Lifetime { return s.life }

// Suite returns the SA's cipher suite.
func (s *sa) Suite() Suite { return s.suite }

// Implementation names the code that seals and opens for the SA: "vaes"
// (crypto/gcm's assembly), "stdlib" (crypto/aes), "stdlib-fips" (the
// standard library's FIPS 140-3 module) or "x/crypto" (ChaCha20-Poly1305).
func (s *sa) Implementation() string { return s.impl }

// ESN reports whether the SA uses extended sequence numbers.
func (s *sa) ESN() bool { return s.esn }

// Zero wipes the SA's key material and makes it refuse every packet with
// ErrExpired. With crypto/gcm's AEAD the expanded key and the powers of H
// are wiped too; the standard library's and x/crypto's AEADs offer no
// wipe, so their key schedules stay in memory until the SA is garbage
// collected: drop every reference to a zeroed SA.
func (s *sa) Zero() {
	s.dead.Store(true)
	s.salt.Store(0)
	s.keyMu.Lock()
	clear(s.keymat)
	if s.fast != nil {
		// A Seal or Open that passed its dead check may still be running:
		// it checks dead again afterwards and discards what it made.
		s.fast.Wipe()
	}
	s.keyMu.Unlock()
}

// OutboundSA seals packets for one peer. Its methods are safe for
// concurrent use: the sequence number is an atomic counter.
type OutboundSA struct {
	sa
	seq    atomic.Uint64 // last reserved sequence number
	maxSeq uint64        // 2^32-1, or 2^64-1 with ESN
}

// NewOutboundSA returns an SA that sends sequence numbers from 1.
func NewOutboundSA(cfg SAConfig) (*OutboundSA, error) {
	o := &OutboundSA{}
	if err := o.init(&cfg); err != nil {
		return nil, fmt.Errorf("outbound %w", err)
	}
	o.setMax()
	return o, nil
}

func (o *OutboundSA) setMax() {
	o.maxSeq = 1<<32 - 1
	if o.esn {
		o.maxSeq = 1<<64 - 1
	}
}

// rekeySeq is where NeedsRekey turns true: 1/16 of the sequence space
// before its end, 2^28 packets without ESN.
func (o *OutboundSA) rekeySeq() uint64 { return o.maxSeq - o.maxSeq/16 }

// NextSeq reserves the next sequence number, for pipelines that number
// packets in order and seal them in parallel with SealSeq. It returns
// ErrSeqExhausted once the counter reached 2^32-1 (2^64-1 with ESN): the
// counter never wraps, so no nonce repeats under the key.
func (o *OutboundSA) NextSeq() (uint64, error) {
	for {
		cur := o.seq.Load()
		if cur >= o.maxSeq {
			return 0, o.ctr.count(ErrSeqExhausted)
		}
		if o.seq.CompareAndSwap(cur, cur+1) {
			return cur + 1, nil
		}
	}
}

// Seal turns the payload in pkt[HeaderLen:HeaderLen+payloadLen] (the inner
// IP packet, already in place) into an ESP packet in place: it reserves a
// sequence number, writes the header, pads, encrypts and appends the ICV.
// cap(pkt) must be at least SealedLen(payloadLen), which HeaderLen +
// payloadLen + MaxTrailerLen always is; the ESP packet (the UDP payload)
// is pkt[:n]. nextHeader is NextHeaderIPv4 or NextHeaderIPv6 in tunnel
// mode. Seal does not keep pkt and does not allocate.
func (o *OutboundSA) Seal(pkt []byte, payloadLen int, nextHeader uint8) (n int, err error) {
	seq, err := o.NextSeq()
	if err != nil {
		return 0, err
	}
	return o.SealSeq(pkt, payloadLen, nextHeader, seq)
}

// SealSeq is Seal with a sequence number reserved by NextSeq. Each number
// must be sealed at most once: a repeat reuses a nonce.
func (o *OutboundSA) SealSeq(pkt []byte, payloadLen int, nextHeader uint8, seq uint64) (int, error) {
	if seq == 0 || seq > o.maxSeq {
		return 0, o.ctr.count(ErrSeqExhausted)
	}
	if !o.usable(seq-1) || (o.hardVol && o.hardVolume(o.ctr.packets.Load(), o.ctr.bytes.Load())) {
		return 0, o.ctr.count(ErrExpired)
	}
	n, err := o.seal(pkt, payloadLen, nextHeader, seq, seq)
	if err != nil {
		return 0, o.ctr.count(err)
	}
	o.ctr.packets.Add(1)
	o.ctr.bytes.Add(uint64(payloadLen))
	return n, nil
}

// seal frames and encrypts with an explicit IV; the published vectors use
// IVs other than the sequence number.
func (o *OutboundSA) seal(pkt []byte, payloadLen int, nextHeader uint8, seq, iv uint64) (int, error) {
	if payloadLen < 0 || payloadLen > cap(pkt) { // also keeps total from overflowing
		return 0, ErrShortBuffer
	}
	pad := PadLen(payloadLen)
	ptLen := payloadLen + pad + 2
	total := HeaderLen + ptLen + ICVLen
	if cap(pkt) < total {
		return 0, ErrShortBuffer
	}
	pkt = pkt[:total]
	binary.BigEndian.PutUint32(pkt[0:4], o.spi)
	binary.BigEndian.PutUint32(pkt[4:8], uint32(seq))
	binary.BigEndian.PutUint64(pkt[8:16], iv)
	tr := pkt[HeaderLen+payloadLen : HeaderLen+ptLen]
	for i := 0; i < pad; i++ {
		tr[i] = byte(i + 1) // RFC 4303 §2.4 default padding 1, 2, 3
	}
	tr[pad] = byte(pad)
	tr[pad+1] = nextHeader

	pt := pkt[HeaderLen : HeaderLen+ptLen]
	if o.fast != nil {
		var sc scratch // stays on the stack: no interface call
		o.fast.Seal(pt[:0], sc.nonce[:], pt, o.fill(&sc, seq, iv))
		// Zero marks the SA dead before it wipes the key, and on amd64
		// (the only place fast is set) stores are seen in order: if the
		// assembly read a wiped byte, dead reads true here.
		if o.dead.Load() {
			return 0, ErrExpired
		}
		return total, nil
	}
	sc := scratchPool.Get().(*scratch)
	o.aead.Seal(pt[:0], sc.nonce[:], pt, o.fill(sc, seq, iv))
	scratchPool.Put(sc)
	if o.dead.Load() { // Zero ran: the salt read may have been its 0
		return 0, ErrExpired
	}
	return total, nil
}

// NeedsRekey reports whether a soft lifetime is reached, the sequence
// numbers are near exhaustion (the last 1/16 of their space), or the SA
// expired: time to negotiate a new SA.
func (o *OutboundSA) NeedsRekey() bool {
	return o.Expired() || o.softReached(o.ctr.packets.Load(), o.ctr.bytes.Load()) || o.seq.Load() >= o.rekeySeq()
}

// Expired reports whether the SA reached a hard lifetime or was zeroed; it
// then refuses every packet with ErrExpired.
func (o *OutboundSA) Expired() bool {
	return o.timeExpired() || o.hardVolume(o.ctr.packets.Load(), o.ctr.bytes.Load())
}

// Stats returns a snapshot of the SA's counters.
func (o *OutboundSA) Stats() Stats { return o.ctr.snapshot() }

// Seq returns the last sequence number reserved (0 before the first).
func (o *OutboundSA) Seq() uint64 { return o.seq.Load() }

// InboundSA opens packets from one peer. Open is safe for concurrent use:
// decryption runs in parallel; the replay check before decryption reads
// the window without a lock, and the update after it takes a small mutex.
type InboundSA struct {
	sa
	mu     sync.Mutex // serialises replay window updates, guards packets and bytes
	replay *replayWindow
	// packets and bytes count under mu, which Open takes anyway: cheaper
	// than two more atomic adds, and it makes hard volume limits exact.
	packets, bytes uint64
	owner          any
}

// Owner is SAConfig.Owner.
func (in *InboundSA) Owner() any { return in.owner }

// NewInboundSA returns an SA with an empty replay window of
// cfg.ReplayWindow packets.
func NewInboundSA(cfg SAConfig) (*InboundSA, error) {
	in := &InboundSA{}
	if err := in.init(&cfg); err != nil {
		return nil, fmt.Errorf("inbound %w", err)
	}
	w, err := newReplayWindow(cfg.ReplayWindow)
	if err != nil {
		return nil, fmt.Errorf("inbound SA spi 0x%08x: %w", cfg.SPI, err)
	}
	in.replay = w
	in.replay.markZero()
	in.owner = cfg.Owner
	return in, nil
}

// Open authenticates and decrypts the ESP packet pkt (the UDP payload
// without a marker) in place and returns the payload (the inner packet, a
// subslice of pkt) and the next header value. The anti-replay window is
// checked before decryption and advanced only after the ICV verified and
// the padding checked (RFC 4303 §3.4.3), so forged, broken and replayed
// packets never move it. On error the content of pkt is undefined (crypto/
// aes's GCM clears it, crypto/gcm leaves it). Open does not keep pkt and
// does not allocate.
//
// A payload with next header NextHeaderNoNext is a dummy packet that the
// caller drops.
func (in *InboundSA) Open(pkt []byte) (payload []byte, nextHeader uint8, err error) {
	payload, nextHeader, err = in.open(pkt)
	if err != nil {
		return nil, 0, in.ctr.count(err)
	}
	return payload, nextHeader, nil
}

func (in *InboundSA) open(pkt []byte) ([]byte, uint8, error) {
	if len(pkt) < MinPacketLen {
		return nil, 0, ErrTruncated
	}
	if binary.BigEndian.Uint32(pkt[0:4]) != in.spi {
		return nil, 0, ErrUnknownSPI
	}
	lo := binary.BigEndian.Uint32(pkt[4:8])
	if !in.usable(uint64(lo)) {
		return nil, 0, ErrExpired
	}

	// Lock-free pre-check; update below checks again under the lock.
	seq, ok := uint64(lo), true
	if in.esn {
		seq, ok = in.replay.infer(lo)
	}
	if !ok {
		return nil, 0, ErrTooOld
	}
	if err := in.replay.check(seq); err != nil {
		return nil, 0, err
	}

	ct, iv := pkt[HeaderLen:], binary.BigEndian.Uint64(pkt[8:16])
	var pt []byte
	var err error
	if in.fast != nil {
		var sc scratch // stays on the stack: no interface call
		pt, err = in.fast.Open(ct[:0], sc.nonce[:], ct, in.fill(&sc, seq, iv))
	} else {
		sc := scratchPool.Get().(*scratch)
		pt, err = in.aead.Open(ct[:0], sc.nonce[:], ct, in.fill(sc, seq, iv))
		scratchPool.Put(sc)
	}
	// Zero may have wiped the key under Open (see Seal): what it opened
	// then, or refused, is not the peer's doing.
	if in.dead.Load() {
		return nil, 0, ErrExpired
	}
	if err != nil {
		return nil, 0, ErrAuth
	}

	n := len(pt)
	pad := int(pt[n-2])
	if pad+2 > n {
		return nil, 0, ErrBadPadding
	}
	for i, b := range pt[n-2-pad : n-2] {
		if b != byte(i+1) {
			return nil, 0, ErrBadPadding
		}
	}

	payload := pt[:n-2-pad]
	in.mu.Lock()
	if in.hardVol && in.hardVolume(in.packets, in.bytes) {
		err = ErrExpired
	} else if err = in.replay.update(seq); err == nil {
		in.packets++
		in.bytes += uint64(len(payload))
	}
	in.mu.Unlock()
	if err != nil {
		return nil, 0, err
	}
	return payload, pt[n-1], nil
}

// NeedsRekey reports whether a soft lifetime is reached, the peer's
// sequence numbers are near exhaustion, or the SA expired.
func (in *InboundSA) NeedsRekey() bool {
	last := in.replay.last.Load()
	lim := uint64(1<<32 - 1)
	if in.esn {
		lim = 1<<64 - 1
	}
	p, b := in.volume()
	return in.Expired() || in.softReached(p, b) || last >= lim-lim/16
}

func (in *InboundSA) volume() (packets, bytes uint64) {
	in.mu.Lock()
	defer in.mu.Unlock()
	return in.packets, in.bytes
}

// Expired reports whether the SA reached a hard lifetime or was zeroed; it
// then refuses every packet with ErrExpired.
func (in *InboundSA) Expired() bool {
	return in.timeExpired() || in.hardVolume(in.volume())
}

// Stats returns a snapshot of the SA's counters.
func (in *InboundSA) Stats() Stats {
	st := in.ctr.snapshot()
	st.Packets, st.Bytes = in.volume()
	return st
}

// HighestSeq returns the highest authenticated sequence number so far.
func (in *InboundSA) HighestSeq() uint64 {
	return in.replay.last.Load()
}
