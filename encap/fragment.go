package encap

import (
	"encoding/binary"
	"errors"
	"fmt"
	"hash/maphash"
	"math/rand/v2"
	"net/netip"
	"sync/atomic"
)

// Errors returned by FragmentIPv4 and FragmentIPv6. ErrDontFragment and
// ErrMalformed are returned bare (no allocation) since they depend on the
// packet; the others are caller mistakes and are wrapped with the values.
var (
	// ErrDontFragment: the IPv4 packet is larger than the MTU and has DF
	// set. Drop it (a router would send ICMP "fragmentation needed").
	ErrDontFragment = errors.New("packet exceeds MTU and DF is set")
	// ErrFragmentBuffers: out or sizes has fewer entries than fragments, or
	// a buffer in out is shorter than its fragment. Size them with
	// FragmentCount and give every buffer at least mtu bytes.
	ErrFragmentBuffers = errors.New("not enough fragment buffers")
	// ErrMTUTooSmall: the MTU leaves fewer than 8 payload bytes per
	// fragment after the headers.
	ErrMTUTooSmall = errors.New("MTU too small to fragment")
	// ErrNotFragmentable: an IPv6 packet that already carries a fragment
	// header, or whose unfragmentable part cannot be parsed or is too long.
	ErrNotFragmentable = errors.New("packet cannot be fragmented")
)

// FragmentCount returns the number of fragments FragmentIPv4 or
// FragmentIPv6 (chosen by the version nibble) would write for pkt and mtu:
// 1 if the packet fits. It returns the same errors as those functions,
// except ErrFragmentBuffers.
func FragmentCount(pkt []byte, mtu int) (int, error) {
	if len(pkt) == 0 {
		return 0, ErrMalformed
	}
	switch pkt[0] >> 4 {
	case IPv4Version:
		p, err := planIPv4(pkt, mtu)
		return p.n, err
	case IPv6Version:
		p, _, _, err := planIPv6(pkt, mtu)
		return p.n, err
	}
	return 0, ErrMalformed
}

// fragPlan is the shape of a fragmentation: n fragments, the first carrying
// firstData payload bytes after a header of firstHdr bytes, every other one
// restData bytes (the last one the remainder) after restHdr bytes.
type fragPlan struct {
	n                   int
	total               int // bytes of the whole packet (without link padding)
	firstHdr, restHdr   int
	firstData, restData int
}

func (p *fragPlan) size(i int) int {
	if p.n == 1 {
		return p.total
	}
	if i == 0 {
		return p.firstHdr + p.firstData
	}
	payload := p.total - p.firstHdr
	if i == p.n-1 {
		return p.restHdr + payload - p.firstData - (p.n-2)*p.restData
	}
	return p.restHdr + p.restData
}

func (p *fragPlan) check(out [][]byte, sizes []int, mtu int) error {
	if len(out) < p.n || len(sizes) < p.n {
		return fmt.Errorf("%w: %d fragments, %d buffers, %d sizes", ErrFragmentBuffers, p.n, len(out), len(sizes))
	}
	for i := 0; i < p.n; i++ {
		if len(out[i]) < p.size(i) {
			return fmt.Errorf("%w: buffer %d has %d bytes, fragment needs %d (mtu %d)", ErrFragmentBuffers, i, len(out[i]), p.size(i), mtu)
		}
	}
	return nil
}

func planIPv4(pkt []byte, mtu int) (fragPlan, error) {
	ip := IPv4(pkt)
	if !ip.IsValid() {
		return fragPlan{}, ErrMalformed
	}
	p := fragPlan{total: int(ip.TotalLen())}
	if p.total <= mtu {
		p.n = 1
		return p, nil
	}
	if ip.Flags()&IPv4FlagDF != 0 {
		return fragPlan{}, ErrDontFragment
	}
	copied, ok := ipv4CopiedOptions(ip.Options(), nil)
	if !ok {
		return fragPlan{}, ErrMalformed
	}
	p.firstHdr = ip.HeaderLen()
	p.restHdr = IPv4MinHeaderLen + (copied+3)&^3
	p.firstData = (mtu - p.firstHdr) &^ 7
	p.restData = (mtu - p.restHdr) &^ 7
	if p.firstData < 8 || p.restData < 8 {
		return fragPlan{}, fmt.Errorf("%w: mtu %d, IPv4 header %d bytes", ErrMTUTooSmall, mtu, p.firstHdr)
	}
	payload := p.total - p.firstHdr
	p.n = 1 + (payload-p.firstData+p.restData-1)/p.restData
	return p, nil
}

// ipv4CopiedOptions walks IPv4 options and returns the total length of the
// options whose copied flag (RFC 791 §3.1, the high bit of the type) is set,
// writing them to dst when dst is not nil. ok is false for malformed options.
func ipv4CopiedOptions(opts, dst []byte) (n int, ok bool) {
	for i := 0; i < len(opts); {
		t := opts[i]
		switch t {
		case 0: // end of option list
			return n, true
		case 1: // no operation (not copied)
			i++
			continue
		}
		if i+1 >= len(opts) {
			return 0, false
		}
		l := int(opts[i+1])
		if l < 2 || i+l > len(opts) {
			return 0, false
		}
		if t&0x80 != 0 {
			if dst != nil {
				copy(dst[n:], opts[i:i+l])
			}
			n += l
		}
		i += l
	}
	return n, true
}

// FragmentIPv4 splits the IPv4 datagram pkt into fragments of at most mtu
// bytes per RFC 791 §3.2, writing fragment i to out[i][:sizes[i]], and
// returns the number of fragments n.
//
//   - Each out[i] is a caller-owned buffer with at least mtu bytes (exactly:
//     at least the fragment's size); to leave headroom for headers that will
//     be put in front (ESP, outer IP/UDP), pass out[i] = buf[headroom:].
//     out and sizes must have at least FragmentCount(pkt, mtu) entries.
//   - Every fragment gets identification id, a payload that is a multiple of
//     8 bytes (except the last), MF on all but the last, and a fresh header
//     checksum. The first fragment carries all options; the others carry only
//     the options whose copied flag is set, padded with end-of-options to a
//     4-byte boundary.
//   - pkt may itself be a fragment: offsets continue from its offset and the
//     last fragment keeps its MF flag (RFC 791 allows refragmenting). Pass its
//     own ID then.
//   - If the packet already fits (total length <= mtu) it is copied unchanged,
//     its own ID included, to out[0] and n is 1. Callers on the hot path check
//     the length first and skip the copy.
//   - DF set and total length > mtu returns ErrDontFragment; a malformed
//     header or options ErrMalformed; bytes past the total length (link
//     padding) are ignored.
//
// It does not allocate and does not modify pkt. Nothing is written when an
// error is returned.
func FragmentIPv4(pkt []byte, mtu int, id uint16, out [][]byte, sizes []int) (n int, err error) {
	p, err := planIPv4(pkt, mtu)
	if err != nil {
		return 0, err
	}
	if err := p.check(out, sizes, mtu); err != nil {
		return 0, err
	}
	pkt = pkt[:p.total]
	if p.n == 1 {
		sizes[0] = copy(out[0], pkt)
		return 1, nil
	}
	ip := IPv4(pkt)
	baseOff := ip.FragmentOffset()
	lastMF := ip.Flags() & IPv4FlagMF
	flags := ip.Flags() &^ IPv4FlagMF // DF is clear here; keep the reserved bit as it was

	// Header templates with total length, flags/offset and checksum zero,
	// and their partial sums: each fragment's checksum is the template's
	// sum plus its length and flags/offset (the same value
	// IPv4.CalculateChecksum gives, without summing the header again).
	var first, rest [IPv4MaxHeaderLen]byte
	copy(first[:], pkt[:p.firstHdr])
	IPv4(first[:]).SetTotalLen(0)
	IPv4(first[:]).SetFlagsOffset(0, 0)
	IPv4(first[:]).SetChecksum(0)
	IPv4(first[:]).SetID(id)
	copy(rest[:], first[:IPv4MinHeaderLen])
	if p.firstHdr > IPv4MinHeaderLen {
		ipv4CopiedOptions(ip.Options(), rest[IPv4MinHeaderLen:])
		rest[ipv4VersIHL] = IPv4Version<<4 | byte(p.restHdr/4)
	}
	firstSum := Checksum(first[:p.firstHdr], 0)
	restSum := Checksum(rest[:p.restHdr], 0)

	payload := pkt[p.firstHdr:]
	off := 0
	for i := 0; i < p.n; i++ {
		f := out[i]
		hl, dl, sum := p.restHdr, p.restData, restSum
		if i == 0 {
			hl, dl, sum = p.firstHdr, p.firstData, firstSum
			copy(f, first[:hl])
		} else {
			copy(f, rest[:hl])
		}
		mf := IPv4FlagMF
		if i == p.n-1 {
			dl = len(payload) - off
			mf = lastMF
		}
		copy(f[hl:], payload[off:off+dl])
		tl := uint16(hl + dl)
		fo := flags | mf | uint16((baseOff+off)/8)&ipv4OffMask
		binary.BigEndian.PutUint16(f[ipv4TotalLen:], tl)
		binary.BigEndian.PutUint16(f[ipv4FlagsOff:], fo)
		binary.BigEndian.PutUint16(f[ipv4Checksum:], ^ChecksumCombine(ChecksumCombine(sum, tl), fo))
		sizes[i] = hl + dl
		off += dl
	}
	return p.n, nil
}

// ipv6UnfragmentableLen returns the length of the unfragmentable part of
// the IPv6 packet pkt (RFC 8200 §4.5) and the offset of the Next Header
// field that names the first fragmentable header. It follows Linux
// (ip6_find_1stfragopt): Hop-by-Hop and Routing headers, and Destination
// Options headers before a Routing header (or with none after them), are
// unfragmentable. found reports a fragment header at the returned length.
// With toFragment (for reassembly) the walk goes on through every
// Hop-by-Hop, Routing and Destination Options header to a fragment header.
func ipv6UnfragmentableLen(pkt []byte, toFragment bool) (n, nhOff int, found, ok bool) {
	n, nhOff = IPv6HeaderLen, ipv6NextHeader
	routing := false
	for hops := 0; ; hops++ {
		switch pkt[nhOff] {
		case ProtoIPv6Frag:
			return n, nhOff, true, true
		case 0, 43, 60: // Hop-by-Hop, Routing, Destination Options
			if pkt[nhOff] == 60 && routing && !toFragment {
				return n, nhOff, false, true
			}
			if pkt[nhOff] == 43 {
				routing = true
			}
			if hops >= 8 || n+2 > len(pkt) {
				return 0, 0, false, false
			}
			l := (int(pkt[n+1]) + 1) * 8
			if n+l > len(pkt) {
				return 0, 0, false, false
			}
			nhOff = n
			n += l
		default:
			return n, nhOff, false, true
		}
	}
}

// maxIPv6Unfragmentable bounds the unfragmentable part (fixed header and
// extension headers) that FragmentIPv6 copies and the Reassembler keeps.
const maxIPv6Unfragmentable = reasmHeadroom

func planIPv6(pkt []byte, mtu int) (fragPlan, int, int, error) {
	ip := IPv6(pkt)
	if !ip.IsValid() {
		return fragPlan{}, 0, 0, ErrMalformed
	}
	p := fragPlan{total: IPv6HeaderLen + int(ip.PayloadLen())}
	if p.total <= mtu {
		p.n = 1
		return p, 0, 0, nil
	}
	pkt = pkt[:p.total]
	u, nhOff, found, ok := ipv6UnfragmentableLen(pkt, false)
	if !ok || found || u > maxIPv6Unfragmentable {
		return fragPlan{}, 0, 0, ErrNotFragmentable
	}
	p.firstHdr = u + IPv6FragmentHeaderLen
	p.restHdr = p.firstHdr
	p.firstData = (mtu - p.firstHdr) &^ 7
	p.restData = p.firstData
	if p.firstData < 8 {
		return fragPlan{}, 0, 0, fmt.Errorf("%w: mtu %d, IPv6 headers %d bytes", ErrMTUTooSmall, mtu, p.firstHdr)
	}
	payload := p.total - u
	p.n = (payload + p.firstData - 1) / p.firstData
	// size() measures payload from firstHdr; account for the inserted header.
	p.total += IPv6FragmentHeaderLen
	return p, u, nhOff, nil
}

// FragmentIPv6 splits the IPv6 packet pkt into fragments of at most mtu
// bytes per RFC 8200 §4.5, inserting a fragment header with identification
// id after the unfragmentable part, writing fragment i to out[i][:sizes[i]],
// and returns the number of fragments n. Buffers, sizes, headroom and the
// fits-already copy work as for FragmentIPv4.
//
// Limits: the unfragmentable part (fixed header, Hop-by-Hop, Routing and
// Destination Options headers before a Routing header, as Linux counts
// them) may be at most 256 bytes; a packet that already has a fragment
// header is refused with ErrNotFragmentable (IPv6 is fragmented once, at the
// source). The MTU is not checked against IPv6's 1280-byte minimum, so a
// tunnel may use smaller inner MTUs.
//
// It does not allocate and does not modify pkt.
func FragmentIPv6(pkt []byte, mtu int, id uint32, out [][]byte, sizes []int) (n int, err error) {
	p, u, nhOff, err := planIPv6(pkt, mtu)
	if err != nil {
		return 0, err
	}
	if err := p.check(out, sizes, mtu); err != nil {
		return 0, err
	}
	if p.n == 1 {
		sizes[0] = copy(out[0], pkt[:p.total])
		return 1, nil
	}
	pkt = pkt[:p.total-IPv6FragmentHeaderLen]
	fh := IPv6FragmentFields{NextHeader: pkt[nhOff], ID: id}
	payload := pkt[u:]
	off := 0
	for i := 0; i < p.n; i++ {
		f := out[i]
		dl := p.firstData
		fh.More = true
		if i == p.n-1 {
			dl = len(payload) - off
			fh.More = false
		}
		copy(f, pkt[:u])
		f[nhOff] = ProtoIPv6Frag
		fh.Offset = off
		fh.Encode(f[u:])
		copy(f[p.firstHdr:], payload[off:off+dl])
		IPv6(f).SetPayloadLen(uint16(p.firstHdr + dl - IPv6HeaderLen))
		sizes[i] = p.firstHdr + dl
		off += dl
	}
	return p.n, nil
}

// idBuckets is the number of independent counters of an IDGenerator.
const idBuckets = 1024

// idSeed keys the hash that spreads destinations over counters and gives
// each destination its random starting point; random per process.
var idSeed = maphash.MakeSeed()

// IDGenerator hands out fragment identifications per destination: each
// destination hashes to one of 1024 counters and to a random base, and Next
// returns base + counter, the counter advancing by one per call. A
// destination's IDs therefore repeat only after 2^16 (IPv4) or 2^32 (IPv6)
// calls for destinations sharing its counter: at the default 500 ms
// reassembly timeout that is over 130,000 fragmented datagrams per second to
// one peer (about 9 Gbit/s of jumbo frames) before an IPv4 ID can recur
// within the timeout. Starting points are random per process (and per
// generator from NewIDGenerator), so a restart does not replay IDs.
//
// The zero value is ready to use. It is safe for concurrent use and does
// not allocate.
type IDGenerator struct {
	salt uint64
	ctr  [idBuckets]atomic.Uint32
}

// NewIDGenerator returns an IDGenerator with its own random salt.
func NewIDGenerator() *IDGenerator {
	return &IDGenerator{salt: rand.Uint64()}
}

// Next returns the next identification for datagrams to dst. IPv4 callers
// use the low 16 bits.
func (g *IDGenerator) Next(dst netip.Addr) uint32 {
	a := dst.As16()
	h := maphash.Bytes(idSeed, a[:]) ^ g.salt
	return uint32(h) + g.ctr[(h>>32)%idBuckets].Add(1)
}
