package fdb

import (
	"errors"
	"fmt"
	"log/slog"
	"math"
	"math/bits"
	"slices"
	"sync"
	"sync/atomic"
	"time"

	"github.com/vxswitch/vxswitch/clock"
	"github.com/vxswitch/vxswitch/encap"
	"github.com/vxswitch/vxswitch/internal/ratelimit"
)

// Port identifies where a MAC lives within a segment: LocalPort is the
// segment's TAP, and peers are 1..MaxPort as the dataplane numbers them.
type Port uint32

const (
	// LocalPort is the segment's own TAP device.
	LocalPort Port = 0
	// MaxPort is the largest port the table can store: a port shares one
	// atomic word with the MAC (see the package documentation).
	MaxPort Port = 1<<16 - 1
)

// Defaults applied by New to zero Config fields.
const (
	DefaultAgeTime       = 300 * time.Second // as the Linux bridge
	DefaultMaxPerSegment = 1 << 16
	DefaultMaxTotal      = 1 << 20
	DefaultFlapWindow    = 10 * time.Second
	DefaultFlapMoves     = 5
	// logInterval is the least time between two move (or two flap) log
	// lines; the lines in between are counted and reported with the next.
	logInterval = time.Second
)

// Sentinel errors. Functions wrap them with the values involved; test with
// errors.Is.
var (
	// ErrSegmentExists: AddSegment for a VNI that is already there.
	ErrSegmentExists = errors.New("fdb: segment already exists")
	// ErrUnknownSegment: the VNI was never added (or was removed); add the
	// segment first.
	ErrUnknownSegment = errors.New("fdb: unknown segment")
	// ErrInvalidVNI: the VNI does not fit in 24 bits.
	ErrInvalidVNI = errors.New("fdb: invalid VNI")
	// ErrInvalidMAC: zero, broadcast and multicast MACs cannot be entries;
	// frames to them are flooded.
	ErrInvalidMAC = errors.New("fdb: invalid MAC for an entry")
	// ErrPortRange: the port is above MaxPort.
	ErrPortRange = errors.New("fdb: port out of range")
	// ErrNotFound: there is no such static entry.
	ErrNotFound = errors.New("fdb: no such entry")
)

// Config configures a Table. Zero fields take the defaults above.
type Config struct {
	// AgeTime is how long a learned entry lives without a frame from its
	// MAC. Default 300s.
	AgeTime time.Duration
	// MaxPerSegment and MaxTotal bound the learned entries of one segment
	// and of the whole table; static entries do not count. A MAC that does
	// not fit is not learned (its frames are flooded) and the refusal is
	// counted. Negative means unlimited.
	MaxPerSegment, MaxTotal int
	// MaxPerPort bounds the learned entries of one port (a peer, or the
	// local TAP) in one segment, so one port cannot take the segment's
	// whole room (default a quarter of MaxPerSegment; negative: unlimited).
	MaxPerPort int
	// A MAC that moves FlapMoves times within FlapWindow is flagged as
	// flapping, which means a loop. Defaults 5 moves in 10s.
	FlapWindow time.Duration
	FlapMoves  int
	// Logger receives rate-limited reports of moves and flaps. Default:
	// discard.
	Logger *slog.Logger
	// Clock is the source of time. Default clock.System.
	Clock clock.Clock
}

// LearnResult tells what Learn did with a frame's source MAC.
type LearnResult uint8

// Learn results.
const (
	LearnRefreshed      LearnResult = iota // known MAC on the same port: its age was reset
	LearnNew                               // a new entry (or one that had aged out) was created
	LearnMoved                             // the MAC moved to this port
	LearnFlapping                          // moved, and the MAC is flapping between ports
	LearnStatic                            // matches a static entry: nothing to do
	LearnStaticConflict                    // contradicts a static entry: ignored, counted
	LearnRefusedFull                       // new MAC not learned: segment or table full
	LearnRefusedPort                       // new MAC not learned: its port holds MaxPerPort entries
	LearnIgnored                           // zero, broadcast or multicast source: not learned
	LearnUnknownSegment                    // no such segment
	LearnBadPort                           // port above MaxPort
)

var learnResultNames = [...]string{
	LearnRefreshed:      "refreshed",
	LearnNew:            "new",
	LearnMoved:          "moved",
	LearnFlapping:       "flapping",
	LearnStatic:         "static",
	LearnStaticConflict: "static-conflict",
	LearnRefusedFull:    "refused-full",
	LearnRefusedPort:    "refused-port",
	LearnIgnored:        "ignored",
	LearnUnknownSegment: "unknown-segment",
	LearnBadPort:        "bad-port",
}

func (r LearnResult) String() string {
	if int(r) < len(learnResultNames) {
		return learnResultNames[r]
	}
	return fmt.Sprintf("LearnResult(%d)", uint8(r))
}

// Entry is one forwarding entry as reported by Entries.
type Entry struct {
	VNI      encap.VNI
	MAC      encap.MAC
	Port     Port
	Age      time.Duration // since the last frame from MAC; 0 for static entries
	Static   bool
	Moves    uint64 // times the MAC moved between ports since it was learned
	Flapping bool   // moved FlapMoves times within FlapWindow, recently
}

// Stats are the table's counters (cumulative) and gauges (current).
type Stats struct {
	Segments int // gauge: segments
	Learned  int // gauge: learned entries held, aged ones included until reclaimed
	Static   int // gauge: static entries

	New             uint64 // entries learned
	Moves           uint64 // MAC moves between ports
	Flaps           uint64 // times a MAC was flagged flapping (again each FlapWindow it keeps flapping)
	StaticConflicts uint64 // learned frames contradicting a static entry
	RefusedFull     uint64 // new MACs refused: segment or table full
	RefusedPort     uint64 // new MACs refused: their port at MaxPerPort
	AgedOut         uint64 // learned entries reclaimed after AgeTime
	Flushed         uint64 // entries removed by FlushPort
	Ignored         uint64 // zero, broadcast or multicast source MACs
	UnknownSegment  uint64 // Learn on a VNI with no segment
	BadPort         uint64 // Learn with a port above MaxPort
	Rebuilds        uint64 // hash tables rebuilt (grown, shrunk or purged)
}

type counters struct {
	newEntries, moves, flaps, staticConflicts, refusedFull, refusedPort, agedOut,
	flushed, ignored, unknownSegment, badPort, rebuilds atomic.Uint64
}

// Table is the forwarding database: per segment, MAC to port. See the
// package documentation for the concurrency and allocation contracts.
type Table struct {
	// Read on every Lookup and Learn; written rarely.
	idx atomic.Pointer[segIndex]
	now atomic.Int64 // table time: nanoseconds since epoch, see Sweep
	age int64
	_   [40]byte // keep the hot words on their own cache line

	total atomic.Int64 // learned entries in all segments
	nstat atomic.Int64 // static entries in all segments
	ctr   counters

	maxPer, maxTotal, maxPort int
	flapWindow                int64
	flapMoves                 int
	log                       *slog.Logger
	clock                     clock.Clock
	epoch                     time.Time

	mu sync.Mutex // serialises AddSegment and RemoveSegment

	moveLog, flapLog ratelimit.Limiter // one line per logInterval of table time
}

// segment is one VNI's table and flood list.
type segment struct {
	// Read on the data path.
	tab   atomic.Pointer[table]
	flood atomic.Pointer[[]Port]
	vni   encap.VNI
	_     [44]byte // keep the writers' lock off the readers' cache line

	mu      sync.Mutex
	removed bool                  // guarded by mu
	learned int                   // learned entries; guarded by mu
	static  int                   // static entries; guarded by mu
	moves   map[uint64]*moveState // MACs that ever moved; guarded by mu
	perPort map[Port]int32        // learned entries per port; guarded by mu
}

// moveState is kept only for MACs that have moved, so the common entry costs
// one slot and nothing else.
type moveState struct {
	total       uint64
	windowStart int64 // table time the current flap window began
	windowMoves int
	lastMove    int64
	flapping    bool
}

// segIndex maps VNIs to segments. It is immutable once published: AddSegment
// and RemoveSegment build a new one (copy on write), so readers need no lock.
type segIndex struct {
	ents []segEnt // open addressing, len a power of two, seg nil when empty
	mask uint32
	list []*segment // by VNI, for iteration
}

type segEnt struct {
	vni encap.VNI
	seg *segment
}

func vniHash(v encap.VNI) uint32 {
	h := uint32(v) * 0x9e3779b1
	return h ^ h>>15
}

func (x *segIndex) get(v encap.VNI) *segment {
	for i := vniHash(v) & x.mask; ; i = (i + 1) & x.mask {
		e := &x.ents[i]
		if e.seg == nil || e.vni == v {
			return e.seg
		}
	}
}

func newSegIndex(list []*segment) *segIndex {
	n := 4
	if want := 2 * len(list); want > n {
		n = 1 << bits.Len(uint(want-1))
	}
	x := &segIndex{ents: make([]segEnt, n), mask: uint32(n - 1), list: list}
	for _, s := range list {
		i := vniHash(s.vni) & x.mask
		for x.ents[i].seg != nil {
			i = (i + 1) & x.mask
		}
		x.ents[i] = segEnt{vni: s.vni, seg: s}
	}
	return x
}

// New returns an empty Table configured by cfg.
func New(cfg Config) *Table {
	if cfg.AgeTime <= 0 {
		cfg.AgeTime = DefaultAgeTime
	}
	if cfg.MaxPerSegment == 0 {
		cfg.MaxPerSegment = DefaultMaxPerSegment
	} else if cfg.MaxPerSegment < 0 {
		cfg.MaxPerSegment = math.MaxInt
	}
	if cfg.MaxPerPort == 0 {
		cfg.MaxPerPort = max(1, min(cfg.MaxPerSegment, math.MaxInt/4)/4)
	} else if cfg.MaxPerPort < 0 {
		cfg.MaxPerPort = math.MaxInt
	}
	if cfg.MaxTotal == 0 {
		cfg.MaxTotal = DefaultMaxTotal
	} else if cfg.MaxTotal < 0 {
		cfg.MaxTotal = math.MaxInt
	}
	if cfg.FlapWindow <= 0 {
		cfg.FlapWindow = DefaultFlapWindow
	}
	if cfg.FlapMoves <= 0 {
		cfg.FlapMoves = DefaultFlapMoves
	}
	if cfg.Logger == nil {
		cfg.Logger = slog.New(slog.DiscardHandler)
	}
	if cfg.Clock == nil {
		cfg.Clock = clock.System{}
	}
	t := &Table{
		age:        int64(cfg.AgeTime),
		maxPer:     cfg.MaxPerSegment,
		maxTotal:   cfg.MaxTotal,
		maxPort:    cfg.MaxPerPort,
		flapWindow: int64(cfg.FlapWindow),
		flapMoves:  cfg.FlapMoves,
		log:        cfg.Logger,
		clock:      cfg.Clock,
		moveLog:    ratelimit.Limiter{Interval: logInterval},
		flapLog:    ratelimit.Limiter{Interval: logInterval},
		epoch:      cfg.Clock.Now(),
	}
	t.idx.Store(newSegIndex(nil))
	return t
}

// AddSegment adds an empty segment for vni.
func (t *Table) AddSegment(vni encap.VNI) error {
	if !vni.Valid() {
		return fmt.Errorf("add segment %d: %w", vni, ErrInvalidVNI)
	}
	t.mu.Lock()
	defer t.mu.Unlock()
	old := t.idx.Load()
	if old.get(vni) != nil {
		return fmt.Errorf("add segment %d: %w", vni, ErrSegmentExists)
	}
	s := &segment{vni: vni}
	s.tab.Store(newTable(0))
	list := append(slices.Clone(old.list), s)
	slices.SortFunc(list, func(a, b *segment) int { return int(a.vni) - int(b.vni) })
	t.idx.Store(newSegIndex(list))
	return nil
}

// RemoveSegment removes vni's segment with all its entries and its flood
// list. Removing an unknown segment does nothing.
func (t *Table) RemoveSegment(vni encap.VNI) {
	t.mu.Lock()
	defer t.mu.Unlock()
	old := t.idx.Load()
	s := old.get(vni)
	if s == nil {
		return
	}
	list := slices.DeleteFunc(slices.Clone(old.list), func(x *segment) bool { return x == s })
	t.idx.Store(newSegIndex(list))

	s.mu.Lock()
	s.removed = true
	t.total.Add(int64(-s.learned))
	t.nstat.Add(int64(-s.static))
	s.learned, s.static, s.moves, s.perPort = 0, 0, nil, nil
	s.tab.Store(newTable(0))
	s.flood.Store(nil)
	s.mu.Unlock()
}

// segment returns vni's segment or nil.
func (t *Table) segment(vni encap.VNI) *segment { return t.idx.Load().get(vni) }

// SetFloodList sets the peers that get vni's broadcast, multicast and
// unknown-unicast frames (head-end replication). LocalPort and duplicates
// are dropped from peers; the table keeps its own copy. Unknown segments are
// ignored.
func (t *Table) SetFloodList(vni encap.VNI, peers []Port) {
	s := t.segment(vni)
	if s == nil {
		return
	}
	list := make([]Port, 0, len(peers))
	for _, p := range peers {
		if p != LocalPort && !slices.Contains(list, p) {
			list = append(list, p)
		}
	}
	s.mu.Lock()
	if !s.removed {
		s.flood.Store(&list)
	}
	s.mu.Unlock()
}

// FloodList returns the peers of vni's segment that get its broadcast,
// multicast and unknown-unicast frames; nil for an unknown segment. It does
// not allocate: the slice is shared and must not be modified; a later
// SetFloodList publishes a new slice and leaves this one as it is.
//
// Split horizon is the caller's job, with the port the frame came from: a
// frame from LocalPort goes to every peer in the list; a frame from a peer
// goes only to LocalPort, never to another peer (the full mesh of peers has
// already delivered it everywhere). The list never contains LocalPort.
func (t *Table) FloodList(vni encap.VNI) []Port {
	s := t.segment(vni)
	if s == nil {
		return nil
	}
	if p := s.flood.Load(); p != nil {
		return *p
	}
	return nil
}

func (t *Table) tick() int64 {
	n := int64(t.clock.Now().Sub(t.epoch))
	for {
		cur := t.now.Load()
		if n <= cur {
			return cur
		}
		if t.now.CompareAndSwap(cur, n) {
			return n
		}
	}
}

// Lookup returns the port where mac lives in vni's segment. Entries older
// than AgeTime (by table time, see Sweep) are misses, as are unknown
// segments and group or zero MACs. Lookup takes no lock and does not
// allocate. The data path looks up a batch at a time (LookupBatch).
func (t *Table) Lookup(vni encap.VNI, mac encap.MAC) (Port, bool) {
	s := t.idx.Load().get(vni)
	if s == nil {
		return 0, false
	}
	return t.lookupIn(s.tab.Load(), macBits(mac))
}

// lookupIn is table.find, arranged so that a hit in the home slot runs the
// fewest instructions (at a million entries every lookup misses the caches,
// and how many lookups the CPU overlaps depends on how many instructions
// each takes), plus the checks of a consistent, live entry.
func (t *Table) lookupIn(tb *table, m uint64) (Port, bool) {
	for i := tb.home(m); ; i = (i + 1) & tb.mask {
		sl := &tb.slots[i]
		k := sl.key.Load()
		if k&macMask != m {
			if k == 0 {
				return 0, false
			}
			continue
		}
		if m == 0 { // empty and deleted slots have zero MAC bits
			return 0, false
		}
		seen := sl.seen.Load()
		if sl.key.Load() != k {
			// The slot changed between the two loads (a move, or a
			// delete and reuse): read it again.
			i = (i - 1) & tb.mask
			continue
		}
		if seen < t.now.Load()-t.age {
			return 0, false
		}
		return Port(k >> portShift), true
	}
}

// lookupBatchTouch is how many home slots LookupBatch loads ahead: enough
// to keep the memory system busy, few enough to stay in L1.
const lookupBatchTouch = 32

// LookupBatch looks up every MAC of macs in vni's segment, as Lookup does,
// storing each port in ports and whether it was found in found (both at
// least len(macs) long, or it panics). For a batch of frames it is faster
// than one Lookup per frame when the table is larger than the CPU caches: it
// first loads the home slot of every MAC, so that their cache misses
// overlap, then looks them up in cache. It takes no lock and does not
// allocate.
func (t *Table) LookupBatch(vni encap.VNI, macs []encap.MAC, ports []Port, found []bool) {
	if len(ports) < len(macs) || len(found) < len(macs) {
		panic("fdb: LookupBatch: output slices shorter than macs")
	}
	ports, found = ports[:len(macs)], found[:len(macs)]
	s := t.idx.Load().get(vni)
	if s == nil {
		clear(ports)
		clear(found)
		return
	}
	tb := s.tab.Load()
	for start := 0; start < len(macs); start += lookupBatchTouch {
		end := min(start+lookupBatchTouch, len(macs))
		var touch uint64
		for _, mac := range macs[start:end] {
			touch += tb.slots[tb.home(macBits(mac))].key.Load()
		}
		_ = touch
		for i := start; i < end; i++ {
			ports[i], found[i] = t.lookupIn(tb, macBits(macs[i]))
		}
	}
}
