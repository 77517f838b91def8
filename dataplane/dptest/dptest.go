// Package dptest joins two dataplane switches back to back in memory, for
// benchmarks and tests of the whole path without devices or system calls:
// a frame goes in as if read from site A's TAP, A's sealed UDP payloads are
// handed to B's receive path, and B's frames come out of its TAP stand-in.
//
// A Pair is not safe for concurrent use.
package dptest

import (
	"crypto/rand"
	"net/netip"

	"github.com/vxswitch/vxswitch/crypto"
	"github.com/vxswitch/vxswitch/crypto/ike"
	"github.com/vxswitch/vxswitch/dataplane"
	"github.com/vxswitch/vxswitch/encap"
	"github.com/vxswitch/vxswitch/internal/testframe"
	"github.com/vxswitch/vxswitch/link"
)

// VNI is the segment a Pair forwards on.
const VNI encap.VNI = 129

// Pair is two switches A and B on one in-memory network: UA and UB are
// their underlay ends, PA and PB their segment ports.
type Pair struct {
	A, B   *dataplane.Switch
	Net    *link.MemNet
	UA, UB *link.MemUnderlay
	PA, PB *link.MemPort
}

// New builds a Pair in mode with suite (ESP) and a path MTU of mtu between
// the sites; in ESP mode a Child SA pair with random keys is installed as
// IKE would.
func New(mode dataplane.Mode, suite crypto.Suite, mtu int) (*Pair, error) {
	site := func(name string, i byte, peer string, j byte) (*dataplane.Switch, error) {
		return dataplane.New(dataplane.Config{
			Name: name, Listen: netip.AddrFrom4([4]byte{192, 0, 2, i}), VTEP: netip.AddrFrom4([4]byte{172, 31, 0, i}),
			Mode: mode, Suite: suite, MSSClamp: true, PMTU: dataplane.PMTUConfig{Off: true}, // no probes among the benchmark's frames
			Segment: []dataplane.SegmentConfig{{VNI: VNI, TAP: "vx129", MTU: 9000}},
			Peer: []dataplane.PeerConfig{{Name: peer, Endpoint: netip.AddrPortFrom(netip.AddrFrom4([4]byte{192, 0, 2, j}), 0),
				VTEP: netip.AddrFrom4([4]byte{172, 31, 0, j}), MTU: mtu}},
		})
	}
	a, err := site("a", 1, "b", 2)
	if err != nil {
		return nil, err
	}
	b, err := site("b", 2, "a", 1)
	if err != nil {
		return nil, err
	}
	port := encap.PortIKENAT
	if mode == dataplane.ModePlain {
		port = encap.PortVXLAN
	}
	n := link.NewMemNet()
	p := &Pair{A: a, B: b, Net: n, PA: link.NewMemPort(), PB: link.NewMemPort(),
		UA: n.Bind(netip.AddrPortFrom(netip.AddrFrom4([4]byte{192, 0, 2, 1}), port)),
		UB: n.Bind(netip.AddrPortFrom(netip.AddrFrom4([4]byte{192, 0, 2, 2}), port)),
	}
	if err := a.Attach(p.UA, map[encap.VNI]link.Port{VNI: p.PA}); err != nil {
		return nil, err
	}
	if err := b.Attach(p.UB, map[encap.VNI]link.Port{VNI: p.PB}); err != nil {
		return nil, err
	}
	if mode == dataplane.ModeESP {
		k1, k2 := make([]byte, suite.KeymatLen()), make([]byte, suite.KeymatLen())
		rand.Read(k1)
		rand.Read(k2)
		if err := a.InstallChildSA(ike.ChildSA{Peer: "b", Suite: suite, ESN: true, InSPI: 0x1001, OutSPI: 0x2002, InKeymat: k1, OutKeymat: k2}); err != nil {
			return nil, err
		}
		if err := b.InstallChildSA(ike.ChildSA{Peer: "a", Suite: suite, ESN: true, InSPI: 0x2002, OutSPI: 0x1001, InKeymat: k2, OutKeymat: k1}); err != nil {
			return nil, err
		}
	}
	return p, nil
}

// Send runs count copies of frame through A and B, in batches as a TAP
// read would bring them, and returns how many frames B delivered.
func (p *Pair) Send(frame []byte, count int) int {
	return Forward(p.A, p.PA, p.B, p.UB, p.PB, frame, count)
}

// Datagrams runs one copy of frame from A to B and returns the sizes of
// the datagrams A sent for it (ESP packets, or VXLAN datagrams), in order.
func (p *Pair) Datagrams(frame []byte) []int {
	p.PA.Inject(frame)
	for p.PA.Queued() > 0 {
		if err := p.A.ServePort(VNI); err != nil {
			panic(err)
		}
	}
	var sizes []int
	for i := 0; i < p.UB.Queued(); i++ {
		d, _ := p.UB.Peek(i)
		sizes = append(sizes, len(d))
	}
	for p.UB.Queued() > 0 {
		if err := p.B.ServeUnderlay(); err != nil {
			panic(err)
		}
	}
	return sizes
}

// Reply runs count copies of frame the other way, from B's port to A's,
// and returns how many frames A delivered.
func (p *Pair) Reply(frame []byte, count int) int {
	return Forward(p.B, p.PB, p.A, p.UA, p.PA, frame, count)
}

// Forward injects count copies of frame into from's port fromPort, runs
// from's transmit path until the port is drained, then to's receive path
// until its underlay toUnder is drained, and returns how many frames came
// out of toPort.
func Forward(from *dataplane.Switch, fromPort *link.MemPort, to *dataplane.Switch, toUnder *link.MemUnderlay, toPort *link.MemPort, frame []byte, count int) int {
	fromPort.InjectN(frame, count)
	before := toPort.Frames()
	for fromPort.Queued() > 0 {
		if err := from.ServePort(VNI); err != nil {
			panic(err)
		}
	}
	for toUnder.Queued() > 0 {
		if err := to.ServeUnderlay(); err != nil {
			panic(err)
		}
	}
	return toPort.Frames() - before
}

// Frame returns an Ethernet frame of size bytes from src to dst carrying
// IPv4/UDP with a counting payload.
func Frame(dst, src encap.MAC, size int) []byte { return testframe.UDP(dst, src, size) }
