package dataplane

import (
	"context"
	"fmt"
	"net"
	"net/netip"
	"runtime"
	"sync"
	"testing"
	"time"

	"github.com/vxswitch/vxswitch/internal/nstest"
)

// TestRunAllocsPerPacket runs two switches in this process, each in its
// own network namespace with a real TAP and UDP socket (plain mode, the
// offloads on), sends 20000 UDP datagrams across the overlay and counts
// the heap allocations of the whole process meanwhile: the batched I/O
// and the pipeline allocate nothing per packet or per batch.
func TestRunAllocsPerPacket(t *testing.T) {
	n := nstest.New(t, nstest.Sites("a", "b")...)
	ctx, cancel := context.WithCancel(context.Background())
	var wg sync.WaitGroup
	t.Cleanup(func() { cancel(); wg.Wait() })
	start := func(s, peer *nstest.Site) *Switch {
		sw, err := New(Config{
			Name: s.Name, Listen: s.Addr, Mode: ModePlain, MSSClamp: true,
			Segment: []SegmentConfig{{VNI: 129, TAP: "vx129", MTU: 1500,
				Address: netip.PrefixFrom(netip.AddrFrom4([4]byte{10, 11, 129, byte(s.Index + 1)}), 24)}},
			Peer: []PeerConfig{{Name: peer.Name, Endpoint: netip.AddrPortFrom(peer.Addr, 0)}},
		})
		if err != nil {
			t.Fatal(err)
		}
		wg.Add(1)
		go func() {
			defer wg.Done()
			// Run opens its TAP and socket on this thread, inside the site.
			if err := s.Do(func() error { return sw.Run(ctx) }); err != nil {
				t.Errorf("%s: %v", s.Name, err)
			}
		}()
		return sw
	}
	a, b := n.Sites[0], n.Sites[1]
	swA := start(a, b)
	start(b, a)
	if err := nstest.WaitFor(10*time.Second, func() error { return a.Ping("10.11.129.2", 56, 1, false) }); err != nil {
		t.Fatalf("overlay ping: %v", err)
	}
	// Until the probes confirm the 1500-byte path, a's 1200-byte datagrams
	// exceed the base size and take the slow path (sender fragmentation).
	if err := nstest.WaitFor(10*time.Second, func() error {
		if m := swA.peers.Load().byName["b"].pathMTU(); m < 1500 {
			return fmt.Errorf("path MTU %d", m)
		}
		return nil
	}); err != nil {
		t.Fatalf("probing: %v", err)
	}
	var recv *net.UDPConn
	if err := b.Do(func() (err error) {
		recv, err = net.ListenUDP("udp4", &net.UDPAddr{IP: net.IPv4(10, 11, 129, 2), Port: 9000})
		return
	}); err != nil {
		t.Fatal(err)
	}
	defer recv.Close()
	var send net.Conn
	if err := a.Do(func() (err error) { send, err = net.Dial("udp4", "10.11.129.2:9000"); return }); err != nil {
		t.Fatal(err)
	}
	defer send.Close()
	const packets = 20000
	got := make(chan int)
	go func() {
		buf := make([]byte, 2048)
		n := 0
		recv.SetReadDeadline(time.Now().Add(30 * time.Second))
		for n < packets+1 {
			if _, _, err := recv.ReadFromUDPAddrPort(buf); err != nil { // allocation-free, unlike ReadFrom
				got <- n
				return
			}
			n++
		}
		got <- n
		for {
			if _, _, err := recv.ReadFromUDPAddrPort(buf); err != nil {
				got <- n
				return
			}
			n++
		}
	}()
	payload := make([]byte, 1200)
	send.Write(payload) // warm up
	time.Sleep(100 * time.Millisecond)
	var before, after runtime.MemStats
	runtime.ReadMemStats(&before)
	for i := 0; i < packets; i++ {
		send.Write(payload)
		if i%32 == 31 {
			time.Sleep(200 * time.Microsecond) // stay within the socket buffers
		}
	}
	received := 0
	select {
	case received = <-got:
	case <-time.After(3 * time.Second):
		recv.SetReadDeadline(time.Now())
		received = <-got
	}
	runtime.ReadMemStats(&after)
	mallocs := after.Mallocs - before.Mallocs
	t.Logf("%d datagrams sent, %d received; %d heap allocations in the process meanwhile", packets, received, mallocs)
	// Under the race detector (several times slower, on a machine CI loads
	// with other packages) the paced sender can outrun the switches; the
	// run is there to have the detector watch the real loops.
	want := packets / 2
	if raceEnabled {
		want = packets / 20
	}
	if received < want {
		t.Fatalf("received %d of %d datagrams, want at least %d", received, packets, want)
	}
	if raceEnabled {
		return // the race detector's instrumentation allocates
	}
	// Timers, the housekeeping tick and the test's own goroutines allocate
	// a little; one allocation per batch would be hundreds.
	if limit := uint64(100); mallocs > limit {
		t.Errorf("%d allocations while forwarding %d datagrams, want at most %d (none per packet or batch)", mallocs, packets, limit)
	}
}
