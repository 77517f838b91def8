package dataplane

import (
	"bytes"
	"crypto/rand"
	"fmt"
	"net/netip"
	"testing"

	"github.com/vxswitch/vxswitch/clock"
	"github.com/vxswitch/vxswitch/crypto"
	"github.com/vxswitch/vxswitch/crypto/ike"
	"github.com/vxswitch/vxswitch/encap"
	"github.com/vxswitch/vxswitch/internal/testframe"
	"github.com/vxswitch/vxswitch/link"
)

// pair is two switches on an in-memory network (link.MemNet): ua and ub
// are their underlay ends, ta and tb their segment ports.
type pair struct {
	a, b   *Switch
	net    *link.MemNet
	ua, ub *link.MemUnderlay
	ta, tb *link.MemPort
}

const testVNI = 129

// testPMTU is the pairs' probing setting: off, so that tests of other
// things see only their own packets (probe_test.go turns it on).
var testPMTU = PMTUConfig{Off: true}

// testOffload makes the pairs' ports ChecksumOffload ports (a's, b's).
var testOffload [2]bool

func newPair(t testing.TB, mode Mode, suite crypto.Suite, mtu int, workers ...int) *pair {
	t.Helper()
	return newPairClock(t, mode, suite, mtu, nil, workers...)
}

func newPairClock(t testing.TB, mode Mode, suite crypto.Suite, mtu int, clk clock.Clock, workers ...int) *pair {
	t.Helper()
	site := func(name string, i byte, peer string, j byte) *Switch {
		s, err := New(Config{
			Name: name, Listen: netip.AddrFrom4([4]byte{192, 0, 2, i}), VTEP: netip.AddrFrom4([4]byte{172, 31, 0, i}),
			Mode: mode, Suite: suite, MSSClamp: true, CryptoWorkers: append(workers, 0)[0], Clock: clk, PMTU: testPMTU,
			Segment: []SegmentConfig{{VNI: testVNI, TAP: "vx129", MTU: 9000}},
			Peer: []PeerConfig{{Name: peer, Endpoint: netip.AddrPortFrom(netip.AddrFrom4([4]byte{192, 0, 2, j}), 0),
				VTEP: netip.AddrFrom4([4]byte{172, 31, 0, j}), MTU: mtu}},
		})
		if err != nil {
			t.Fatal(err)
		}
		return s
	}
	p := &pair{a: site("a", 1, "b", 2), b: site("b", 2, "a", 1), net: link.NewMemNet(), ta: link.NewMemPort(), tb: link.NewMemPort()}
	p.ta.Keep, p.tb.Keep = true, true
	p.ta.ChecksumOffload, p.tb.ChecksumOffload = testOffload[0], testOffload[1]
	port := p.a.cfg.Port
	p.ua = p.net.Bind(netip.AddrPortFrom(netip.AddrFrom4([4]byte{192, 0, 2, 1}), port))
	p.ub = p.net.Bind(netip.AddrPortFrom(netip.AddrFrom4([4]byte{192, 0, 2, 2}), port))
	must(t, p.a.Attach(p.ua, map[encap.VNI]link.Port{testVNI: p.ta}))
	must(t, p.b.Attach(p.ub, map[encap.VNI]link.Port{testVNI: p.tb}))
	if mode == ModeESP {
		k1, k2 := make([]byte, suite.KeymatLen()), make([]byte, suite.KeymatLen())
		rand.Read(k1)
		rand.Read(k2)
		must(t, p.a.InstallChildSA(ike.ChildSA{Peer: "b", Suite: suite, ESN: true, InSPI: 0x1001, OutSPI: 0x2002, InKeymat: k1, OutKeymat: k2}))
		must(t, p.b.InstallChildSA(ike.ChildSA{Peer: "a", Suite: suite, ESN: true, InSPI: 0x2002, OutSPI: 0x1001, InKeymat: k2, OutKeymat: k1}))
	}
	t.Cleanup(func() { p.a.pool.Close(); p.b.pool.Close() })
	return p
}

func must(t testing.TB, err error) {
	t.Helper()
	if err != nil {
		t.Fatal(err)
	}
}

// testFrame is an Ethernet frame of size bytes: IPv4/UDP with a counting payload.
func testFrame(dst, src encap.MAC, size int) []byte { return testframe.UDP(dst, src, size) }

// send injects frames into a's port and delivers what a sends to b.
func (p *pair) send(frames ...[]byte) {
	p.ta.Inject(frames...)
	p.runTx(p.a, p.ta)
	p.runRx(p.b, p.ub)
}

// reply injects frames into b's port and delivers what b sends to a.
func (p *pair) reply(frames ...[]byte) {
	p.tb.Inject(frames...)
	p.runTx(p.b, p.tb)
	p.runRx(p.a, p.ua)
}

// runTx serves s's port until it is drained.
func (p *pair) runTx(s *Switch, port *link.MemPort) {
	for port.Queued() > 0 {
		if err := s.ServePort(testVNI); err != nil {
			panic(err)
		}
	}
}

// runRx serves s's underlay until it is drained.
func (p *pair) runRx(s *Switch, u *link.MemUnderlay) {
	for u.Queued() > 0 {
		if err := s.ServeUnderlay(); err != nil {
			panic(err)
		}
	}
}

var (
	macA = encap.MAC{0x02, 0, 0, 0, 0, 0xa}
	macB = encap.MAC{0x02, 0, 0, 0, 0, 0xb}
)

func TestPipelineRoundTrip(t *testing.T) {
	type tc struct {
		mode    Mode
		suite   crypto.Suite
		mtu     int
		workers int
	}
	var cases []tc
	for _, mtu := range []int{1500, 1400, 9000} {
		cases = append(cases, tc{ModePlain, 0, mtu, 1})
		for _, s := range crypto.Suites {
			cases = append(cases, tc{ModeESP, s, mtu, 1}, tc{ModeESP, s, mtu, 2})
		}
	}
	for _, c := range cases {
		t.Run(fmt.Sprintf("%v/%v/mtu%d/workers%d", c.mode, c.suite, c.mtu, c.workers), func(t *testing.T) {
			p := newPair(t, c.mode, c.suite, c.mtu, c.workers)
			for _, size := range []int{60, 1400, 1514, 4000, 9014} {
				// Unknown destination: flooded; then known after b answers.
				f := testFrame(macB, macA, size)
				p.send(f)
				if !bytes.Equal(p.tb.Last(), f) {
					t.Fatalf("size %d: b got %d bytes, want the %d-byte frame", size, len(p.tb.Last()), size)
				}
			}
			if c.mode == ModeESP && c.mtu == 1400 {
				pa := p.a.peers.Load().byName["b"]
				if got := pa.ctr[cTxFragments].Load(); got == 0 {
					t.Errorf("tx_fragments = 0, want fragments over a 1400-byte path")
				}
				if got := p.b.rx.reassemblyStats().Completed; got == 0 {
					t.Errorf("reassembled = 0, want > 0")
				}
			}
			// b learnt macA on peer a.
			if port, ok := p.b.fdb.Lookup(testVNI, macA); !ok || port != p.b.peers.Load().byName["a"].port {
				t.Errorf("b's fdb: macA on %v %v, want peer a", port, ok)
			}
		})
	}
}

func TestPipelineNoAllocs(t *testing.T) {
	if raceEnabled {
		t.Skip("allocation counts are not meaningful under the race detector")
	}
	for _, mode := range []Mode{ModePlain, ModeESP} {
		for _, size := range []int{60, 1514, 9014} {
			t.Run(fmt.Sprintf("%v/%d", mode, size), func(t *testing.T) {
				p := newPair(t, mode, crypto.SuiteAES128GCM16, 1400)
				f := testFrame(macB, macA, size)
				p.send(f)
				p.send(f)
				allocs := testing.AllocsPerRun(100, func() { p.send(f) })
				if allocs != 0 {
					t.Errorf("allocs per frame = %v, want 0", allocs)
				}
				if p.tb.Frames() < 100 {
					t.Errorf("b got %d frames, want >= 100", p.tb.Frames())
				}
			})
		}
	}
}

func TestPipelineDropsBadInput(t *testing.T) {
	p := newPair(t, ModeESP, crypto.SuiteAES128GCM16, 1500)
	f := testFrame(macB, macA, 200)
	p.send(f)
	// Replay: capture one datagram and deliver it twice.
	p.ta.Inject(f)
	p.runTx(p.a, p.ta)
	saved, from := p.ub.Peek(0)
	p.runRx(p.b, p.ub)
	// A fresh packet, never delivered, to tamper with.
	p.ta.Inject(f)
	p.runTx(p.a, p.ta)
	fresh, _ := p.ub.Peek(0)
	p.ub.Discard()
	before := p.tb.Frames()
	bad := [][]byte{
		saved,              // replayed
		{0xff},             // keepalive
		{0, 0, 0, 1, 2, 3}, // truncated ESP
		append([]byte{0xde, 0xad, 0xbe, 0xef}, saved[4:]...),                               // unknown SPI
		func() []byte { b := append([]byte(nil), fresh...); b[len(b)-1] ^= 1; return b }(), // bad ICV
		make([]byte, 3), // garbage
	}
	for _, b := range bad {
		p.ub.Inject(b, from)
	}
	p.runRx(p.b, p.ub)
	if p.tb.Frames() != before {
		t.Fatalf("bad input delivered %d frames", p.tb.Frames()-before)
	}
	want := map[counter]uint64{cRxDropReplay: 1, cRxKeepalive: 1, cRxDropUnknownSPI: 1, cRxDropAuth: 1}
	for c, v := range want {
		if got := p.b.ctr[c].Load(); got != v {
			t.Errorf("%s = %d, want %d", counterNames[c], got, v)
		}
	}
	if got := p.b.ctr[cRxDropTruncated].Load() + p.b.ctr[cRxDropInvalid].Load(); got != 2 {
		t.Errorf("truncated+invalid = %d, want 2", got)
	}
	// Real traffic still flows.
	p.send(f)
	if p.tb.Frames() != before+1 {
		t.Errorf("after bad input: frames %d, want %d", p.tb.Frames(), before+1)
	}
}

// seqWriter records a sequence number carried in each frame's payload.
type seqWriter struct{ seqs []uint32 }

func (w *seqWriter) write(frame []byte) {
	w.seqs = append(w.seqs, uint32(frame[50])<<24|uint32(frame[51])<<16|uint32(frame[52])<<8|uint32(frame[53]))
}

// TestParallelCryptoKeepsOrder sends batches big enough to be sealed and
// opened on two workers, fragments included, and checks every frame
// arrives once and in order.
func TestParallelCryptoKeepsOrder(t *testing.T) {
	for _, size := range []int{1400, 4000} {
		p := newPair(t, ModeESP, crypto.SuiteAES128GCM16, 1400, 2)
		w := &seqWriter{}
		p.tb.OnWrite = w.write
		const frames = 200
		for i := 0; i < frames; i++ {
			f := testFrame(macB, macA, size)
			f[50], f[51], f[52], f[53] = byte(i>>24), byte(i>>16), byte(i>>8), byte(i)
			p.ta.Inject(f)
		}
		// 200 frames through a's transmit path, a port read (64) at a
		// time, sealed on two workers.
		p.runTx(p.a, p.ta)
		if p.ub.Queued() < frames {
			t.Fatalf("size %d: a sent %d datagrams for %d frames", size, p.ub.Queued(), frames)
		}
		p.runRx(p.b, p.ub)
		if len(w.seqs) != frames {
			t.Fatalf("size %d: b delivered %d frames, want %d", size, len(w.seqs), frames)
		}
		for i, s := range w.seqs {
			if s != uint32(i) {
				t.Fatalf("size %d: frame %d carries sequence %d: out of order", size, i, s)
			}
		}
	}
}

// TestFragmentFloodFromPeer: an authenticated peer (or an attacker with
// its keys) floods inner fragments that never complete, overlap or exceed
// the limits. The reassembler stays within its bounds, counts every drop,
// and whole datagrams still get through.
func TestFragmentFloodFromPeer(t *testing.T) {
	p := newPair(t, ModeESP, crypto.SuiteAES128GCM16, 1400)
	f := testFrame(macB, macA, 4000)
	p.send(f) // warm up: fragmented in the tunnel, reassembled at b
	pb := p.a.peers.Load().byName["b"]
	out := pb.outSA.Load()
	// The flood's identifications stay clear of the ones a sends next (its
	// counter starts at random; a flood ID equal to the last frame's would
	// spoil that frame's reassembly, the very thing the flood may not do).
	firstID := uint16(p.a.ids.Next(pb.tunnel.Dst)) + 1000
	seal := func(inner []byte) []byte {
		pkt := make([]byte, crypto.HeaderLen+len(inner)+crypto.MaxTrailerLen)
		copy(pkt[crypto.HeaderLen:], inner)
		n, err := out.Seal(pkt, len(inner), crypto.NextHeaderIPv4)
		if err != nil {
			t.Fatal(err)
		}
		return pkt[:n]
	}
	frag := func(id uint16, off int, more bool, payload int) []byte {
		b := make([]byte, encap.IPv4MinHeaderLen+payload)
		flags := uint16(0)
		if more {
			flags = encap.IPv4FlagMF
		}
		ip := encap.IPv4Fields{TotalLen: uint16(len(b)), ID: firstID + id, Flags: flags, Offset: off, TTL: 64, Protocol: encap.ProtoUDP,
			Src: pb.tunnel.Src, Dst: pb.tunnel.Dst}
		ip.Encode(b)
		return b
	}
	var flood [][]byte
	for id := 0; id < 2000; id++ {
		switch id % 4 {
		case 0: // first fragments that never complete
			flood = append(flood, seal(frag(uint16(id), 0, true, 1024)))
		case 1: // overlapping pair
			flood = append(flood, seal(frag(uint16(id), 0, true, 1024)), seal(frag(uint16(id), 512, false, 1024)))
		case 2: // beyond the largest datagram
			flood = append(flood, seal(frag(uint16(id), 65000&^7, true, 256)))
		case 3: // tiny first fragment
			flood = append(flood, seal(frag(uint16(id), 0, true, 8)))
		}
	}
	for _, b := range flood {
		p.ub.Inject(b, p.ua.LocalAddr())
	}
	p.runRx(p.b, p.ub)
	st := p.b.rx.reassemblyStats()
	if st.Overlap == 0 || st.TooBig == 0 || st.TinyFirstFragment == 0 || st.SourceShare == 0 { // one peer: its share bounds it
		t.Errorf("reassembly drops not all counted: %+v", st)
	}
	cfg := p.b.rx.reasm.Config()
	if st.InProgress > cfg.MaxDatagrams || st.MemoryInUse > cfg.MaxMemory {
		t.Errorf("reassembler over its bounds: %d datagrams (max %d), %d bytes (max %d)", st.InProgress, cfg.MaxDatagrams, st.MemoryInUse, cfg.MaxMemory)
	}
	before := p.tb.Frames()
	p.send(f)
	if p.tb.Frames() != before+1 || !bytes.Equal(p.tb.Last(), f) {
		t.Errorf("a whole 4000-byte frame did not get through after the flood")
	}
}

// TestReloadKeepsWhatItCan: a reload that changes only a peer's path MTU or
// segments keeps its SAs (IKE would not renegotiate them); one that changes
// its endpoint replaces it but keeps its port, so static entries stay right.
func TestReloadKeepsWhatItCan(t *testing.T) {
	p := newPair(t, ModeESP, crypto.SuiteAES128GCM16, 1500)
	static := encap.MAC{0x02, 0, 0, 0, 0, 0x5}
	p.a.segments[testVNI].cfg.Static = []StaticMAC{{MAC: static, Peer: "b"}}
	must(t, p.a.Reload(p.a.cfg.Peer)) // installs the static entry
	pb := p.a.peers.Load().byName["b"]
	cfg := pb.cfg
	cfg.MTU, cfg.Segments = 1400, []encap.VNI{testVNI}
	must(t, p.a.Reload([]PeerConfig{cfg}))
	if got := p.a.peers.Load().byName["b"]; got != pb || got.outSA.Load() == nil || got.mtu.Load() != 1400 {
		t.Fatalf("MTU and segments reload: peer kept %v, SA %v, mtu %d; want the same peer, its SA, 1400", got == pb, got.outSA.Load() != nil, got.mtu.Load())
	}
	p.send(testFrame(macB, macA, 1400))
	if !bytes.Equal(p.tb.Last(), testFrame(macB, macA, 1400)) {
		t.Error("traffic stopped after an MTU/segments reload")
	}
	cfg.Endpoint = netip.MustParseAddrPort("192.0.2.9:4500")
	must(t, p.a.Reload([]PeerConfig{cfg}))
	nb := p.a.peers.Load().byName["b"]
	if nb == pb || nb.port != pb.port || nb.outSA.Load() != nil {
		t.Errorf("endpoint reload: new peer %v, port %d (was %d), SA gone %v", nb != pb, nb.port, pb.port, nb.outSA.Load() == nil)
	}
	if port, ok := p.a.fdb.Lookup(testVNI, static); !ok || port != nb.port {
		t.Errorf("static entry on port %d %v, want %d", port, ok, nb.port)
	}
}
