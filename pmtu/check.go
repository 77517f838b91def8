package pmtu

import "time"

// Checks: a faster look at the PLPMTU than the confirmation timer, for
// when the data plane sees a sign of loss (Suspect) or an ICMP report
// names a smaller size (Hint). One round probes the PLPMTU, the hinted
// size if any, and the base at once, on a timer of a few measured round
// trips rather than the probe timer. The PLPMTU comes back: nothing
// changed (a hint is refused). Twice in a row it does not while a smaller
// size does: the path shrank, the PLPMTU drops at once to the largest size
// that came back, and a search between it and the lost size (probed once
// more) follows. Nothing at all comes back: a burst of loss or a peer
// gone, counted as a lost confirmation probe (MAX_PROBES of them make a
// black hole, as before).
//
// Checks run only after a completed search, where probes may go several
// at a time (not through IKE's one-request window), one at a time and at
// most one per SuspectInterval, whatever starts them: a local host that
// retransmits, or anyone who forges ICMP, can make a peer send at most
// two rounds of three probes a second. Probe IDs are random, and inside
// the SA in esp mode: nobody off the path acknowledges one.

// checkMisses is how many check rounds must lose the PLPMTU while a
// smaller size gets through before the PLPMTU is taken as too big: one
// lost probe is too little to go on.
const checkMisses = 2

// minCheckTimer is the shortest a check round waits: a queue that builds
// under the loss that started the check delays acknowledgements well
// past an idle round trip.
const minCheckTimer = 100 * time.Millisecond

// Suspect reports a sign that packets near the PLPMTU are being lost
// (a TCP segment sent again by a host behind the switch, say). It starts
// a check if one may run now (see above); it reports whether it did.
func (p *Prober) Suspect() bool {
	p.mu.Lock()
	if p.state != StateComplete || !p.checksAllowedLocked() || p.PLPMTU() <= p.cfg.Base {
		p.mu.Unlock()
		return false
	}
	sends := p.startCheckLocked(0)
	p.mu.Unlock()
	p.flush(sends)
	return true
}

// checksAllowedLocked reports whether a check may start now.
func (p *Prober) checksAllowedLocked() bool {
	return !p.stopped && !p.checking && p.cfg.PerRound > 1 &&
		(p.lastCheck.IsZero() || p.clock.Now().Sub(p.lastCheck) >= p.cfg.SuspectInterval)
}

// startCheckLocked starts a check of the PLPMTU, with hint (0: none) as
// the size the path may carry instead.
func (p *Prober) startCheckLocked(hint int) []sendReq {
	p.checking = true
	p.lastCheck = p.clock.Now()
	p.checkCur, p.checkHint, p.checkMiss, p.checkSilent = p.PLPMTU(), hint, 0, p.silent
	p.stats.Checks++
	return p.checkRoundLocked()
}

func (p *Prober) checkRoundLocked() []sendReq {
	sizes := []int{p.checkCur}
	if h := p.checkHint; h > p.cfg.Base && h < p.checkCur {
		sizes = append(sizes, h)
	}
	sizes = append(sizes, p.cfg.Base)
	sends := p.newRoundLocked(sizes...)
	p.armLocked(p.fastTimer())
	return sends
}

// fastTimer is how long a check round waits: four smoothed round trips
// and 20 ms, at least minCheckTimer and at most the probe timer; half the
// probe timer before any round trip was measured.
func (p *Prober) fastTimer() time.Duration {
	if p.srtt == 0 {
		return p.cfg.ProbeTimer / 2
	}
	return min(max(4*p.srtt+20*time.Millisecond, minCheckTimer), p.cfg.ProbeTimer)
}

// sampleRTT folds a probe's round trip into srtt (RFC 6298's 1/8).
func (p *Prober) sampleRTT(d time.Duration) {
	if d <= 0 {
		return
	}
	if p.srtt == 0 {
		p.srtt = d
		return
	}
	p.srtt += (d - p.srtt) / 8
}

// checkAckLocked: an acknowledgement during a check. The PLPMTU's own
// probe ends it: the path still carries it.
func (p *Prober) checkAckLocked(size int) []sendReq {
	if size != p.checkCur {
		return nil // a smaller size: wait for the round's end
	}
	if p.checkHint != 0 {
		p.stats.HintsRefused++
	}
	p.silent = 0
	return p.endCheckLocked()
}

// endCheckLocked goes back to the completed search's confirmation
// probes, due when they were due before the check (or at once), and
// searches for a larger path if the raise timer passed meanwhile.
func (p *Prober) endCheckLocked() []sendReq {
	p.checking = false
	p.checkHint, p.checkMiss = 0, 0
	p.round = p.round[:0]
	now := p.clock.Now()
	if now.Sub(p.completedAt) >= p.cfg.RaiseTimer {
		p.hiFail = p.cfg.Max + 1
		return p.enterSearchLocked()
	}
	p.armLocked(max(p.confirmAt.Sub(now), 0))
	return nil
}

func (p *Prober) checkTimeoutLocked() []sendReq {
	best := 0 // the largest smaller size that came back
	for _, r := range p.round {
		if r.acked && r.size < p.checkCur {
			best = max(best, r.size)
		}
	}
	if best == 0 {
		// Nothing came back: loss, or the peer is gone. That counts as a
		// lost confirmation probe, on top of those before the check.
		p.checking = false
		p.checkHint, p.checkMiss = 0, 0
		p.silent = p.checkSilent + 1
		if p.silent >= p.cfg.MaxProbes {
			p.silent = 0
			p.setLocked(p.cfg.Base, SourceBase, "black-hole")
			return p.enterBaseLocked()
		}
		return p.newRoundLocked(p.PLPMTU())
	}
	p.checkMiss++
	if p.checkMiss < checkMisses {
		return p.checkRoundLocked()
	}
	// The path no longer carries the PLPMTU: down to the largest size it
	// carried, at once, then search between that and what was lost, which
	// the search probes once more (a policer or a queue may have dropped
	// just the large probes).
	why := "loss-check"
	if best == p.checkHint {
		why = "hint-check"
	}
	lost := p.checkCur
	p.checking = false
	p.checkHint, p.checkMiss = 0, 0
	p.setLocked(best, SourceProbed, why)
	p.lo, p.hiFail = best, lost+1
	return p.enterSearchLocked()
}
