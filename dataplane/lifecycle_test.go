package dataplane

import (
	"bytes"
	"crypto/rand"
	"testing"
	"time"

	"github.com/vxswitch/vxswitch/clock"
	"github.com/vxswitch/vxswitch/crypto"
	"github.com/vxswitch/vxswitch/crypto/ike"
)

// The SA lifecycle with a manual clock: no namespaces, no sleeping.

func newManualPair(t *testing.T) (*pair, *clock.Manual) {
	clk := clock.NewManual(time.Unix(1700000000, 0))
	return newPairClock(t, ModeESP, crypto.SuiteAES128GCM16, 1500, clk), clk
}

// rekey installs a second SA pair on both sites, as a CREATE_CHILD_SA does.
func rekey(t *testing.T, p *pair, aIn, bIn uint32) {
	t.Helper()
	s := crypto.SuiteAES128GCM16
	k1, k2 := make([]byte, s.KeymatLen()), make([]byte, s.KeymatLen())
	rand.Read(k1)
	rand.Read(k2)
	must(t, p.a.InstallChildSA(ike.ChildSA{Peer: "b", Suite: s, ESN: true, InSPI: aIn, OutSPI: bIn, InKeymat: k1, OutKeymat: k2}))
	must(t, p.b.InstallChildSA(ike.ChildSA{Peer: "a", Suite: s, ESN: true, InSPI: bIn, OutSPI: aIn, InKeymat: k2, OutKeymat: k1}))
}

func outSPI(s *Switch, peer string) uint32 {
	if sa := s.peers.Load().byName[peer].outSA.Load(); sa != nil {
		return sa.SPI()
	}
	return 0
}

// TestSAPendingPromotedByTraffic: a new pair waits; the first packet the
// peer seals under it makes it the one we send on.
func TestSAPendingPromotedByTraffic(t *testing.T) {
	p, _ := newManualPair(t)
	rekey(t, p, 0x3003, 0x4004)
	if got := outSPI(p.a, "b"); got != 0x2002 {
		t.Fatalf("a sends on %#x right after the rekey, want the old 0x2002 until b shows it has the new pair", got)
	}
	if p.a.peers.Load().byName["b"].pending.Load() == nil {
		t.Fatal("no pending pair at a")
	}
	// b promotes after its own wait; make it send on the new pair.
	p.b.promote(p.b.peers.Load().byName["a"], p.b.peers.Load().byName["a"].pending.Load())
	p.reply(testFrame(macA, macB, 200))
	if got := outSPI(p.a, "b"); got != 0x4004 {
		t.Errorf("after a packet on the new inbound SA, a sends on %#x, want 0x4004", got)
	}
}

// TestSAPendingPromotedAfterWait: without traffic, housekeeping promotes
// the pending pair once pendingWait has passed, not before.
func TestSAPendingPromotedAfterWait(t *testing.T) {
	p, clk := newManualPair(t)
	rekey(t, p, 0x3003, 0x4004)
	clk.Advance(pendingWait / 2)
	p.a.housekeep()
	if got := outSPI(p.a, "b"); got != 0x2002 {
		t.Fatalf("half the wait: a sends on %#x, want 0x2002", got)
	}
	clk.Advance(pendingWait)
	p.a.housekeep()
	if got := outSPI(p.a, "b"); got != 0x4004 {
		t.Errorf("after the wait: a sends on %#x, want 0x4004", got)
	}
}

// TestFirstSAResponderWaits: the responder of the exchange that made a
// peer's first SA pair does not send on it until the initiator, which
// installs it only when the answer arrives, shows it has it (a packet on
// the new inbound SA) or firstSAWait has passed; the initiator sends at
// once.
func TestFirstSAResponderWaits(t *testing.T) {
	for _, traffic := range []bool{true, false} {
		p, clk := newManualPair(t)
		// Start over without SAs, as after a peer's restart.
		p.a.DeleteChildSA("b", 0x1001, 0x2002)
		p.b.DeleteChildSA("a", 0x2002, 0x1001)
		clk.Advance(inboundGrace + time.Second)
		if outSPI(p.a, "b") != 0 || outSPI(p.b, "a") != 0 {
			t.Fatal("SAs left after the deletes")
		}
		s := crypto.SuiteAES128GCM16
		k1, k2 := make([]byte, s.KeymatLen()), make([]byte, s.KeymatLen())
		rand.Read(k1)
		rand.Read(k2)
		must(t, p.a.InstallChildSA(ike.ChildSA{Peer: "b", Suite: s, ESN: true, InSPI: 0x5005, OutSPI: 0x6006, InKeymat: k1, OutKeymat: k2, Responder: true}))
		if got := outSPI(p.a, "b"); got != 0 {
			t.Fatalf("the responder sends on %#x before the initiator has the SA", got)
		}
		// A frame now must not reach b under an SA b does not have yet.
		p.send(testFrame(macB, macA, 200))
		must(t, p.b.InstallChildSA(ike.ChildSA{Peer: "a", Suite: s, ESN: true, InSPI: 0x6006, OutSPI: 0x5005, InKeymat: k2, OutKeymat: k1}))
		if got := outSPI(p.b, "a"); got != 0x5005 {
			t.Fatalf("the initiator sends on %#x, want 0x5005 at once", got)
		}
		if traffic {
			p.reply(testFrame(macA, macB, 200))
		} else {
			clk.Advance(firstSAWait / 2)
			if got := outSPI(p.a, "b"); got != 0 {
				t.Fatalf("half the wait: the responder sends on %#x", got)
			}
			clk.Advance(firstSAWait)
		}
		if got := outSPI(p.a, "b"); got != 0x6006 {
			t.Errorf("traffic %v: the responder sends on %#x, want 0x6006", traffic, got)
		}
		if n := p.b.ctr[cRxDropUnknownSPI].Load(); n != 0 {
			t.Errorf("b dropped %d packets with an unknown SPI (sent before it had the SA)", n)
		}
	}
}

// TestFirstSAResponderTwoPairs: two first pairs made as responder (a
// peer that started twice) never leave the peer without an SA to send
// on, whichever of them is deleted while the first waits.
func TestFirstSAResponderTwoPairs(t *testing.T) {
	for _, deleteFirst := range []bool{false, true} {
		p, clk := newManualPair(t)
		p.a.DeleteChildSA("b", 0x1001, 0x2002)
		clk.Advance(inboundGrace + time.Second)
		s := crypto.SuiteAES128GCM16
		k := make([]byte, s.KeymatLen())
		rand.Read(k)
		must(t, p.a.InstallChildSA(ike.ChildSA{Peer: "b", Suite: s, ESN: true, InSPI: 0x5005, OutSPI: 0x6006, InKeymat: k, OutKeymat: k, Responder: true}))
		must(t, p.a.InstallChildSA(ike.ChildSA{Peer: "b", Suite: s, ESN: true, InSPI: 0x7007, OutSPI: 0x8008, InKeymat: k, OutKeymat: k, Responder: true}))
		want := uint32(0x6006)
		if deleteFirst {
			p.a.DeleteChildSA("b", 0x5005, 0x6006)
			want = 0x8008
		} else {
			p.a.DeleteChildSA("b", 0x7007, 0x8008)
		}
		clk.Advance(firstSAWait * 2)
		if got := outSPI(p.a, "b"); got != want {
			t.Errorf("delete first %v: a sends on %#x, want %#x", deleteFirst, got, want)
		}
	}
}

// TestSADeleteGrace: a deleted pair's inbound SA still opens packets for
// inboundGrace (they were in flight), then it goes; the outbound one's
// keys are wiped after the same grace, not at once.
func TestSADeleteGrace(t *testing.T) {
	p, clk := newManualPair(t)
	rekey(t, p, 0x3003, 0x4004)
	// b sends one packet on the old pair, held in flight.
	p.tb.Inject(testFrame(macA, macB, 200))
	p.runTx(p.b, p.tb)
	inFlight, from := p.ua.Peek(0)
	p.ua.Discard()
	oldOut := p.a.peers.Load().byName["b"].outSA.Load()
	p.a.DeleteChildSA("b", 0x1001, 0x2002)
	if got := outSPI(p.a, "b"); got != 0x4004 {
		t.Fatalf("after deleting the old pair a sends on %#x, want the pending 0x4004", got)
	}
	clk.Advance(inboundGrace / 2)
	before := p.ta.Frames()
	p.ua.Inject(inFlight, from)
	p.runRx(p.a, p.ua)
	if p.ta.Frames() != before+1 {
		t.Fatal("a packet in flight on the deleted inbound SA was not delivered within the grace")
	}
	if oldOut.Expired() {
		t.Fatal("the replaced outbound SA was wiped at once: a batch sealing with it would fail")
	}
	clk.Advance(inboundGrace)
	if p.a.sadb.Lookup(0x1001) != nil {
		t.Error("the deleted inbound SA is still in the SADB after the grace")
	}
	if !oldOut.Expired() {
		t.Error("the replaced outbound SA's keys were not wiped after the grace")
	}
	p.ua.Inject(inFlight, from)
	p.runRx(p.a, p.ua)
	if got := p.a.ctr[cRxDropUnknownSPI].Load(); got != 1 {
		t.Errorf("a packet on the gone SA: rx_drop_unknown_spi %d, want 1", got)
	}
	// Traffic goes on on the new pair.
	p.send(testFrame(macB, macA, 300))
	if !bytes.Equal(p.tb.Last(), testFrame(macB, macA, 300)) {
		t.Error("a to b broken after the old pair went")
	}
}

// TestPeerDown: the key exchange gives up on a peer: its SAs go at once,
// its MACs are flushed (traffic to them floods), it shows down.
func TestPeerDown(t *testing.T) {
	p, _ := newManualPair(t)
	p.reply(testFrame(macA, macB, 100)) // a learns macB on b
	if _, ok := p.a.fdb.Lookup(testVNI, macB); !ok {
		t.Fatal("a did not learn macB")
	}
	p.a.PeerDown("b")
	pb := p.a.peers.Load().byName["b"]
	if pb.state.Load() != peerDown || pb.outSA.Load() != nil || len(pb.sas) != 0 {
		t.Fatalf("after PeerDown: state %s, SA %v, %d SAs", stateName(pb.state.Load()), pb.outSA.Load() != nil, len(pb.sas))
	}
	if p.a.sadb.Lookup(0x1001) != nil {
		t.Error("PeerDown left the inbound SA in the SADB")
	}
	if _, ok := p.a.fdb.Lookup(testVNI, macB); ok {
		t.Error("PeerDown left the peer's MACs in the FDB")
	}
	p.send(testFrame(macB, macA, 100))
	if got := pb.ctr[cDropNoSA].Load(); got != 1 {
		t.Errorf("frame to a down peer: tx_drop_no_sa %d, want 1", got)
	}
}

// TestPathMTURestore: a path MTU lowered by the kernel's report holds for
// pathMTURecheck, then goes back to the configured one.
func TestPathMTURestore(t *testing.T) {
	p, clk := newManualPair(t)
	pb := p.a.peers.Load().byName["b"]
	p.net.SetPath(1300, true)
	p.send(testFrame(macB, macA, 1400)) // lost on the path, which reports 1300
	p.a.housekeep()
	if got := pb.mtu.Load(); got != 1300 {
		t.Fatalf("path MTU after the report: %d, want 1300", got)
	}
	p.net.SetPath(0, false)
	p.send(testFrame(macB, macA, 1400))
	if !bytes.Equal(p.tb.Last(), testFrame(macB, macA, 1400)) {
		t.Fatal("a 1400-byte frame did not get through at the lowered path MTU (fragmented)")
	}
	clk.Advance(pathMTURecheck - time.Second)
	p.a.housekeep()
	if got := pb.mtu.Load(); got != 1300 {
		t.Fatalf("path MTU before the recheck time: %d, want 1300", got)
	}
	clk.Advance(2 * time.Second)
	p.a.housekeep()
	if got := pb.mtu.Load(); got != 1500 {
		t.Errorf("path MTU after the recheck time: %d, want the configured 1500", got)
	}
}
