package pmtu

import (
	"math/rand/v2"
	"slices"
	"sync"
	"sync/atomic"
	"time"

	"github.com/vxswitch/vxswitch/clock"
)

// State is a DPLPMTUD state (RFC 8899 §5.2).
type State uint8

const (
	StateBase     State = iota // confirming the base PLPMTU
	StateSearch                // searching for a larger PLPMTU
	StateComplete              // search complete; confirmation probes watch for black holes
	StateError                 // the base size is not acknowledged (any more)
	StateDisabled              // the peer answers no probes: classic PMTUD
)

var stateNames = [...]string{"base", "searching", "search_complete", "error", "not_probing"}

func (s State) String() string {
	if int(s) < len(stateNames) {
		return stateNames[s]
	}
	return "unknown"
}

// Source says where the current PLPMTU came from.
type Source uint8

const (
	SourceBase   Source = iota // the base PLPMTU, not yet confirmed larger
	SourceProbed               // an acknowledged probe
	SourceHint                 // an ICMP or local EMSGSIZE report
)

var sourceNames = [...]string{"base", "probed", "icmp"}

func (s Source) String() string {
	if int(s) < len(sourceNames) {
		return sourceNames[s]
	}
	return "unknown"
}

// Config sets a Prober's sizes and timers; zero values take defaults.
type Config struct {
	Base int // BASE_PLPMTU: sizes at or below it are assumed to work (default 1280)
	Max  int // MAX_PLPMTU: the largest size probed (default 1500)
	// Fallback is the PLPMTU while the peer answers no probes (StateDisabled):
	// the configured path MTU, lowered by hints (default Max).
	Fallback int
	// ProbeTimer is how long a probe waits for its acknowledgement (RFC
	// 8899 PROBE_TIMER; default 2 s, see DefaultProbeTimer).
	ProbeTimer time.Duration
	// RaiseTimer is how long a completed search holds before the next one
	// looks for a path that grew (PMTU_RAISE_TIMER, default 600 s).
	RaiseTimer time.Duration
	// ConfirmTimer is the interval of confirmation probes at the current
	// PLPMTU in StateComplete (CONFIRMATION_TIMER; default 10 s).
	ConfirmTimer time.Duration
	// MaxProbes is how many probes of one size may go unanswered before it
	// is taken as failed (MAX_PROBES, default 3).
	MaxProbes int
	// Granularity ends a search when the largest size acknowledged and the
	// smallest that failed are this close (default 16 bytes).
	Granularity int
	// PerRound is how many sizes a search round probes at once (default
	// 4); 1 where probes travel one at a time (IKE's window).
	PerRound int
	// SuspectInterval is the least time between two checks that Suspect
	// starts (default 1 s): what a flood of loss signals can cost.
	SuspectInterval time.Duration
	// OnDisabled, if set, runs (without the Prober's lock) when the peer
	// is found not to answer probes at all and the Prober enters
	// StateDisabled; the caller may then try another kind of probe.
	OnDisabled func()
}

// Defaults. RFC 8899 recommends 15 s for PROBE_TIMER and 600 s for
// CONFIRMATION_TIMER; here a probe is answered by the peer's data plane at
// once, and confirmation probes are the only black-hole detection the
// tunnel has, so both are shorter: a black hole is detected within
// ConfirmTimer + MaxProbes*ProbeTimer (16 s by default).
const (
	DefaultProbeTimer   = 2 * time.Second
	DefaultRaiseTimer   = 600 * time.Second
	DefaultConfirmTimer = 10 * time.Second
	DefaultMaxProbes    = 3
	DefaultGranularity  = 16
)

// DefaultPerRound is how many sizes a search round probes at once.
const DefaultPerRound = 4

// DefaultSuspectInterval is the least time between two checks started by
// Suspect.
const DefaultSuspectInterval = time.Second

// Sender sends a probe of size bytes (the outer IP packet) with the given
// ID; the Prober calls it without its lock held.
type Sender func(id uint32, size int)

// Stats counts a Prober's probes and changes of its PLPMTU.
type Stats struct {
	Sent, Acked, Lost uint64
	// Shrinks and Grows count changes of the PLPMTU down and up; Checks
	// the checks of the PLPMTU that Suspect and Hint started; HintsRefused
	// the hints a check found false (the PLPMTU still got through).
	Shrinks, Grows, Checks, HintsRefused uint64
}

// Prober runs DPLPMTUD for one path.
type Prober struct {
	cfg   Config
	clock clock.Clock
	send  Sender

	plpmtu    atomic.Int32
	answering atomic.Bool // the peer has acknowledged a probe

	mu          sync.Mutex
	state       State
	source      Source
	lo          int // largest size acknowledged in this search
	hiFail      int // smallest size that failed (Max+1: none)
	round       []probe
	hintNext    int // a hinted size to probe in the next search round
	silent      int // rounds (or base/confirm probes) in a row without any acknowledgement
	timer       clock.Timer
	gen         uint64 // invalidates stale timer callbacks
	completedAt time.Time
	stats       Stats
	stopped     bool

	// A check (check.go): a round of the PLPMTU, a hinted size and the
	// base at once, on a timer of a few round trips.
	checking    bool
	checkCur    int           // the PLPMTU being checked
	checkHint   int           // the hinted size being checked; 0: none
	checkMiss   int           // check rounds that lost the PLPMTU and carried a smaller size
	checkSilent int           // silent when the check began: its losses add to it
	lastCheck   time.Time     // when the last check began: one per SuspectInterval
	srtt        time.Duration // smoothed probe round trip; 0 until measured
	confirmAt   time.Time     // when the next confirmation probe is due

	changedAt time.Time // when the PLPMTU last changed, and why
	changeWhy string
}

type probe struct {
	id    uint32
	size  int
	sent  time.Time
	acked bool
}

// New returns a Prober in StateBase; Start sends its first probe.
func New(cfg Config, clk clock.Clock, send Sender) *Prober {
	if cfg.Base <= 0 {
		cfg.Base = 1280
	}
	if cfg.Max <= 0 {
		cfg.Max = 1500
	}
	if cfg.Max < cfg.Base {
		cfg.Max = cfg.Base
	}
	if cfg.Fallback <= 0 {
		cfg.Fallback = cfg.Max
	}
	if cfg.ProbeTimer <= 0 {
		cfg.ProbeTimer = DefaultProbeTimer
	}
	if cfg.RaiseTimer <= 0 {
		cfg.RaiseTimer = DefaultRaiseTimer
	}
	if cfg.ConfirmTimer <= 0 {
		cfg.ConfirmTimer = DefaultConfirmTimer
	}
	if cfg.MaxProbes <= 0 {
		cfg.MaxProbes = DefaultMaxProbes
	}
	if cfg.Granularity <= 0 {
		cfg.Granularity = DefaultGranularity
	}
	if cfg.PerRound <= 0 {
		cfg.PerRound = DefaultPerRound
	}
	if cfg.SuspectInterval <= 0 {
		cfg.SuspectInterval = DefaultSuspectInterval
	}
	p := &Prober{cfg: cfg, clock: clock.Or(clk), send: send, hiFail: cfg.Max + 1}
	p.plpmtu.Store(int32(cfg.Base))
	return p
}

// Answering reports whether the peer has acknowledged any probe (it takes
// part in probing). One atomic load.
func (p *Prober) Answering() bool { return p.answering.Load() }

// Config returns the configuration with defaults filled in.
func (p *Prober) Config() Config { return p.cfg }

// PLPMTU is the largest outer packet to send to the peer now.
func (p *Prober) PLPMTU() int { return int(p.plpmtu.Load()) }

// Status returns the state, the source of the PLPMTU and the counters.
func (p *Prober) Status() (State, Source, Stats) {
	p.mu.Lock()
	defer p.mu.Unlock()
	return p.state, p.source, p.stats
}

// Start begins probing at the base size.
func (p *Prober) Start() {
	p.mu.Lock()
	if p.stopped {
		p.mu.Unlock()
		return // a stopped Prober stays stopped
	}
	sends := p.enterBaseLocked()
	p.mu.Unlock()
	p.flush(sends)
}

// Stop cancels the Prober's timer; it sends nothing more.
func (p *Prober) Stop() {
	p.mu.Lock()
	defer p.mu.Unlock()
	p.stopped = true
	p.gen++
	if p.timer != nil {
		p.timer.Stop()
	}
}

// Ack reports the acknowledgement of probe id of size bytes.
func (p *Prober) Ack(id uint32, size int) {
	p.mu.Lock()
	sends := p.ackLocked(id, size)
	p.mu.Unlock()
	p.flush(sends)
}

// Hint reports a path MTU from ICMP ("fragmentation needed", "packet too
// big") or a local EMSGSIZE, already checked to be about this peer. As RFC
// 8899 §4.6.2 allows, a hint below the PLPMTU and not below the base lowers
// it at once, and a search confirms it; other hints are ignored. It reports
// whether the hint was used.
func (p *Prober) Hint(mtu int) bool {
	p.mu.Lock()
	used, sends := p.hintLocked(mtu)
	p.mu.Unlock()
	p.flush(sends)
	return used
}

type sendReq struct {
	id   uint32
	size int
}

func (p *Prober) flush(sends []sendReq) {
	for _, s := range sends {
		p.send(s.id, s.size)
	}
}

// setLocked sets the PLPMTU and its source; why says what changed it.
func (p *Prober) setLocked(size int, src Source, why string) {
	if old := p.PLPMTU(); size != old {
		if size < old {
			p.stats.Shrinks++
		} else {
			p.stats.Grows++
		}
		p.changedAt, p.changeWhy = p.clock.Now(), why
	}
	p.plpmtu.Store(int32(size))
	p.source = src
}

// LastChange says when the PLPMTU last changed and why, in a word (zero
// and "" if it never did): probed (a probe came back), black-hole (the
// confirmation probes were lost), loss-check and hint-check (a check that
// Suspect or Hint started found the path smaller), hint (classic PMTUD,
// for a peer that answers no probes), hint-expired, hint-lost, base-lost,
// peer-silent.
func (p *Prober) LastChange() (time.Time, string) {
	p.mu.Lock()
	defer p.mu.Unlock()
	return p.changedAt, p.changeWhy
}

// newRoundLocked starts a round of probes of the given sizes and arms the
// probe timer.
func (p *Prober) newRoundLocked(sizes ...int) []sendReq {
	p.round = p.round[:0]
	var sends []sendReq
	for _, s := range sizes {
		// Random IDs: an off-path sender cannot forge the acknowledgement
		// of a probe it has not seen (plain mode is unauthenticated).
		id := rand.Uint32()
		p.round = append(p.round, probe{id: id, size: s, sent: p.clock.Now()})
		sends = append(sends, sendReq{id, s})
		p.stats.Sent++
	}
	p.armLocked(p.cfg.ProbeTimer)
	return sends
}

// armLocked (re)schedules the timer d from now.
func (p *Prober) armLocked(d time.Duration) {
	if p.stopped {
		return
	}
	if p.timer != nil {
		p.timer.Stop()
	}
	p.gen++
	gen := p.gen
	p.timer = p.clock.AfterFunc(d, func() { p.fire(gen) })
}

func (p *Prober) fire(gen uint64) {
	p.mu.Lock()
	if gen != p.gen || p.stopped {
		p.mu.Unlock()
		return
	}
	wasDisabled := p.state == StateDisabled
	sends := p.timeoutLocked()
	disabled := !wasDisabled && p.state == StateDisabled
	p.mu.Unlock()
	p.flush(sends)
	if disabled && p.cfg.OnDisabled != nil {
		p.cfg.OnDisabled()
	}
}

// enterBaseLocked probes the base size (RFC 8899 BASE state).
func (p *Prober) enterBaseLocked() []sendReq {
	p.state = StateBase
	p.lo, p.hiFail = 0, p.cfg.Max+1
	return p.newRoundLocked(p.cfg.Base)
}

// enterSearchLocked searches above lo.
func (p *Prober) enterSearchLocked() []sendReq {
	p.state = StateSearch
	p.silent = 0
	return p.searchRoundLocked()
}

// searchRoundLocked sends the next round of a search, or completes it.
func (p *Prober) searchRoundLocked() []sendReq {
	if p.lo >= p.cfg.Max || p.hiFail-p.lo <= p.cfg.Granularity {
		return p.completeLocked()
	}
	var sizes []int
	span := p.hiFail - p.lo
	n := p.cfg.PerRound
	if n == 1 && p.hiFail > p.cfg.Max && p.hintNext == 0 {
		n = 0 // one at a time: the largest size alone comes first (below)
	}
	for j := 1; j <= n; j++ {
		s := p.lo + span*j/(n+1)
		s &^= 3
		if s > p.lo && (len(sizes) == 0 || s > sizes[len(sizes)-1]) {
			sizes = append(sizes, s)
		}
	}
	if h := p.hintNext; h > p.lo && h < p.hiFail {
		sizes = append(sizes[:min(len(sizes), max(n-1, 0))], h)
		slices.Sort(sizes)
		sizes = slices.Compact(sizes)
	}
	p.hintNext = 0
	if p.hiFail > p.cfg.Max {
		// Nothing has failed yet: try the largest size too (most paths
		// carry it, and then the search ends in one round).
		sizes = append(sizes, p.cfg.Max)
	}
	if len(sizes) == 0 {
		return p.completeLocked()
	}
	return p.newRoundLocked(sizes...)
}

// completeLocked ends the search: confirmation probes from now on.
func (p *Prober) completeLocked() []sendReq {
	p.state = StateComplete
	p.round = p.round[:0]
	p.silent = 0
	p.completedAt = p.clock.Now()
	p.armConfirmLocked()
	return nil
}

// armConfirmLocked arms the confirmation timer and notes its deadline, so
// that a check in between does not push it back.
func (p *Prober) armConfirmLocked() {
	p.confirmAt = p.clock.Now().Add(p.cfg.ConfirmTimer)
	p.armLocked(p.cfg.ConfirmTimer)
}

func (p *Prober) ackLocked(id uint32, size int) []sendReq {
	if p.stopped {
		return nil
	}
	var pr *probe
	for i := range p.round {
		if p.round[i].id == id && p.round[i].size == size && !p.round[i].acked {
			pr = &p.round[i]
		}
	}
	if pr == nil {
		return nil // late, duplicated or forged: only an outstanding probe counts
	}
	pr.acked = true
	p.stats.Acked++
	p.answering.Store(true)
	p.silent = 0
	p.sampleRTT(p.clock.Now().Sub(pr.sent))
	if p.checking {
		return p.checkAckLocked(size)
	}
	switch p.state {
	case StateBase, StateError, StateDisabled:
		p.lo = max(p.lo, size)
		p.setLocked(max(size, p.cfg.Base), SourceProbed, "probed")
		if p.cfg.Max <= p.cfg.Base {
			return p.completeLocked()
		}
		return p.enterSearchLocked()
	case StateSearch:
		if size > p.lo {
			p.lo = size
			// A hint may have set a larger PLPMTU still being confirmed.
			if cur := p.PLPMTU(); size >= cur || cur >= p.hiFail {
				p.setLocked(size, SourceProbed, "probed")
			}
		}
		for _, r := range p.round {
			if !r.acked && r.size > p.lo {
				return nil // wait for the rest of the round
			}
		}
		return p.searchRoundLocked()
	case StateComplete:
		// A confirmation probe came back: the path still carries the PLPMTU.
		p.round = p.round[:0]
		if p.clock.Now().Sub(p.completedAt) >= p.cfg.RaiseTimer {
			p.hiFail = p.cfg.Max + 1
			return p.enterSearchLocked()
		}
		p.armConfirmLocked()
	}
	return nil
}

func (p *Prober) timeoutLocked() []sendReq {
	for _, r := range p.round {
		if !r.acked {
			p.stats.Lost++
		}
	}
	if p.checking {
		return p.checkTimeoutLocked()
	}
	switch p.state {
	case StateBase, StateError:
		p.silent++
		if p.silent < p.cfg.MaxProbes {
			return p.newRoundLocked(p.cfg.Base)
		}
		p.silent = 0
		if !p.answering.Load() {
			// Never a single answer: the peer does not take part.
			p.state = StateDisabled
			p.setLocked(p.cfg.Fallback, SourceBase, "peer-silent")
			p.round = p.round[:0]
			p.armLocked(p.cfg.RaiseTimer) // ask again now and then
			return nil
		}
		// It answered before and not even the base size gets through now.
		p.state = StateError
		p.setLocked(p.cfg.Base, SourceBase, "base-lost")
		return p.newRoundLocked(p.cfg.Base)
	case StateDisabled:
		if len(p.round) == 0 {
			// The raise timer: ask again whether the peer answers now.
			return p.newRoundLocked(p.cfg.Base)
		}
		// Still no answer. A hint's lowered size holds only this long (as
		// the kernel's own cache expires): back to the fallback.
		p.setLocked(p.cfg.Fallback, SourceBase, "hint-expired")
		p.round = p.round[:0]
		p.armLocked(p.cfg.RaiseTimer)
		return nil
	case StateSearch:
		anyAcked := false
		for _, r := range p.round {
			anyAcked = anyAcked || r.acked
		}
		if !anyAcked && p.silent+1 < p.cfg.MaxProbes {
			// Not a single answer: a burst of loss as likely as sizes that
			// fail. Send the same round again (MAX_PROBES, RFC 8899 §5.1.2)
			// before taking its sizes as too big.
			p.silent++
			sizes := make([]int, 0, len(p.round))
			for _, r := range p.round {
				sizes = append(sizes, r.size)
			}
			return p.newRoundLocked(sizes...)
		}
		p.silent = 0
		// Sizes lost while a smaller one of the same round came back (or
		// lost MAX_PROBES times over) are too big for the path.
		for _, r := range p.round {
			if !r.acked && r.size > p.lo && r.size < p.hiFail {
				p.hiFail = r.size
			}
		}
		if cur := p.PLPMTU(); cur >= p.hiFail {
			// An unconfirmed size (a hint's) failed: back to what is known.
			p.setLocked(max(p.lo, p.cfg.Base), SourceProbed, "hint-lost")
		}
		// A round with no answer at all only narrows the search: all its
		// sizes were above what is known to work. If the path shrank below
		// that, the confirmation probes after the search find out.
		return p.searchRoundLocked()
	case StateComplete:
		if len(p.round) == 0 {
			// The confirmation timer: probe the current PLPMTU.
			return p.newRoundLocked(p.PLPMTU())
		}
		p.silent++
		if p.silent < p.cfg.MaxProbes {
			return p.newRoundLocked(p.PLPMTU())
		}
		// Black hole: the PLPMTU stopped getting through. Back to the base
		// size at once, and search again.
		p.silent = 0
		p.setLocked(p.cfg.Base, SourceBase, "black-hole")
		return p.enterBaseLocked()
	}
	return nil
}

func (p *Prober) hintLocked(mtu int) (bool, []sendReq) {
	if p.stopped {
		return false, nil
	}
	cur := p.PLPMTU()
	if mtu < p.cfg.Base {
		return false, nil
	}
	if mtu >= cur {
		// Not a decrease, but during a search a size to try next (RFC
		// 8899 §4.6.2). It bounds nothing: a forged hint must not cap the
		// search below the path.
		if p.state != StateSearch || mtu >= p.hiFail || mtu <= p.lo {
			return false, nil
		}
		p.hintNext = mtu
		return true, nil
	}
	if p.state == StateDisabled || p.cfg.PerRound == 1 {
		// Classic PMTUD with a peer that answers no probes: the report is
		// all there is (it holds until the raise timer). Where probes go
		// one at a time (IKE's window), a check of three cannot run: the
		// report lowers the size at once and a search confirms it.
		p.setLocked(mtu, SourceHint, "hint")
		p.hiFail = min(p.hiFail, mtu+1)
		if p.state == StateDisabled {
			return true, nil
		}
		p.lo = p.cfg.Base
		p.state = StateSearch
		p.silent = 0
		return true, p.newRoundLocked(mtu)
	}
	if !p.checksAllowedLocked() || p.state != StateComplete {
		// Checks are for a completed search, one at a time, one per
		// SuspectInterval whatever starts them: a report meanwhile is
		// dropped (the kernel repeats a true one). During a search the
		// search itself finds a smaller path.
		if p.checking && mtu < p.checkCur && mtu > p.checkHint {
			p.checkHint = mtu // the largest report joins the running check
		}
		return false, nil
	}
	// Checked before it is believed: a round of the PLPMTU, mtu and the
	// base (check.go). One forged ICMP no longer lowers the size.
	return true, p.startCheckLocked(mtu)
}
