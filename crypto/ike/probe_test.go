package ike

import (
	"bytes"
	"testing"
	"time"
)

// probeResult records what a probe's done reported.
type probeResult struct {
	calls int
	acked bool
}

func (r *probeResult) done(acked bool) { r.calls++; r.acked = acked }

// established returns a pair with its IKE SA and Child SA up.
func established(t *testing.T) *pair {
	t.Helper()
	p := newPair(t, nil)
	p.step(0)
	p.checkMatched(p.ra.live()[0].Suite)
	return p
}

// informationalIDs returns the message IDs of the INFORMATIONAL requests
// from a to b in the network log since mark, with their sizes.
func informationalIDs(p *pair, mark int) (ids []uint32, sizes []int) {
	p.net.mu.Lock()
	defer p.net.mu.Unlock()
	for _, pk := range p.net.log[mark:] {
		h, err := DecodeHeader(pk.msg)
		if err == nil && pk.from.Addr() == addrA && h.Exchange == ExchInformational && h.Flags&FlagResponse == 0 {
			ids = append(ids, h.MessageID)
			sizes = append(sizes, len(pk.msg))
		}
	}
	return ids, sizes
}

func logMark(p *pair) int {
	p.net.mu.Lock()
	defer p.net.mu.Unlock()
	return len(p.net.log)
}

// TestProbeAcknowledged: a padded INFORMATIONAL request of exactly the
// size asked for (the non-ESP marker counted) is answered, and done hears
// of it once.
func TestProbeAcknowledged(t *testing.T) {
	p := established(t)
	mark := logMark(p)
	var r probeResult
	if !p.a.Probe("b", 1400, 1200, time.Second, r.done) {
		t.Fatal("Probe refused on an idle established SA")
	}
	p.net.Pump()
	if r.calls != 1 || !r.acked {
		t.Fatalf("done: %d calls, acked %v; want 1, true", r.calls, r.acked)
	}
	_, sizes := informationalIDs(p, mark)
	if len(sizes) != 1 || sizes[0] != 1400-4 {
		t.Fatalf("probe messages on the wire: %v bytes, want one of %d (+4 marker)", sizes, 1400-4)
	}
	p.step(2 * time.Second)
	if r.calls != 1 {
		t.Errorf("done called %d times", r.calls)
	}
	if p.ra.down != 0 || p.rb.down != 0 {
		t.Error("a probe took the peer down")
	}
}

// TestProbeLost: a probe too big for the path is lost. done reports it at
// the timeout; the same message (bit for bit, RFC 7296 §2.1) is sent again
// as sender-made fragments, which the path carries, so the message IDs
// stay in step: a Child SA rekey afterwards works. A probe asked for while
// one is outstanding waits its turn.
func TestProbeLost(t *testing.T) {
	p := established(t)
	p.net.drop = func(pk packet) bool { return len(pk.msg) > 1200 && !pk.frag }
	mark := logMark(p)
	var r probeResult
	if !p.a.Probe("b", 1400, 1200, 500*time.Millisecond, r.done) {
		t.Fatal("Probe refused")
	}
	p.net.Pump()
	if r.calls != 0 {
		t.Fatalf("done before the timeout: %+v", r)
	}
	var queued probeResult
	if !p.a.Probe("b", 1100, 1200, time.Second, queued.done) {
		t.Fatal("a probe behind an outstanding one was refused")
	}
	p.step(time.Second)
	if r.calls != 1 || r.acked {
		t.Fatalf("done after the timeout: %+v, want one call, not acked", r)
	}
	if queued.calls != 1 || !queued.acked {
		t.Fatalf("the queued probe: %+v, want sent and acknowledged after the lost one", queued)
	}
	p.net.mu.Lock()
	var first, again []byte
	for _, pk := range p.net.log[mark:] {
		h, err := DecodeHeader(pk.msg)
		if err != nil || pk.from.Addr() != addrA || h.Exchange != ExchInformational || h.IsResponse() {
			continue
		}
		if first == nil {
			first = pk.msg
		} else if again == nil {
			again = pk.msg
			if !pk.frag {
				t.Error("the lost probe was not sent again as fragments")
			}
		}
	}
	p.net.mu.Unlock()
	if first == nil || !bytes.Equal(first, again) {
		t.Fatalf("the lost probe was not retransmitted bit for bit")
	}
	if !p.a.RekeyChild(p.ra.live()[0].OutSPI) {
		t.Fatal("no Child SA to rekey")
	}
	p.step(100 * time.Millisecond)
	p.step(10 * time.Second) // the old pair's deletion
	if live := p.ra.live(); len(live) != 1 || len(p.ra.installed) < 2 {
		t.Fatalf("rekey after probes: %d installed, %d live", len(p.ra.installed), len(live))
	}
	p.checkMatched(p.ra.live()[0].Suite)
	if p.ra.down != 0 || p.rb.down != 0 {
		t.Error("a lost probe took the peer down")
	}
}

// TestProbeResponseLost: the probe arrives but its response is lost. The
// retransmission gets the cached response again, so both sides stay in
// step (the probe counts as lost: it was not answered in time).
func TestProbeResponseLost(t *testing.T) {
	p := established(t)
	dropped := false
	p.net.drop = func(pk packet) bool {
		h, _ := DecodeHeader(pk.msg)
		if !dropped && pk.from.Addr() == addrB && h.Exchange == ExchInformational && h.Flags&FlagResponse != 0 {
			dropped = true
			return true
		}
		return false
	}
	var r probeResult
	if !p.a.Probe("b", 1400, 1200, 500*time.Millisecond, r.done) {
		t.Fatal("Probe refused")
	}
	p.net.Pump()
	p.step(time.Second)
	p.step(time.Second)
	if !dropped || r.calls != 1 || r.acked {
		t.Fatalf("dropped %v, done %+v", dropped, r)
	}
	var next probeResult
	if !p.a.Probe("b", 1400, 1200, time.Second, next.done) {
		t.Fatal("Probe refused")
	}
	p.net.Pump()
	if !next.acked {
		t.Fatal("the next probe was not answered: message IDs out of step")
	}
}

// TestProbeNeedsEstablishedSA: no SA, no probe (and no done).
func TestProbeNeedsEstablishedSA(t *testing.T) {
	p := newPair(t, nil)
	var r probeResult
	if p.a.Probe("b", 1400, 1200, time.Second, r.done) {
		t.Fatal("Probe sent without an IKE SA")
	}
	if p.a.Probe("nobody", 1400, 1200, time.Second, r.done) {
		t.Fatal("Probe sent to an unknown peer")
	}
	p.step(0)
	if p.a.Probe("b", 10, 1200, time.Second, r.done) {
		t.Fatal("Probe sent for a size below an empty INFORMATIONAL")
	}
}
