package dataplane

import (
	"context"
	"crypto/rand"
	"net/netip"
	"testing"
	"time"

	"github.com/vxswitch/vxswitch/clock"
	"github.com/vxswitch/vxswitch/crypto"
	"github.com/vxswitch/vxswitch/crypto/ike"
	"github.com/vxswitch/vxswitch/encap"
	"github.com/vxswitch/vxswitch/internal/ratelimit"
	"github.com/vxswitch/vxswitch/internal/testframe"
)

// idle lets seconds pass on clk with s's housekeeping each second.
func idle(clk *clock.Manual, s *Switch, seconds int) {
	for range seconds {
		clk.Advance(time.Second)
		s.housekeep()
	}
}

// TestNATKeepalives: toward a peer we are behind a NAT toward, one 0xFF
// datagram (RFC 3948 §2.3) goes out after natKeepaliveInterval without
// other traffic, and none while data flows; the peer counts and drops it.
func TestNATKeepalives(t *testing.T) {
	clk := clock.NewManual(time.Unix(1700000000, 0))
	p := newPairClock(t, ModeESP, crypto.SuiteAES128GCM16, 0, clk)
	k1, k2 := make([]byte, 20), make([]byte, 20)
	rand.Read(k1)
	rand.Read(k2)
	must(t, p.a.InstallChildSA(ike.ChildSA{Peer: "b", Suite: crypto.SuiteAES128GCM16, ESN: true, InSPI: 0x3003, OutSPI: 0x4004,
		InKeymat: k1, OutKeymat: k2, BehindNAT: true}))
	pa := p.a.peers.Load().byName["b"]
	idle(clk, p.a, 25)
	if n := pa.ctr[cTxKeepalives].Load(); n != 1 {
		t.Fatalf("%d NAT keepalives after 25 idle seconds, want 1", n)
	}
	p.runRx(p.b, p.ub)
	if n := p.b.ctr[cRxKeepalive].Load(); n == 0 {
		t.Error("b did not count the keepalive")
	}
	// Traffic keeps the mapping open: no keepalive while it flows.
	before := pa.ctr[cTxKeepalives].Load()
	for range 30 {
		pa.ctr.inc(cTxPackets)
		clk.Advance(time.Second)
		p.a.housekeep()
	}
	if n := pa.ctr[cTxKeepalives].Load(); n != before {
		t.Errorf("%d keepalives while data flowed", n-before)
	}
	// Not behind a NAT: none.
	pb := p.b.peers.Load().byName["a"]
	idle(clk, p.b, 30)
	if n := pb.ctr[cTxKeepalives].Load(); n != 0 {
		t.Errorf("%d keepalives from a site not behind a NAT", n)
	}
	// On request (nat_keepalive = "always", a stateful firewall): yes.
	p.b.cfg.NATKeepalive = NATKeepaliveAlways
	idle(clk, p.b, 25)
	if n := pb.ctr[cTxKeepalives].Load(); n != 1 {
		t.Errorf("%d keepalives with NATKeepaliveAlways after 25 idle seconds, want 1", n)
	}
	// Off: none, NAT or not.
	p.a.cfg.NATKeepalive = NATKeepaliveOff
	before = pa.ctr[cTxKeepalives].Load()
	idle(clk, p.a, 45)
	if n := pa.ctr[cTxKeepalives].Load(); n != before {
		t.Errorf("%d keepalives with NATKeepaliveOff", n-before)
	}
}

// TestFloodRate: broadcast frames from the TAP beyond the segment's flood
// rate are dropped and counted, not replicated to every peer.
func TestFloodRate(t *testing.T) {
	clk := clock.NewManual(time.Unix(1700000000, 0))
	p := newPairClock(t, ModePlain, 0, 0, clk)
	seg := p.a.segments[testVNI]
	seg.tx.flood = ratelimit.Bucket{Rate: 100, Burst: 10}
	bcast := testframe.UDP(encap.MAC{0xff, 0xff, 0xff, 0xff, 0xff, 0xff}, encap.MAC{2, 0, 0, 0, 0, 1}, 200)
	for range 50 {
		p.ta.Inject(bcast)
	}
	p.runTx(p.a, p.ta)
	if got, dropped := seg.ctr[cFloodFrames].Load(), seg.ctr[cDropFloodRate].Load(); got != 10 || dropped != 40 {
		t.Fatalf("flooded %d, dropped %d of 50 at once; want the burst of 10 and 40", got, dropped)
	}
}

// TestIKEQueuesEstablishedFirst: with both queues full, every message of
// an existing IKE SA is handled before any new IKE_SA_INIT.
func TestIKEQueuesEstablishedFirst(t *testing.T) {
	initMsg := make([]byte, ike.HeaderLen)
	initMsg[18] = ike.ExchIKESAInit
	est := make([]byte, ike.HeaderLen)
	est[15], est[18] = 1, ike.ExchInformational // SPIr set
	if !isNewIKESAInit(initMsg) || isNewIKESAInit(est) {
		t.Fatal("isNewIKESAInit misclassifies")
	}
	q, iq := make(chan ikeMessage, 100), make(chan ikeMessage, 100)
	for range 50 {
		iq <- ikeMessage{msg: initMsg}
		q <- ikeMessage{msg: est}
	}
	ctx, cancel := context.WithCancel(context.Background())
	var order []bool // true: a new IKE_SA_INIT
	done := make(chan struct{})
	go func() {
		serveIKE(ctx, func(_, _ netip.AddrPort, m []byte) {
			order = append(order, isNewIKESAInit(m))
			if len(order) == 100 {
				cancel()
			}
		}, q, iq)
		close(done)
	}()
	<-done
	for i, isInit := range order {
		if isInit != (i >= 50) {
			t.Fatalf("message %d handled out of priority (new IKE_SA_INIT %v)", i, isInit)
		}
	}
}
