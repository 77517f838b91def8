package encap

import (
	"encoding/binary"
	"errors"
	"math/rand/v2"
	"time"

	"github.com/vxswitch/vxswitch/clock"
)

// Errors returned by Reassembler.Add when it drops a fragment, and with it
// the datagram the fragment belongs to. They are bare sentinels (Add never
// allocates): count them and go on with the next packet. Add also returns
// ErrMalformed for a packet that is not a well-formed IPv4 or IPv6 packet or
// fragment.
var (
	// ErrFragmentOverlap: the fragment overlaps one already received (and is
	// not an exact duplicate), or contradicts the datagram's end; RFC 5722
	// policy drops the whole datagram.
	ErrFragmentOverlap = errors.New("overlapping fragment, datagram dropped")
	// ErrFragmentTooBig: the datagram would exceed MaxDatagram (or 65535
	// bytes of IP length).
	ErrFragmentTooBig = errors.New("reassembled datagram too big, dropped")
	// ErrTooManyFragments: the datagram already holds MaxFragments fragments.
	ErrTooManyFragments = errors.New("too many fragments, datagram dropped")
	// ErrTinyFragment: a first fragment (offset 0, more to come) shorter than
	// MinFirstFragment (RFC 1858).
	ErrTinyFragment = errors.New("tiny first fragment, datagram dropped")
)

// Reassembly defaults, used for zero fields of ReassemblyConfig.
const (
	// DefaultMaxDatagram holds a 9216-byte jumbo frame with the tunnel-inner
	// IPv6, UDP and VXLAN headers and room to spare.
	DefaultMaxDatagram       = 9300
	DefaultMaxDatagrams      = 64
	DefaultMaxFragments      = 64
	DefaultReassemblyTimeout = 500 * time.Millisecond
	DefaultMinFirstFragment  = 64

	// maxIPDatagram is the largest IPv6 packet without jumbograms.
	maxIPDatagram = 0xffff + IPv6HeaderLen
	// reasmHeadroom is room in front of each datagram's payload for its
	// header: an IPv4 header with options, or an IPv6 unfragmentable part.
	reasmHeadroom = 256
)

// ReassemblyConfig bounds a Reassembler. Zero fields take the defaults.
type ReassemblyConfig struct {
	// MaxDatagram is the largest reassembled datagram, header included
	// (default 9300; at most 65575).
	MaxDatagram int
	// MaxDatagrams is the number of datagrams in progress at once (default
	// 64); a new one beyond it evicts the oldest.
	MaxDatagrams int
	// MaxFragments is the most fragments one datagram may have (default 64).
	MaxFragments int
	// SourceShare is the most datagrams in progress from one source
	// address (default a quarter of MaxDatagrams, at least 1): a new one
	// beyond it evicts that source's own oldest, so one busy or hostile
	// peer cannot evict every other peer's datagrams.
	SourceShare int
	// MaxMemory bounds the fragment payload bytes held across all datagrams
	// in progress (default and minimum: MaxDatagram; at most
	// MaxDatagrams*MaxDatagram, which is also what is preallocated). A
	// fragment that would exceed it evicts the oldest other datagrams.
	MaxMemory int
	// Timeout is how long a datagram may wait for its fragments, from its
	// first fragment's arrival (default 500ms).
	Timeout time.Duration
	// MinFirstFragment is the least payload an offset-0 fragment with more
	// to come must carry (RFC 1858 tiny-fragment guard; default 64 bytes,
	// negative disables).
	MinFirstFragment int
	// Clock drives the timeout (default clock.System).
	Clock clock.Clock
}

func (c ReassemblyConfig) withDefaults() ReassemblyConfig {
	if c.MaxDatagram <= 0 {
		c.MaxDatagram = DefaultMaxDatagram
	}
	c.MaxDatagram = min(max(c.MaxDatagram, IPv6HeaderLen+8), maxIPDatagram)
	if c.MaxDatagrams <= 0 {
		c.MaxDatagrams = DefaultMaxDatagrams
	}
	if c.SourceShare <= 0 {
		c.SourceShare = max(1, min(c.MaxDatagrams, 1<<20)/4)
	}
	c.MaxDatagrams = min(c.MaxDatagrams, 1<<20)
	if c.MaxFragments <= 0 {
		c.MaxFragments = DefaultMaxFragments
	}
	c.MaxFragments = min(c.MaxFragments, maxIPDatagram/8+1)
	if c.MaxMemory <= 0 {
		c.MaxMemory = c.MaxDatagrams * c.MaxDatagram
	}
	c.MaxMemory = min(max(c.MaxMemory, c.MaxDatagram), c.MaxDatagrams*c.MaxDatagram)
	if c.Timeout <= 0 {
		c.Timeout = DefaultReassemblyTimeout
	}
	if c.MinFirstFragment == 0 {
		c.MinFirstFragment = DefaultMinFirstFragment
	}
	if c.Clock == nil {
		c.Clock = clock.System{}
	}
	return c
}

// ReassemblyStats counts what a Reassembler did. Drop counters count events:
// one per refused fragment, each also dropping the datagram it belonged to
// (if one was in progress); Timeout and NoMemory count datagrams.
type ReassemblyStats struct {
	Fragments         uint64 // fragments handed to Add (parsed as IPv4/IPv6 fragments)
	Completed         uint64 // datagrams reassembled (IPv6 atomic fragments included)
	Duplicates        uint64 // exact duplicate fragments, ignored
	Timeout           uint64 // datagrams dropped after Timeout
	Overlap           uint64 // overlapping or inconsistent fragments
	TooBig            uint64 // fragments beyond MaxDatagram or the IP length limit
	TooManyFragments  uint64 // fragments beyond MaxFragments
	NoMemory          uint64 // datagrams evicted, oldest first, for MaxDatagrams or MaxMemory
	SourceShare       uint64 // datagrams evicted because their source was at its SourceShare
	Malformed         uint64 // packets that are not well-formed IP fragments
	TinyFirstFragment uint64 // first fragments shorter than MinFirstFragment

	InProgress  int // datagrams waiting for fragments now
	MemoryInUse int // fragment payload bytes held now
}

// fragKey identifies a datagram: source (words 0-1), destination (2-3),
// and identification, protocol (IPv4 only) and IP version (4). Words
// compare and hash faster than bytes.
type fragKey [5]uint64

func fragKeyWord4(id uint32, proto, version uint8) uint64 {
	return uint64(id) | uint64(proto)<<32 | uint64(version)<<40
}

type fragRange struct{ start, end int32 }

type reasmSlot struct {
	key     fragKey
	hash    uint64
	created time.Time
	// prev and next link the slots in use by age, oldest at Reassembler.head.
	prev, next int32
	used       bool
	v6         bool
	nh         uint8 // IPv6: the fragmentable part's first header
	nhOff      int32 // IPv6: offset of the Next Header field to patch
	hdrLen     int32 // bytes of header before the payload; 0 until offset 0 arrives
	total      int32 // payload length, -1 until the last fragment arrives
	maxEnd     int32 // largest fragment end seen
	recvd      int32 // payload bytes received (fragments never overlap)
	frags      []fragRange
	buf        []byte // reasmHeadroom + MaxDatagram bytes
}

// Reassembler reassembles IPv4 and IPv6 fragments into datagrams, with the
// policy of RFC 5722 (as Linux and gVisor apply it to IPv4 too): fragments
// may arrive in any order, exact duplicates are ignored, and any overlap
// drops the whole datagram. It tracks each datagram's received fragments in
// offset order; the gaps between them are RFC 815's holes, and a fragment is
// accepted only if it fits a hole. Datagrams are keyed by source,
// destination, protocol and identification (IPv6: without the protocol).
//
// All storage (MaxDatagrams buffers of MaxDatagram bytes and their fragment
// tables) is allocated by NewReassembler; Add and Expire never allocate.
//
// A Reassembler is not safe for concurrent use: give each receive goroutine
// its own, or guard it with a mutex.
type Reassembler struct {
	cfg     ReassemblyConfig
	clock   clock.Clock
	slots   []reasmSlot
	free    []int32 // stack of free slot indexes
	head    int32   // oldest slot in use, -1 if none
	tail    int32   // newest slot in use, -1 if none
	table   []int32 // open-addressing hash table of slot indexes, -1 empty
	mask    uint64
	seed    uint64
	mem     int
	scratch []byte    // output for IPv6 atomic fragments
	now     time.Time // the clock's last reading
	hot     int32     // the slot the last fragment went to, -1 if none
	stats   ReassemblyStats
}

// NewReassembler returns a Reassembler bounded by cfg (zero fields take the
// defaults), with all its storage allocated.
func NewReassembler(cfg ReassemblyConfig) *Reassembler {
	cfg = cfg.withDefaults()
	r := &Reassembler{
		cfg:     cfg,
		clock:   cfg.Clock,
		slots:   make([]reasmSlot, cfg.MaxDatagrams),
		free:    make([]int32, cfg.MaxDatagrams),
		head:    -1,
		tail:    -1,
		seed:    rand.Uint64(),
		scratch: make([]byte, cfg.MaxDatagram),
		now:     cfg.Clock.Now(),
		hot:     -1,
	}
	bufSize := reasmHeadroom + cfg.MaxDatagram
	store := make([]byte, cfg.MaxDatagrams*bufSize)
	ranges := make([]fragRange, cfg.MaxDatagrams*cfg.MaxFragments)
	for i := range r.slots {
		s := &r.slots[i]
		s.buf = store[i*bufSize : (i+1)*bufSize : (i+1)*bufSize]
		s.frags = ranges[i*cfg.MaxFragments : i*cfg.MaxFragments : (i+1)*cfg.MaxFragments]
		r.free[i] = int32(cfg.MaxDatagrams - 1 - i)
	}
	n := 16
	for n < 2*cfg.MaxDatagrams {
		n *= 2
	}
	r.table = make([]int32, n)
	for i := range r.table {
		r.table[i] = -1
	}
	r.mask = uint64(n - 1)
	return r
}

// Config returns the configuration in effect, defaults filled in.
func (r *Reassembler) Config() ReassemblyConfig { return r.cfg }

// Stats returns the counters and the current occupancy.
func (r *Reassembler) Stats() ReassemblyStats {
	s := r.stats
	s.InProgress = len(r.slots) - len(r.free)
	s.MemoryInUse = r.mem
	return s
}

// Expire reads the clock and drops the datagrams whose Timeout has passed.
// Add does the same whenever a fragment starts a new datagram; call Expire
// as well once per receive batch or timer tick, so that datagrams time out
// when no new ones start.
func (r *Reassembler) Expire() {
	r.now = r.clock.Now()
	r.expire()
}

func (r *Reassembler) expire() {
	for r.head >= 0 && r.now.Sub(r.slots[r.head].created) >= r.cfg.Timeout {
		r.drop(r.head)
		r.stats.Timeout++
	}
}

// Add takes one IPv4 or IPv6 packet, normally a fragment, and returns the
// reassembled datagram when this fragment completes one: the first
// fragment's header (IPv4: all its options; IPv6: its unfragmentable part)
// and the whole payload, with the total length or payload length and the
// IPv4 header checksum fixed, MF and the offset cleared (DF and the reserved
// bit kept as they were), and for IPv6 the fragment header removed. The
// returned slice is the Reassembler's storage and stays valid only until the
// next call to Add.
//
// While the datagram is incomplete, and for an exact duplicate, Add returns
// (nil, nil). A fragment that is dropped returns one of the errors above (or
// ErrMalformed), and is counted in Stats. A packet that is not a fragment
// (IPv4 without MF and offset, IPv6 without a fragment header) is returned
// as it is, as a slice of pkt trimmed to its IP length; an IPv6 atomic
// fragment (offset 0, M clear; RFC 6946) is returned at once with its
// fragment header removed.
//
// Add copies what it keeps; it does not keep pkt.
//
// Time: reading a clock costs as much as copying a few kilobytes, so Add
// reads it only when a fragment starts a new datagram, to stamp it and to
// expire the datagrams whose Timeout has passed. A fragment of a datagram
// already in progress joins it without a clock reading, so a datagram is
// dropped at the first Expire or new datagram after its deadline, not at
// the deadline itself; call Expire regularly (once per receive batch is
// cheap) to keep that close.
func (r *Reassembler) Add(pkt []byte) (datagram []byte, err error) {
	if len(pkt) == 0 {
		r.stats.Malformed++
		return nil, ErrMalformed
	}
	switch pkt[0] >> 4 {
	case IPv4Version:
		return r.add4(pkt)
	case IPv6Version:
		return r.add6(pkt)
	}
	r.stats.Malformed++
	return nil, ErrMalformed
}

func (r *Reassembler) add4(pkt []byte) ([]byte, error) {
	ip := IPv4(pkt)
	if !ip.IsValid() || !ip.ChecksumValid() {
		r.stats.Malformed++
		return nil, ErrMalformed
	}
	pkt = pkt[:ip.TotalLen()]
	if !ip.IsFragment() {
		return pkt, nil
	}
	k := fragKey{
		0: uint64(binary.LittleEndian.Uint32(pkt[ipv4Src:])),
		2: uint64(binary.LittleEndian.Uint32(pkt[ipv4Dst:])),
		4: fragKeyWord4(uint32(ip.ID()), ip.Protocol(), IPv4Version),
	}
	hl := ip.HeaderLen()
	r.stats.Fragments++
	return r.insert(&k, &frag{
		off:  ip.FragmentOffset(),
		more: ip.More(),
		data: pkt[hl:],
		hdr:  pkt[:hl],
	})
}

func (r *Reassembler) add6(pkt []byte) ([]byte, error) {
	ip := IPv6(pkt)
	if !ip.IsValid() {
		r.stats.Malformed++
		return nil, ErrMalformed
	}
	pkt = pkt[:IPv6HeaderLen+int(ip.PayloadLen())]
	u, nhOff, found, ok := ipv6UnfragmentableLen(pkt, true)
	if !ok {
		r.stats.Malformed++
		return nil, ErrMalformed
	}
	if !found {
		return pkt, nil
	}
	fh := IPv6Fragment(pkt[u:])
	if !fh.IsValid() || u > reasmHeadroom {
		r.stats.Malformed++
		return nil, ErrMalformed
	}
	r.stats.Fragments++
	data := pkt[u+IPv6FragmentHeaderLen:]
	if fh.FragmentOffset() == 0 && !fh.More() {
		// Atomic fragment (RFC 6946): a datagram on its own.
		if u+len(data) > len(r.scratch) {
			r.stats.TooBig++
			return nil, ErrFragmentTooBig
		}
		out := r.scratch[:u+len(data)]
		copy(out, pkt[:u])
		copy(out[u:], data)
		out[nhOff] = fh.NextHeader()
		IPv6(out).SetPayloadLen(uint16(len(out) - IPv6HeaderLen))
		r.stats.Completed++
		return out, nil
	}
	k := fragKey{
		binary.LittleEndian.Uint64(pkt[ipv6Src:]), binary.LittleEndian.Uint64(pkt[ipv6Src+8:]),
		binary.LittleEndian.Uint64(pkt[ipv6Dst:]), binary.LittleEndian.Uint64(pkt[ipv6Dst+8:]),
		fragKeyWord4(fh.ID(), 0, IPv6Version),
	}
	return r.insert(&k, &frag{
		off:   fh.FragmentOffset(),
		more:  fh.More(),
		data:  data,
		hdr:   pkt[:u],
		v6:    true,
		nh:    fh.NextHeader(),
		nhOff: nhOff,
	})
}

// frag is one parsed fragment.
type frag struct {
	off   int
	more  bool
	data  []byte
	hdr   []byte // the header to keep if off is 0
	v6    bool
	nh    uint8
	nhOff int
}

// maxPayload returns the largest payload end the IP length field allows
// after a header of hl bytes.
func (f *frag) maxPayload(hl int) int {
	if f.v6 {
		return 0xffff - (hl - IPv6HeaderLen)
	}
	return 0xffff - hl
}

func (r *Reassembler) insert(k *fragKey, f *frag) ([]byte, error) {
	end := f.off + len(f.data)
	if len(f.data) == 0 || f.more && len(f.data)%8 != 0 {
		r.stats.Malformed++
		return nil, ErrMalformed
	}
	// Consecutive fragments mostly belong to the same datagram: try the
	// slot of the last one before hashing.
	var h uint64
	si := r.hot
	if si < 0 || !r.slots[si].used || r.slots[si].key != *k {
		h = r.hash(k)
		_, si = r.lookup(k, h)
	}
	if f.off == 0 && f.more && len(f.data) < r.cfg.MinFirstFragment {
		r.stats.TinyFirstFragment++
		r.dropIf(si)
		return nil, ErrTinyFragment
	}
	minHdr := IPv4MinHeaderLen
	if f.v6 {
		minHdr = IPv6HeaderLen
	}
	if end+minHdr > r.cfg.MaxDatagram || end > f.maxPayload(minHdr) {
		r.stats.TooBig++
		r.dropIf(si)
		return nil, ErrFragmentTooBig
	}
	if si < 0 {
		si = r.alloc(k, h)
	}
	r.hot = si
	s := &r.slots[si]

	// The end of the datagram, once known, is fixed.
	if !f.more && (s.total >= 0 && int(s.total) != end || end < int(s.maxEnd)) ||
		f.more && s.total >= 0 && end > int(s.total) {
		r.stats.Overlap++
		r.drop(si)
		return nil, ErrFragmentOverlap
	}

	// Find the hole: i is the first fragment starting at or after f.off
	// (in-order arrival: after the last one).
	lo, hi := 0, len(s.frags)
	if hi == 0 || int(s.frags[hi-1].end) <= f.off {
		lo = hi
	}
	for lo < hi {
		m := int(uint(lo+hi) >> 1)
		if int(s.frags[m].start) < f.off {
			lo = m + 1
		} else {
			hi = m
		}
	}
	i := lo
	if i < len(s.frags) && int(s.frags[i].start) == f.off && int(s.frags[i].end) == end {
		r.stats.Duplicates++
		if !f.more {
			s.total = int32(end)
		}
		return r.complete(si), nil
	}
	if i > 0 && int(s.frags[i-1].end) > f.off || i < len(s.frags) && int(s.frags[i].start) < end {
		r.stats.Overlap++
		r.drop(si)
		return nil, ErrFragmentOverlap
	}
	if len(s.frags) == cap(s.frags) {
		r.stats.TooManyFragments++
		r.drop(si)
		return nil, ErrTooManyFragments
	}
	hl := int(s.hdrLen)
	if f.off == 0 {
		hl = len(f.hdr)
	}
	if hl > 0 && (hl+max(end, int(s.maxEnd)) > r.cfg.MaxDatagram || max(end, int(s.maxEnd)) > f.maxPayload(hl)) {
		r.stats.TooBig++
		r.drop(si)
		return nil, ErrFragmentTooBig
	}
	// Make room in memory, oldest datagrams first, never this one.
	for r.mem+len(f.data) > r.cfg.MaxMemory {
		v := r.head
		if v == si {
			v = s.next
		}
		if v < 0 {
			break // cannot happen: MaxMemory >= MaxDatagram
		}
		r.drop(v)
		r.stats.NoMemory++
	}

	copy(s.buf[reasmHeadroom+f.off:], f.data)
	if i == len(s.frags) {
		s.frags = append(s.frags, fragRange{int32(f.off), int32(end)}) // within cap: no allocation
	} else {
		s.frags = s.frags[:len(s.frags)+1]
		copy(s.frags[i+1:], s.frags[i:])
		s.frags[i] = fragRange{int32(f.off), int32(end)}
	}
	s.recvd += int32(len(f.data))
	r.mem += len(f.data)
	s.maxEnd = max(s.maxEnd, int32(end))
	if !f.more {
		s.total = int32(end)
	}
	if f.off == 0 {
		copy(s.buf[reasmHeadroom-hl:], f.hdr)
		s.hdrLen = int32(hl)
		s.v6, s.nh, s.nhOff = f.v6, f.nh, int32(f.nhOff)
	}
	return r.complete(si), nil
}

// complete returns the datagram of slot si and frees the slot if all its
// payload has arrived, and nil otherwise.
func (r *Reassembler) complete(si int32) []byte {
	s := &r.slots[si]
	if s.total < 0 || s.recvd != s.total || s.hdrLen == 0 {
		return nil
	}
	out := s.buf[reasmHeadroom-int(s.hdrLen) : reasmHeadroom+int(s.total)]
	if s.v6 {
		out[s.nhOff] = s.nh
		IPv6(out).SetPayloadLen(uint16(len(out) - IPv6HeaderLen))
	} else {
		ip := IPv4(out)
		ip.SetTotalLen(uint16(len(out)))
		ip.SetFlagsOffset(ip.Flags()&^IPv4FlagMF, 0)
		ip.SetChecksum(ip.CalculateChecksum())
	}
	r.drop(si)
	r.stats.Completed++
	return out
}

// hash mixes the key words with the Reassembler's random seed (multiply
// and xor-shift per word): enough for a table whose keys come from
// authenticated packets.
func (r *Reassembler) hash(k *fragKey) uint64 {
	h := r.seed
	for _, w := range k {
		h = (h ^ w) * 0x9e3779b97f4a7c15
		h ^= h >> 32
	}
	return h
}

// lookup returns the slot holding k, or -1 and the table position where k
// would go.
func (r *Reassembler) lookup(k *fragKey, h uint64) (pos uint64, si int32) {
	for pos = h & r.mask; ; pos = (pos + 1) & r.mask {
		si = r.table[pos]
		if si < 0 || r.slots[si].hash == h && r.slots[si].key == *k {
			return pos, si
		}
	}
}

// alloc reads the clock and expires timed-out datagrams, then takes a free
// slot for k with hash h (evicting the oldest datagram if there is none),
// and puts it in the table and at the young end of the age list.
func (r *Reassembler) alloc(k *fragKey, h uint64) int32 {
	r.now = r.clock.Now()
	r.expire()
	if own, oldest := r.sourceUse(k); own >= r.cfg.SourceShare && r.cfg.SourceShare < r.cfg.MaxDatagrams {
		r.drop(oldest)
		r.stats.SourceShare++
	} else if len(r.free) == 0 {
		r.drop(r.head)
		r.stats.NoMemory++
	}
	pos, _ := r.lookup(k, h) // after the drops, which may move table entries
	si := r.free[len(r.free)-1]
	r.free = r.free[:len(r.free)-1]
	s := &r.slots[si]
	s.key, s.hash, s.created, s.used = *k, h, r.now, true
	s.hdrLen, s.total, s.maxEnd, s.recvd = 0, -1, 0, 0
	s.frags = s.frags[:0]
	s.prev, s.next = r.tail, -1
	if r.tail >= 0 {
		r.slots[r.tail].next = si
	} else {
		r.head = si
	}
	r.tail = si
	r.table[pos] = si
	return si
}

func (r *Reassembler) dropIf(si int32) {
	if si >= 0 {
		r.drop(si)
	}
}

// drop frees slot si: out of the table (backward-shift deletion), out of the
// age list, memory released.
func (r *Reassembler) drop(si int32) {
	s := &r.slots[si]
	i, _ := r.lookup(&s.key, s.hash)
	for j := i; ; {
		j = (j + 1) & r.mask
		sj := r.table[j]
		if sj < 0 {
			break
		}
		home := r.slots[sj].hash & r.mask
		// Leave sj if its home lies cyclically in (i, j].
		if i <= j && i < home && home <= j || i > j && (i < home || home <= j) {
			continue
		}
		r.table[i] = sj
		i = j
	}
	r.table[i] = -1
	if s.prev >= 0 {
		r.slots[s.prev].next = s.next
	} else {
		r.head = s.next
	}
	if s.next >= 0 {
		r.slots[s.next].prev = s.prev
	} else {
		r.tail = s.prev
	}
	r.mem -= int(s.recvd)
	s.recvd = 0
	s.used = false
	s.frags = s.frags[:0]
	r.free = append(r.free, si)
}

// sourceUse counts the datagrams in progress from k's source address and
// returns the oldest of them (-1 if none).
func (r *Reassembler) sourceUse(k *fragKey) (n int, oldest int32) {
	oldest = -1
	for si := r.head; si >= 0; si = r.slots[si].next {
		if s := &r.slots[si]; s.key[0] == k[0] && s.key[1] == k[1] {
			if n == 0 {
				oldest = si
			}
			n++
		}
	}
	return n, oldest
}
