package dataplane

import (
	"bytes"
	"encoding/binary"
	"net"
	"testing"
	"time"

	"github.com/google/gopacket"
	"github.com/google/gopacket/layers"

	"github.com/vxswitch/vxswitch/encap"
	"github.com/vxswitch/vxswitch/internal/testframe"
	"github.com/vxswitch/vxswitch/pmtu"
)

// tcpSegment is an IPv4 TCP data segment from a to b as gopacket builds
// it (complete checksums), and the same segment with its TCP checksum
// left partial (the pseudo-header sum, as a TAP's TSO leaves it).
func tcpSegment(t *testing.T) (complete, partial []byte) {
	t.Helper()
	eth := &layers.Ethernet{SrcMAC: net.HardwareAddr(macA[:]), DstMAC: net.HardwareAddr(macB[:]), EthernetType: layers.EthernetTypeIPv4}
	ip := &layers.IPv4{Version: 4, TTL: 64, Flags: layers.IPv4DontFragment, Protocol: layers.IPProtocolTCP,
		SrcIP: net.IPv4(10, 11, 129, 1), DstIP: net.IPv4(10, 11, 129, 2)}
	tcp := &layers.TCP{SrcPort: 40000, DstPort: 5201, Seq: 1000, Ack: 2000, ACK: true, Window: 512}
	tcp.SetNetworkLayerForChecksum(ip)
	complete = testframe.Serialize(t, eth, ip, tcp, gopacket.Payload(bytes.Repeat([]byte("vxswitch"), 150)))
	partial = bytes.Clone(complete)
	tcpOff, pseudo, ok := encap.TCPChecksumField(partial)
	if !ok {
		t.Fatal("not a TCP segment")
	}
	binary.BigEndian.PutUint16(partial[tcpOff+16:], pseudo)
	return complete, partial
}

// TestChecksumOffload: a's TAP leaves a TCP segment's checksum partial.
// Toward a peer whose probes said it takes such segments (esp, its port
// able to), the segment crosses as it is and b's port gets it partial
// (its kernel finishes or trusts it); toward a peer that did not say so,
// a finishes it first and b gets gopacket's checksum. Plain mode never
// turns checksum offload on: nothing authenticates its frames.
func TestChecksumOffload(t *testing.T) {
	complete, partial := tcpSegment(t)
	for _, tc := range []struct {
		name     string
		mode     Mode
		bOffload bool
		left     bool // b gets the segment partial
	}{
		{"esp, b takes them", ModeESP, true, true},
		{"esp, b cannot", ModeESP, false, false},
		{"plain", ModePlain, true, false},
	} {
		t.Run(tc.name, func(t *testing.T) {
			testOffload = [2]bool{true, tc.bOffload}
			defer func() { testOffload = [2]bool{} }()
			p, clk := probePair(t, tc.mode)
			p.pumpUntil(t, clk, 5*time.Second, func() bool { _, st := probed(p); return st == pmtu.StateComplete })
			p.reply(testFrame(macA, macB, 64)) // a learns b's MAC
			b := p.a.peers.Load().byName["b"]
			if tc.mode == ModePlain {
				if p.ta.Offloading() || p.tb.Offloading() || b.csumOffload.Load() {
					t.Errorf("plain mode: ports offloading %v %v, b said it takes partial checksums %v", p.ta.Offloading(), p.tb.Offloading(), b.csumOffload.Load())
				}
				return
			}
			if got := b.csumOffload.Load(); got != tc.left {
				t.Fatalf("a's view of b: takes partial checksums %v, want %v", got, tc.left)
			}
			p.send(partial)
			got := p.tb.Last()
			want, counter := complete, cTxChecksumFinished
			if tc.left {
				want, counter = partial, cTxChecksumOffload
			}
			if !bytes.Equal(got, want) {
				t.Fatalf("b's port got checksum %x, want %x", got[14+20+16:14+20+18], want[14+20+16:14+20+18])
			}
			seg := p.a.segments[testVNI]
			if n := seg.ctr[cTxChecksumFinished].Load() + b.ctr[cTxChecksumOffload].Load(); n != 1 {
				t.Errorf("%d segments counted, want 1", n)
			}
			if counter == cTxChecksumOffload && b.ctr[counter].Load() != 1 || counter == cTxChecksumFinished && seg.ctr[counter].Load() != 1 {
				t.Errorf("not counted as %s", counterNames[counter])
			}
			// A complete segment is never marked partial, and crosses as is.
			p.send(complete)
			if !bytes.Equal(p.tb.Last(), complete) {
				t.Error("a complete segment was changed on the way")
			}
		})
	}
}

// TestChecksumOffloadAskedAgain: a new SA pair may be a restarted peer (an
// older release, offloads off), so once a's outbound traffic moves to it,
// a forgets what b took and asks again under the new pair: b's answer
// brings the flag back, or, when b no longer takes unfinished checksums,
// a finishes them from then on.
func TestChecksumOffloadAskedAgain(t *testing.T) {
	for _, bStill := range []bool{true, false} {
		testOffload = [2]bool{true, true}
		p, clk := probePair(t, ModeESP)
		testOffload = [2]bool{}
		p.pumpUntil(t, clk, 5*time.Second, func() bool { _, st := probed(p); return st == pmtu.StateComplete })
		b := p.a.peers.Load().byName["b"]
		if !b.csumOffload.Load() {
			t.Fatal("a's view of b: does not take unfinished checksums")
		}
		p.b.csumOffload = bStill // b "restarted" without offloads
		rekey(t, p, 0x3003, 0x4004)
		p.a.promote(b, b.pending.Load())
		if b.csumOffload.Load() {
			t.Fatal("the flag survived the new SA pair")
		}
		p.b.promote(p.b.peers.Load().byName["a"], p.b.peers.Load().byName["a"].pending.Load())
		p.pump(clk, 10*time.Millisecond)
		if got := b.csumOffload.Load(); got != bStill {
			t.Errorf("b still takes them %v: a's view after asking again %v", bStill, got)
		}
	}
}
