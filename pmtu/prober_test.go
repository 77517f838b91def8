package pmtu

import (
	"sync"
	"testing"
	"time"

	"github.com/vxswitch/vxswitch/clock"
)

// path is a simulated network path: probes up to mtu are acknowledged one
// rtt later (on the manual clock), larger ones are lost silently (no
// ICMP), and a peer that does not answer probes acknowledges nothing.
type path struct {
	mu      sync.Mutex
	mtu     int
	answers bool
	lossy   func(size int) bool
	clk     *clock.Manual
	p       *Prober
	sent    []int
	rtt     time.Duration
}

func newPath(t *testing.T, cfg Config, mtu int) *path {
	t.Helper()
	pa := &path{mtu: mtu, answers: true, clk: clock.NewManual(time.Unix(1700000000, 0)), rtt: 10 * time.Millisecond}
	pa.p = New(cfg, pa.clk, pa.send)
	t.Cleanup(pa.p.Stop)
	return pa
}

func (pa *path) send(id uint32, size int) {
	pa.mu.Lock()
	pa.sent = append(pa.sent, size)
	ok := pa.answers && size <= pa.mtu && (pa.lossy == nil || !pa.lossy(size))
	pa.mu.Unlock()
	if ok {
		pa.clk.AfterFunc(pa.rtt, func() { pa.p.Ack(id, size) })
	}
}

func (pa *path) setMTU(m int) {
	pa.mu.Lock()
	pa.mtu = m
	pa.mu.Unlock()
}

// until advances the clock in small steps until cond holds or limit
// passes, and returns the time it took.
func (pa *path) until(t *testing.T, limit time.Duration, cond func() bool) time.Duration {
	t.Helper()
	start := pa.clk.Now()
	for !cond() {
		if pa.clk.Now().Sub(start) > limit {
			st, src, stats := pa.p.Status()
			t.Fatalf("not reached within %v: PLPMTU %d, state %v, source %v, %+v", limit, pa.p.PLPMTU(), st, src, stats)
		}
		pa.clk.Advance(5 * time.Millisecond)
	}
	return pa.clk.Now().Sub(start)
}

var testCfg = Config{Base: 1280, Max: 9000, ProbeTimer: 200 * time.Millisecond, ConfirmTimer: time.Second, RaiseTimer: 30 * time.Second}

func within(got, want, g int) bool { return got <= want && want-got <= g }

func TestSearchFindsThePathWithoutICMP(t *testing.T) {
	for _, mtu := range []int{1280, 1400, 1500, 4000, 9000} {
		pa := newPath(t, testCfg, mtu)
		if got := pa.p.PLPMTU(); got != 1280 {
			t.Fatalf("before any probe: PLPMTU %d, want the base 1280", got)
		}
		pa.p.Start()
		took := pa.until(t, 10*time.Second, func() bool { st, _, _ := pa.p.Status(); return st == StateComplete })
		if got := pa.p.PLPMTU(); !within(got, mtu, DefaultGranularity) {
			t.Errorf("path %d: PLPMTU %d, want within %d bytes below", mtu, got, DefaultGranularity)
		}
		if _, src, _ := pa.p.Status(); mtu > 1280 && src != SourceProbed {
			t.Errorf("path %d: source %v, want probed", mtu, src)
		}
		t.Logf("path %d: PLPMTU %d in %v, %d probes", mtu, pa.p.PLPMTU(), took, len(pa.sent))
	}
}

func TestBlackHoleFallsBackAndRecovers(t *testing.T) {
	pa := newPath(t, testCfg, 1500)
	pa.p.Start()
	pa.until(t, 10*time.Second, func() bool { st, _, _ := pa.p.Status(); return st == StateComplete })
	// The path shrinks; no ICMP says so.
	pa.setMTU(1400)
	cfg := pa.p.Config()
	bound := cfg.ConfirmTimer + time.Duration(cfg.MaxProbes)*cfg.ProbeTimer + 50*time.Millisecond
	took := pa.until(t, bound, func() bool { return pa.p.PLPMTU() <= 1400 })
	t.Logf("black hole detected in %v (bound %v)", took, bound)
	pa.until(t, 10*time.Second, func() bool {
		st, _, _ := pa.p.Status()
		return st == StateComplete && within(pa.p.PLPMTU(), 1400, 16)
	})
	// The path grows back: the raise timer finds it.
	pa.setMTU(1500)
	pa.until(t, cfg.RaiseTimer+cfg.ConfirmTimer+5*time.Second, func() bool { return within(pa.p.PLPMTU(), 1500, 16) })
}

func TestPeerThatNeverAnswersIsNotProbed(t *testing.T) {
	cfg := testCfg
	cfg.Fallback = 1500
	pa := newPath(t, cfg, 9000)
	pa.answers = false
	pa.p.Start()
	cfg = pa.p.Config()
	pa.until(t, time.Duration(cfg.MaxProbes+1)*cfg.ProbeTimer, func() bool { st, _, _ := pa.p.Status(); return st == StateDisabled })
	if got := pa.p.PLPMTU(); got != 1500 {
		t.Errorf("not probing: PLPMTU %d, want the fallback 1500", got)
	}
	// ICMP is all there is then.
	if !pa.p.Hint(1400) || pa.p.PLPMTU() != 1400 {
		t.Errorf("hint to a peer that is not probed: PLPMTU %d, want 1400", pa.p.PLPMTU())
	}
	// A peer that starts answering later is found by the periodic retry.
	pa.answers = true
	pa.until(t, cfg.RaiseTimer+5*time.Second, func() bool { st, _, _ := pa.p.Status(); return st == StateComplete })
}

func TestHintsSpeedTheSearchAndAreChecked(t *testing.T) {
	pa := newPath(t, testCfg, 1500)
	pa.p.Start()
	pa.until(t, 10*time.Second, func() bool { st, _, _ := pa.p.Status(); return st == StateComplete })
	if pa.p.Hint(1000) {
		t.Error("a hint below the base was used")
	}
	if pa.p.Hint(1600) {
		t.Error("a hint above the PLPMTU was used")
	}
	// A forged hint (the path still carries 1500): the check's probe of
	// the PLPMTU comes back, the size stays.
	if !pa.p.Hint(1300) {
		t.Fatal("hint 1300 not checked")
	}
	pa.until(t, time.Second, func() bool { _, _, st := pa.p.Status(); return st.HintsRefused == 1 })
	if got := pa.p.PLPMTU(); got != 1500 {
		t.Errorf("after a false hint: PLPMTU %d, want 1500", got)
	}
	// A true hint: the PLPMTU follows once a check agrees (two rounds of
	// a few round trips: well under the probe timer). One check per
	// SuspectInterval: the next report is taken a second later.
	pa.setMTU(1400)
	if pa.p.Hint(1400) {
		t.Error("a second check within SuspectInterval")
	}
	pa.clk.Advance(time.Second)
	if !pa.p.Hint(1400) {
		t.Fatal("hint 1400 not checked")
	}
	took := pa.until(t, 2*time.Second, func() bool { return pa.p.PLPMTU() == 1400 })
	if took > 2*minCheckTimer+10*time.Millisecond {
		t.Errorf("a checked hint took %v", took)
	}
	if at, why := pa.p.LastChange(); at.IsZero() || why != "hint-check" {
		t.Errorf("last change %v %q, want the hint", at, why)
	}
	pa.until(t, 2*time.Second, func() bool { st, src, _ := pa.p.Status(); return st == StateComplete && src == SourceProbed })
	if got := pa.p.PLPMTU(); got != 1400 {
		t.Errorf("after confirming the hint: PLPMTU %d, want 1400", got)
	}
	// A hint larger than the path: the check finds the base, the search
	// the real size.
	pa.setMTU(1300)
	pa.clk.Advance(time.Second)
	pa.p.Hint(1350)
	pa.until(t, 5*time.Second, func() bool {
		st, _, _ := pa.p.Status()
		return st == StateComplete && within(pa.p.PLPMTU(), 1300, 16)
	})
}

// TestSuspectFindsAShrinkFast: the path shrinks under a completed search
// and no ICMP comes. Suspect (a sign of loss from the data plane) finds
// it within a few round trips, not the confirmation timer and its
// MAX_PROBES; a second Suspect within SuspectInterval sends nothing; a
// loss signal on a path that did not shrink changes nothing.
func TestSuspectFindsAShrinkFast(t *testing.T) {
	cfg := testCfg
	cfg.ConfirmTimer = 10 * time.Second
	pa := newPath(t, cfg, 1500)
	pa.p.Start()
	pa.until(t, 10*time.Second, func() bool { st, _, _ := pa.p.Status(); return st == StateComplete })
	if !pa.p.Suspect() {
		t.Fatal("Suspect started no check")
	}
	pa.until(t, time.Second, func() bool { return !pa.p.checking })
	if got := pa.p.PLPMTU(); got != 1500 {
		t.Fatalf("a check of a good path moved the PLPMTU to %d", got)
	}
	pa.setMTU(1400)
	pa.clk.Advance(cfg.SuspectInterval)
	if pa.p.Suspect() {
		t.Fatal("a second Suspect within SuspectInterval started a check")
	}
	pa.clk.Advance(time.Second)
	sentBefore := len(pa.sent)
	if !pa.p.Suspect() {
		t.Fatal("Suspect after SuspectInterval started no check")
	}
	took := pa.until(t, 2*time.Second, func() bool { return pa.p.PLPMTU() <= 1400 })
	if took > 2*minCheckTimer+10*time.Millisecond {
		t.Errorf("the shrink took %v to notice", took)
	}
	n := 0 // the check's probes: of the PLPMTU and the base, two rounds
	for _, size := range pa.sent[sentBefore:] {
		if size == 1500 || size == 1280 {
			n++
		}
	}
	if n > 2*2 {
		t.Errorf("the check sent %d probes of 1500 and 1280, want at most two rounds", n)
	}
	_, _, st := pa.p.Status()
	if st.Shrinks == 0 {
		t.Error("no shrink counted")
	}
	pa.until(t, 10*time.Second, func() bool {
		s, _, _ := pa.p.Status()
		return s == StateComplete && within(pa.p.PLPMTU(), 1400, 16)
	})
}

func TestLateAndForgedAcksIgnored(t *testing.T) {
	pa := newPath(t, testCfg, 1400)
	pa.answers = false
	pa.p.Start()
	pa.p.Ack(12345, 9000) // never sent
	pa.p.Ack(1, 9000)     // an ID that was sent, with another size
	if got := pa.p.PLPMTU(); got != 1280 {
		t.Errorf("forged acks moved the PLPMTU to %d", got)
	}
	if _, _, st := pa.p.Status(); st.Acked != 0 {
		t.Errorf("forged acks counted: %+v", st)
	}
}

func TestLossyPathStillConverges(t *testing.T) {
	pa := newPath(t, testCfg, 1500)
	n := 0
	pa.lossy = func(int) bool { n++; return n%5 == 0 } // every fifth probe lost
	pa.p.Start()
	pa.until(t, 20*time.Second, func() bool { st, _, _ := pa.p.Status(); return st == StateComplete })
	if got := pa.p.PLPMTU(); got < 1400 {
		t.Errorf("20%% probe loss: PLPMTU %d, want near 1500", got)
	}
}

// TestHintDuringSearch: a report of the local link's MTU (EMSGSIZE) above
// the current PLPMTU bounds the search and is probed next: the search ends
// on it exactly.
func TestHintDuringSearch(t *testing.T) {
	pa := newPath(t, testCfg, 1400)
	pa.p.Start()
	pa.until(t, time.Second, func() bool { st, _, _ := pa.p.Status(); return st == StateSearch })
	pa.until(t, 10*time.Second, func() bool {
		pa.p.Hint(1400) // every probe above 1400 fails locally with this report
		st, _, _ := pa.p.Status()
		return st == StateComplete
	})
	if got := pa.p.PLPMTU(); got != 1400 {
		t.Errorf("PLPMTU %d, want exactly the reported 1400", got)
	}
}

// TestBurstLossDoesNotShrinkTheSearch: a whole round lost at once (a burst,
// not the sizes) is sent again before its sizes count as too big.
func TestBurstLossDoesNotShrinkTheSearch(t *testing.T) {
	cfg := testCfg
	cfg.Max = 1500 // every size of the round is within the path
	pa := newPath(t, cfg, 1500)
	drop := true
	pa.lossy = func(size int) bool { return drop && size > 1280 } // the first search round, lost whole
	pa.p.Start()
	pa.until(t, time.Second, func() bool { st, _, _ := pa.p.Status(); return st == StateSearch })
	pa.clk.Advance(testCfg.ProbeTimer / 2)
	drop = false
	pa.until(t, 10*time.Second, func() bool { st, _, _ := pa.p.Status(); return st == StateComplete })
	if got := pa.p.PLPMTU(); !within(got, 1500, 16) {
		t.Errorf("after a burst loss: PLPMTU %d, want near 1500", got)
	}
}

// TestStoppedProberSendsNothing: after Stop, acknowledgements, hints and
// Start do nothing.
func TestStoppedProberSendsNothing(t *testing.T) {
	pa := newPath(t, testCfg, 1500)
	pa.p.Stop()
	pa.p.Start()
	pa.p.Hint(1300)
	pa.clk.Advance(time.Minute)
	if len(pa.sent) != 0 || pa.p.PLPMTU() != 1280 {
		t.Errorf("a stopped prober sent %d probes, PLPMTU %d", len(pa.sent), pa.p.PLPMTU())
	}
}

// TestOneProbeAtATime: with PerRound 1 (probes carried by IKE, whose
// window is one request) no two probes are sent at once, and the search
// still ends within the granularity of the path.
func TestOneProbeAtATime(t *testing.T) {
	cfg := testCfg
	cfg.PerRound = 1
	for _, mtu := range []int{1280, 1400, 1500, 9000} {
		pa := newPath(t, cfg, mtu)
		var last time.Time
		send := pa.send
		pa.p.send = func(id uint32, size int) {
			if now := pa.clk.Now(); now.Equal(last) {
				t.Fatalf("path %d: two probes at %v", mtu, now)
			} else {
				last = now
			}
			send(id, size)
		}
		pa.p.Start()
		took := pa.until(t, 60*time.Second, func() bool { st, _, _ := pa.p.Status(); return st == StateComplete })
		if got := pa.p.PLPMTU(); !within(got, mtu, DefaultGranularity) {
			t.Errorf("path %d: PLPMTU %d, want within %d bytes below", mtu, got, DefaultGranularity)
		}
		t.Logf("path %d: PLPMTU %d in %v, %d probes", mtu, pa.p.PLPMTU(), took, len(pa.sent))
	}
}

// TestOnDisabled: a peer that answers nothing is reported once, when the
// Prober gives up on it, not again at each periodic retry.
func TestOnDisabled(t *testing.T) {
	cfg := testCfg
	calls := 0
	cfg.OnDisabled = func() { calls++ }
	pa := newPath(t, cfg, 1500)
	pa.answers = false
	pa.p.Start()
	pa.until(t, 5*time.Second, func() bool { st, _, _ := pa.p.Status(); return st == StateDisabled })
	if calls != 1 {
		t.Fatalf("OnDisabled ran %d times on entering StateDisabled, want 1", calls)
	}
	pa.clk.Advance(3 * cfg.RaiseTimer)
	if calls != 1 {
		t.Errorf("OnDisabled ran %d times after the periodic retries, want 1", calls)
	}
}

// TestRepeatedHintsOneCheck: the kernel repeats a report (every packet
// that meets EMSGSIZE): one check runs, and it completes.
func TestRepeatedHintsOneCheck(t *testing.T) {
	pa := newPath(t, testCfg, 1500)
	pa.p.Start()
	pa.until(t, 10*time.Second, func() bool { st, _, _ := pa.p.Status(); return st == StateComplete })
	pa.setMTU(1400)
	start := pa.clk.Now()
	for pa.p.PLPMTU() != 1400 {
		pa.p.Hint(1400)
		pa.clk.Advance(5 * time.Millisecond)
		if pa.clk.Now().Sub(start) > time.Second {
			_, _, st := pa.p.Status()
			t.Fatalf("repeated hints: PLPMTU %d after 1 s, %+v", pa.p.PLPMTU(), st)
		}
	}
	if _, _, st := pa.p.Status(); st.Checks != 1 {
		t.Errorf("%d checks, want 1", st.Checks)
	}
	// a refused report is not followed by another check within the
	// interval, whatever its size
	pa.until(t, 5*time.Second, func() bool { st, _, _ := pa.p.Status(); return st == StateComplete })
	pa.clk.Advance(testCfg.SuspectInterval + time.Second)
	if !pa.p.Hint(1300) {
		t.Fatal("a hint after the interval was not checked")
	}
	pa.until(t, time.Second, func() bool { _, _, st := pa.p.Status(); return st.HintsRefused == 1 })
	if pa.p.Hint(1290) || pa.p.Suspect() {
		t.Error("a second check within SuspectInterval")
	}
}

// TestChecksDoNotHideABlackHoleOrTheRaise: checks started every second
// (hosts retransmitting into a dead path) still let MAX_PROBES lost
// probes make a black hole, though the probe timer (2 s) is longer than
// the interval between checks; and on a good path they neither push the
// confirmation probes back nor keep the raise search from running.
func TestChecksDoNotHideABlackHoleOrTheRaise(t *testing.T) {
	cfg := testCfg
	cfg.Max = 1500
	cfg.ConfirmTimer, cfg.RaiseTimer, cfg.ProbeTimer, cfg.MaxProbes = 3*time.Second, 6*time.Second, 2*time.Second, 3
	pa := newPath(t, cfg, 1400)
	pa.p.Start()
	pa.until(t, 20*time.Second, func() bool { st, _, _ := pa.p.Status(); return st == StateComplete })
	// a good path: a check every second for longer than the raise timer;
	// only a search probes 1500 (Max)
	maxProbes := func() (n int) {
		for _, s := range pa.sent {
			if s == 1500 {
				n++
			}
		}
		return n
	}
	before := maxProbes()
	for range 8 * 200 {
		pa.p.Suspect()
		pa.clk.Advance(5 * time.Millisecond)
	}
	if maxProbes() == before {
		t.Error("no raise search in 8 s of checks with a 6 s raise timer")
	}
	// a dead path: nothing comes back
	pa.until(t, 30*time.Second, func() bool { st, _, _ := pa.p.Status(); return st == StateComplete })
	pa.mu.Lock()
	pa.answers = false
	pa.mu.Unlock()
	took := pa.until(t, 30*time.Second, func() bool {
		pa.p.Suspect()
		st, _, _ := pa.p.Status()
		return st == StateBase || st == StateError
	})
	if limit := cfg.ConfirmTimer + time.Duration(cfg.MaxProbes+1)*cfg.ProbeTimer; took > limit {
		t.Errorf("black hole found after %v under checks, want within %v", took, limit)
	}
}
