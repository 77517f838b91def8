package link

import (
	"bytes"
	"net/netip"
	"testing"
)

// TestMemUnderlayQueueLongerThanRead: more datagrams queued than one Read
// returns; Writes in between must not overwrite the ones still queued.
func TestMemUnderlayQueueLongerThanRead(t *testing.T) {
	n := NewMemNet()
	a, b := n.Bind(netip.MustParseAddrPort("192.0.2.1:4789")), n.Bind(netip.MustParseAddrPort("192.0.2.2:4789"))
	dgram := func(i int) []byte { return bytes.Repeat([]byte{byte(i)}, 100+i%7) }
	next := 0
	send := func(k int) {
		for j := 0; j < k; j++ {
			if err := a.Write([][]byte{dgram(next)}, []netip.AddrPort{b.LocalAddr()}, nil); err != nil {
				t.Fatal(err)
			}
			next++
		}
	}
	pkts, from := make([][]byte, 10), make([]netip.AddrPort, 10)
	send(25)
	want := 0
	for want < 60 {
		k, err := b.Read(pkts, from)
		if err != nil {
			t.Fatal(err)
		}
		for _, p := range pkts[:k] {
			if !bytes.Equal(p, dgram(want)) || from[0] != a.LocalAddr() {
				t.Fatalf("datagram %d: got % x..., want it intact and in order", want, p[:4])
			}
			want++
		}
		if next < 60 {
			send(7)
		}
	}
}
