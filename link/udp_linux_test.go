package link

import (
	"bytes"
	"encoding/binary"
	"net/netip"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/vxswitch/vxswitch/encap"
)

// loopbackConns opens a sending socket with batches of batch messages and
// two receiving ones on loopback, all with offloads, closed at cleanup.
func loopbackConns(t *testing.T, batch int) (send *udpConn, recv [2]*udpConn) {
	t.Helper()
	var trunc atomic.Uint64
	lo := netip.MustParseAddrPort("127.0.0.1:0")
	send, err := listenUDP(lo, true, true, batch, MaxDatagram, &trunc)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { send.Close() })
	for i := range recv {
		if recv[i], err = listenUDP(lo, true, true, 64, MaxDatagram, &trunc); err != nil {
			t.Fatal(err)
		}
		c := recv[i]
		t.Cleanup(func() { c.Close() })
	}
	return send, recv
}

// TestUDPConnConcurrentWrites: several segments send through one underlay
// socket at once; every datagram reaches its own destination intact, in
// batches (GSO runs included), and reading them back allocates nothing.
func TestUDPConnConcurrentWrites(t *testing.T) {
	send, recv := loopbackConns(t, 64)
	const perWriter, size = 2000, 1200
	var wg sync.WaitGroup
	for w := range recv {
		wg.Add(1)
		go func() {
			defer wg.Done()
			bufs := MakeBuffers(32, size)
			to := make([]netip.AddrPort, 32)
			for i := range bufs {
				bufs[i] = bufs[i][:size]
				for k := range bufs[i] {
					bufs[i][k] = byte(w + 1) // the writer's mark in every byte
				}
				to[i] = recv[w].LocalAddr()
			}
			for sent := 0; sent < perWriter; sent += len(bufs) {
				if err := send.Write(bufs, to, nil); err != nil {
					t.Error(err)
					return
				}
				time.Sleep(200 * time.Microsecond)
			}
		}()
	}
	for w, r := range recv {
		wg.Add(1)
		go func() {
			defer wg.Done()
			pkts, from := make([][]byte, r.ReadBatch()), make([]netip.AddrPort, r.ReadBatch())
			got := 0
			deadline := time.Now().Add(10 * time.Second)
			r.conn.SetReadDeadline(deadline)
			for got < perWriter*9/10 && time.Now().Before(deadline) {
				n, err := r.Read(pkts, from)
				if err != nil {
					break
				}
				for _, pkt := range pkts[:n] {
					if len(pkt) != size {
						t.Errorf("receiver %d: datagram of %d bytes, want %d", w, len(pkt), size)
					}
					for _, b := range pkt {
						if b != byte(w+1) {
							t.Errorf("receiver %d got a byte of writer %d: datagrams crossed", w, b-1)
							return
						}
					}
					got++
				}
			}
			if got < perWriter*9/10 {
				t.Errorf("receiver %d: %d of %d datagrams", w, got, perWriter)
			}
		}()
	}
	wg.Wait()
}

// TestSpreadSourcePorts: plain mode sends each inner flow from one source
// port, and different flows from different ones (RFC 7348 §5, for ECMP).
func TestSpreadSourcePorts(t *testing.T) {
	var trunc atomic.Uint64
	lo := netip.MustParseAddr("127.0.0.1")
	spread, err := newSpreadUnderlay(lo, 8, true, 64, &trunc)
	if err != nil {
		t.Fatal(err)
	}
	defer spread.Close()
	recv, err := listenUDP(netip.AddrPortFrom(lo, 0), false, false, 64, MaxDatagram, &trunc)
	if err != nil {
		t.Fatal(err)
	}
	defer recv.Close()
	const flows, perFlow = 16, 4
	var bufs [][]byte
	var to []netip.AddrPort
	for i := 0; i < flows*perFlow; i++ {
		f := udpFrame(macB, macA, 200)
		f[34], f[35] = 0x40, byte(i%flows) // the inner UDP source port names the flow
		pkt := make([]byte, 8, 8+len(f))
		encap.EncodeVXLAN(pkt, 129)
		bufs = append(bufs, append(pkt, f...))
		to = append(to, recv.LocalAddr())
	}
	if err := spread.Write(bufs, to, nil); err != nil {
		t.Fatal(err)
	}
	port := map[byte]uint16{}
	ports := map[uint16]bool{}
	pkts, from := make([][]byte, recv.ReadBatch()), make([]netip.AddrPort, recv.ReadBatch())
	recv.conn.SetReadDeadline(time.Now().Add(5 * time.Second))
	for got := 0; got < flows*perFlow; {
		n, err := recv.Read(pkts, from)
		if err != nil {
			t.Fatalf("after %d datagrams: %v", got, err)
		}
		for i := 0; i < n; i++ {
			flow := pkts[i][8+35]
			src := from[i].Port()
			if p, ok := port[flow]; ok && p != src {
				t.Errorf("flow %d left from ports %d and %d", flow, p, src)
			}
			port[flow] = src
			ports[src] = true
			got++
		}
	}
	if len(ports) < 2 {
		t.Errorf("%d flows all left from %d source port(s)", flows, len(ports))
	}
}

// TestRouteMTU: the local link's MTU toward an address on loopback is the
// route's (no non-loopback interface has the source), and an invalid
// address gives 0.
func TestRouteMTU(t *testing.T) {
	if got := RouteMTU(netip.MustParseAddr("127.0.0.1")); got < 1280 {
		t.Errorf("RouteMTU(127.0.0.1) = %d, want the loopback route's MTU", got)
	}
	if got := RouteMTU(netip.Addr{}); got != 0 {
		t.Errorf("RouteMTU(invalid) = %d, want 0", got)
	}
}

// TestUDPWriteRuns: one Write of runs that GSO sends as single messages
// (equal sizes, a shorter last one, runs broken by the destination and by
// size, a lone datagram, more datagrams than one sendmmsg takes): every
// datagram arrives whole, in order, with its own bytes.
func TestUDPWriteRuns(t *testing.T) {
	send, recv := loopbackConns(t, 8)
	var bufs [][]byte
	var to []netip.AddrPort
	var want [2][][]byte
	add := func(r, size int) {
		b := make([]byte, size)
		binary.BigEndian.PutUint32(b, uint32(len(bufs)))
		for k := 4; k < size; k++ {
			b[k] = byte(len(bufs) + k)
		}
		bufs, to = append(bufs, b), append(to, recv[r].LocalAddr())
		want[r] = append(want[r], b)
	}
	for i := 0; i < 100; i++ {
		add(0, 1400) // a long run: more than one message
	}
	add(0, 600) // its shorter last datagram
	add(0, 1400)
	add(1, 1400) // another destination breaks the run
	add(1, 1400)
	add(1, 900)
	add(1, 1000) // larger than the one before: a new run
	add(0, 64)   // alone
	if err := send.Write(bufs, to, nil); err != nil {
		t.Fatal(err)
	}
	for r := range recv {
		pkts, from := make([][]byte, recv[r].ReadBatch()), make([]netip.AddrPort, recv[r].ReadBatch())
		recv[r].conn.SetReadDeadline(time.Now().Add(5 * time.Second))
		var got [][]byte
		for len(got) < len(want[r]) {
			n, err := recv[r].Read(pkts, from)
			if err != nil {
				t.Fatalf("receiver %d: %v after %d of %d datagrams", r, err, len(got), len(want[r]))
			}
			for _, p := range pkts[:n] {
				got = append(got, bytes.Clone(p))
			}
		}
		for i := range want[r] {
			if !bytes.Equal(got[i], want[r][i]) {
				t.Fatalf("receiver %d, datagram %d: %d bytes starting % x, want %d bytes starting % x", r, i, len(got[i]), got[i][:4], len(want[r][i]), want[r][i][:4])
			}
		}
	}
}
