// Package dptest joins two dataplane switches back to back in memory, for
// benchmarks and tests of the whole path without devices or system calls:
// a frame goes in as if read from site A's TAP, A's sealed UDP payloads are
// handed to B's receive path, and B's frames come out of its TAP stand-in.
//
// A Pair is not safe for concurrent use.
package dptest

import (
	"crypto/rand"
	"fmt"
	"net/netip"

	"github.com/vxswitch/vxswitch/crypto"
	"github.com/vxswitch/vxswitch/crypto/ike"
	"github.com/vxswitch/vxswitch/dataplane"
	"github.com/vxswitch/vxswitch/encap"
)

// VNI is the segment a Pair forwards on.
const VNI encap.VNI = 129

// Pair is two switches A and B; AB carries A's datagrams to B.
type Pair struct {
	A, B   *dataplane.Switch
	AB, BA *dataplane.MemUnderlay
	TA, TB *dataplane.MemFrames

	bufs  [][]byte
	sizes []int
}

// New builds a Pair in mode with suite (ESP) and a path MTU of mtu between
// the sites; in ESP mode a Child SA pair with random keys is installed as
// IKE would.
func New(mode dataplane.Mode, suite crypto.Suite, mtu int) (*Pair, error) {
	site := func(name string, i byte, peer string, j byte) (*dataplane.Switch, error) {
		return dataplane.New(dataplane.Config{
			Name: name, Listen: netip.AddrFrom4([4]byte{192, 0, 2, i}), VTEP: netip.AddrFrom4([4]byte{172, 31, 0, i}),
			Mode: mode, Suite: suite, MSSClamp: true,
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
	p := &Pair{A: a, B: b, TA: &dataplane.MemFrames{}, TB: &dataplane.MemFrames{},
		AB: &dataplane.MemUnderlay{From: netip.AddrPortFrom(netip.AddrFrom4([4]byte{192, 0, 2, 1}), port)},
		BA: &dataplane.MemUnderlay{From: netip.AddrPortFrom(netip.AddrFrom4([4]byte{192, 0, 2, 2}), port)},
	}
	if err := a.Attach(p.AB, map[encap.VNI]dataplane.FrameWriter{VNI: p.TA}); err != nil {
		return nil, err
	}
	if err := b.Attach(p.BA, map[encap.VNI]dataplane.FrameWriter{VNI: p.TB}); err != nil {
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
	return p.send(p.A, p.B, p.AB, p.TB, frame, count)
}

// Reply runs count copies of frame the other way, from B's TAP to A's, and
// returns how many frames A delivered.
func (p *Pair) Reply(frame []byte, count int) int {
	return p.send(p.B, p.A, p.BA, p.TA, frame, count)
}

func (p *Pair) send(from, to *dataplane.Switch, under *dataplane.MemUnderlay, out *dataplane.MemFrames, frame []byte, count int) int {
	if len(p.bufs) < count {
		for len(p.bufs) < count {
			p.bufs = append(p.bufs, make([]byte, dataplane.BufferSize))
			p.sizes = append(p.sizes, 0)
		}
	}
	for i := 0; i < count; i++ {
		p.sizes[i] = copy(p.bufs[i][dataplane.Headroom:], frame)
	}
	before := out.Frames
	from.InjectFrames(VNI, p.bufs[:count], p.sizes[:count])
	under.DeliverTo(to)
	return out.Frames - before
}

// Frame returns an Ethernet frame of size bytes from src to dst carrying
// IPv4/UDP with a counting payload.
func Frame(dst, src encap.MAC, size int) []byte {
	if size < 42 {
		panic(fmt.Sprintf("dptest: frame size %d below 42", size))
	}
	f := make([]byte, size)
	eth := encap.EthernetFields{Dst: dst, Src: src, EtherType: encap.EtherTypeIPv4}
	eth.Encode(f)
	ip := encap.IPv4Fields{TotalLen: uint16(size - 14), ID: 7, TTL: 64, Protocol: encap.ProtoUDP,
		Src: netip.MustParseAddr("10.11.129.1"), Dst: netip.MustParseAddr("10.11.129.2")}
	ip.Encode(f[14:])
	u := encap.UDPFields{SrcPort: 1000, DstPort: 2000, Length: uint16(size - 34)}
	u.Encode(f[34:])
	for i := 42; i < size; i++ {
		f[i] = byte(i)
	}
	return f
}
