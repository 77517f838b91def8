package dataplane

import (
	"net/netip"
	"testing"

	"github.com/vxswitch/vxswitch/encap"
)

// tcpFrame is an IPv4 TCP segment of payload bytes from port sport.
func tcpFrame(sport uint16, seq uint32, flags uint8, payload int) []byte {
	f := make([]byte, 14+20+20+payload)
	eth := encap.EthernetFields{Dst: encap.MAC{2, 0, 0, 0, 0, 2}, Src: encap.MAC{2, 0, 0, 0, 0, 1}, EtherType: encap.EtherTypeIPv4}
	eth.Encode(f)
	ip := encap.IPv4Fields{TotalLen: uint16(40 + payload), TTL: 64, Protocol: encap.ProtoTCP,
		Src: netip.MustParseAddr("10.11.129.1"), Dst: netip.MustParseAddr("10.11.129.2")}
	ip.Encode(f[14:])
	tcp := encap.TCPFields{SrcPort: sport, DstPort: 5201, Seq: seq, Flags: flags | encap.TCPFlagACK, Window: 1000}
	tcp.Encode(f[34:])
	return f
}

func TestRetxWatch(t *testing.T) {
	var w retxWatch
	const ack = 0
	steps := []struct {
		name  string
		frame []byte
		want  bool
	}{
		{"first segment of a flow", tcpFrame(1000, 1000, ack, 1400), false},
		{"the next one", tcpFrame(1000, 2400, ack, 1400), false},
		{"a super-frame", tcpFrame(1000, 3800, ack, 14000), false},
		{"the first segment again (a timeout)", tcpFrame(1000, 1000, ack, 1400), true},
		{"a small segment again", tcpFrame(1000, 2400, ack, 100), false},
		{"a bare ACK", tcpFrame(1000, 17800, ack, 0), false},
		{"another flow's first segment", tcpFrame(2000, 500, ack, 1400), false},
		{"a SYN", tcpFrame(3000, 0, encap.TCPFlagSYN, 0), false},
		{"the connection's first data", tcpFrame(3000, 1, ack, 1400), false},
		{"a new connection on the same ports", tcpFrame(3000, 0x10, encap.TCPFlagSYN, 0), false},
		{"its first data, below the old one's", tcpFrame(3000, 0x11, ack, 1400), false},
		{"the first flow goes on", tcpFrame(1000, 17800, ack, 1400), false},
		{"a flow near the sequence wrap", tcpFrame(4000, 0xfffff000, ack, 1400), false},
		{"across the wrap", tcpFrame(4000, 0xfffff578, ack, 4096), false},
		{"past the wrap", tcpFrame(4000, 0x00000578, ack, 1400), false},
		{"before the wrap again", tcpFrame(4000, 0xfffff578, ack, 1400), true},
		{"a UDP datagram", tcpFrame(1000, 0, ack, 0)[:20], false},
	}
	for _, s := range steps {
		if got := w.sentAgain(s.frame, 700); got != s.want {
			t.Errorf("%s: sentAgain %v, want %v", s.name, got, s.want)
		}
	}
	// flows from many ports to one server port, interleaved, each keep
	// their own slot: a retransmission of each is seen
	var w2 retxWatch
	for round := range 2 {
		for port := uint16(40000); port < 40064; port++ {
			if got := w2.sentAgain(tcpFrame(port, 1000, ack, 1400), 700); got != (round == 1) {
				t.Fatalf("port %d, round %d: sentAgain %v", port, round, got)
			}
		}
	}
	f := tcpFrame(1000, 1000, ack, 1400)
	if n := testing.AllocsPerRun(100, func() { w.sentAgain(f, 700) }); n != 0 {
		t.Errorf("%v allocs per frame, want 0", n)
	}
}
