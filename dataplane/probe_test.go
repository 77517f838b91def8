package dataplane

import (
	"bytes"
	"net/netip"
	"testing"
	"time"

	"github.com/vxswitch/vxswitch/clock"
	"github.com/vxswitch/vxswitch/crypto"
	"github.com/vxswitch/vxswitch/pmtu"
)

// probePair is a pair with path MTU probing on, on a manual clock, the
// local links 9000 bytes.
func probePair(t *testing.T, mode Mode) (*pair, *clock.Manual) {
	t.Helper()
	old, oldRoute := testPMTU, routeMTUFn
	testPMTU = PMTUConfig{ProbeTimer: 200 * time.Millisecond, ConfirmTimer: time.Second, RaiseTimer: 20 * time.Second}
	routeMTUFn = func(netip.Addr) int { return 9000 }
	t.Cleanup(func() { routeMTUFn = oldRoute })
	defer func() { testPMTU = old }()
	clk := clock.NewManual(time.Unix(1700000000, 0))
	suite := crypto.Suite(0)
	if mode == ModeESP {
		suite = crypto.SuiteAES128GCM16
	}
	p := newPairClock(t, mode, suite, 0, clk)
	t.Cleanup(func() {
		for _, s := range []*Switch{p.a, p.b} {
			for _, q := range s.peers.Load().byPort {
				if q != nil {
					s.stopProber(q)
				}
			}
		}
	})
	return p, clk
}

// pump delivers whatever is queued both ways until nothing is, then moves
// the clock by step: probes and their acknowledgements cross.
func (p *pair) pump(clk *clock.Manual, step time.Duration) {
	for p.ua.Queued()+p.ub.Queued() > 0 {
		p.runRx(p.b, p.ub)
		p.runRx(p.a, p.ua)
	}
	clk.Advance(step)
}

func (p *pair) pumpUntil(t *testing.T, clk *clock.Manual, limit time.Duration, cond func() bool) time.Duration {
	t.Helper()
	start := clk.Now()
	for !cond() {
		if clk.Now().Sub(start) > limit {
			pr := p.a.peers.Load().byName["b"].prober.Load()
			st, src, stats := pr.Status()
			t.Fatalf("not within %v: PLPMTU %d, %v, %v, %+v", limit, pr.PLPMTU(), st, src, stats)
		}
		p.pump(clk, 10*time.Millisecond)
	}
	return clk.Now().Sub(start)
}

func probed(p *pair) (*pmtu.Prober, pmtu.State) {
	pr := p.a.peers.Load().byName["b"].prober.Load()
	if pr == nil {
		return nil, 0
	}
	st, _, _ := pr.Status()
	return pr, st
}

// TestProbingFindsABlackHolePath: a 1400-byte path that drops larger
// packets without a word (ICMP filtered). Probing finds it, full-size and
// jumbo frames cross from then on (esp: fragmented in the tunnel), and no
// probe ever reaches a port.
func TestProbingFindsABlackHolePath(t *testing.T) {
	for _, mode := range []Mode{ModeESP, ModePlain} {
		t.Run(mode.String(), func(t *testing.T) {
			p, clk := probePair(t, mode)
			p.net.SetPath(1400, false)
			pb := p.a.peers.Load().byName["b"]
			if got := pb.pathMTU(); got != basePLPMTU4 {
				t.Errorf("before any answer: path MTU %d, want the base %d", got, basePLPMTU4)
			}
			took := p.pumpUntil(t, clk, 10*time.Second, func() bool { _, st := probed(p); return st == pmtu.StateComplete })
			pr, _ := probed(p)
			if got := pr.PLPMTU(); got > 1400 || got < 1400-16 {
				t.Errorf("PLPMTU %d, want within 16 bytes below 1400", got)
			}
			t.Logf("%v: PLPMTU %d in %v", mode, pr.PLPMTU(), took)
			if p.ta.Frames()+p.tb.Frames() != 0 {
				t.Errorf("probes reached a port: %d and %d frames", p.ta.Frames(), p.tb.Frames())
			}
			if p.b.ctr[cRxDropDummy].Load()+p.b.peers.Load().byName["a"].ctr[cRxDropDummy].Load() != 0 {
				t.Error("probes were counted as dummy packets")
			}
			if mode == ModeESP {
				for _, size := range []int{1514, 4014, 9014} {
					f := testFrame(macB, macA, size)
					p.send(f)
					if !bytes.Equal(p.tb.Last(), f) {
						t.Errorf("a %d-byte frame did not cross the 1400-byte black hole", size)
					}
				}
			}
			// MSS clamping follows the probed path.
			if got, want := pb.frameMTU(mode), pr.PLPMTU(); got >= want {
				t.Errorf("frame MTU %d for MSS clamping, want below the path MTU %d", got, want)
			}
		})
	}
}

// TestProbingFollowsThePath: the path shrinks under traffic without ICMP
// (1400 to 1280), then grows back; the probed path MTU follows both ways
// within the stated bounds.
func TestProbingFollowsThePath(t *testing.T) {
	p, clk := probePair(t, ModeESP)
	p.net.SetPath(1400, false)
	p.pumpUntil(t, clk, 10*time.Second, func() bool { _, st := probed(p); return st == pmtu.StateComplete })
	pr, _ := probed(p)
	cfg := pr.Config()
	p.net.SetPath(1280, false)
	bound := cfg.ConfirmTimer + time.Duration(cfg.MaxProbes)*cfg.ProbeTimer + 100*time.Millisecond
	took := p.pumpUntil(t, clk, bound, func() bool { return pr.PLPMTU() <= 1280 })
	t.Logf("black hole found in %v (bound %v)", took, bound)
	p.pumpUntil(t, clk, 10*time.Second, func() bool { _, st := probed(p); return st == pmtu.StateComplete && pr.PLPMTU() >= 1280-16 })
	f := testFrame(macB, macA, 1514)
	p.send(f)
	if !bytes.Equal(p.tb.Last(), f) {
		t.Error("a full-size frame did not cross the 1280-byte path")
	}
	p.net.SetPath(1400, false)
	p.pumpUntil(t, clk, cfg.RaiseTimer+5*time.Second, func() bool { return pr.PLPMTU() >= 1400-16 })
}

// TestProbingICMPHint: a path that reports its MTU: the report lowers the
// path MTU at once, before any probe is lost.
func TestProbingICMPHint(t *testing.T) {
	p, clk := probePair(t, ModeESP)
	p.pumpUntil(t, clk, 10*time.Second, func() bool { _, st := probed(p); return st == pmtu.StateComplete })
	pr, _ := probed(p)
	p.net.SetPath(1400, true)
	f := testFrame(macB, macA, 1514)
	p.send(f) // too big: lost, but the path says 1400
	p.a.applyPathMTUs()
	// the report is checked by probes before it is believed: a few round
	// trips, far less than the probe timer
	p.pumpUntil(t, clk, time.Second, func() bool { return pr.PLPMTU() == 1400 })
	if _, _, st := pr.Status(); st.Checks != 1 {
		t.Errorf("%d checks of the report, want 1", st.Checks)
	}
	p.send(f)
	if !bytes.Equal(p.tb.Last(), f) {
		t.Error("the next full-size frame did not get through")
	}
}

// TestPeerThatDoesNotProbe: a peer that never answers (a kernel VTEP, a
// gateway) is marked not probing and gets the configured size.
func TestPeerThatDoesNotProbe(t *testing.T) {
	p, clk := probePair(t, ModePlain)
	// b never reads its underlay: no acknowledgement ever comes.
	start := clk.Now()
	for {
		p.ub.Discard()
		if _, st := probed(p); st == pmtu.StateDisabled {
			break
		}
		if clk.Now().Sub(start) > 5*time.Second {
			t.Fatal("never marked as not probing")
		}
		clk.Advance(10 * time.Millisecond)
	}
	pb := p.a.peers.Load().byName["b"]
	if got := pb.ctr[cTxProbes].Load(); got == 0 {
		t.Error("no probes were sent")
	}
	pr, _ := probed(p)
	if got := pr.PLPMTU(); got < 1500 {
		t.Errorf("not probing: path MTU %d, want the ceiling (no fragmentation to the base)", got)
	}
}
